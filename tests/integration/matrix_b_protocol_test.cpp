// SECURITY-MATRIX rows B1-B6 and B9 (protocol parsing), D3 and D8 (subprocess trees and time
// limits), E2 and E3 (per-identity cap, memory under many hostile clients), against the real
// agent over real TLS on 127.0.0.1. Every test is named after its row.

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <regex>
#include <signal.h>
#include <sstream>
#include <string>
#include <sys/types.h>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/integration/test_policy.hpp"
#include "tests/support/agent_process.hpp"
#include "tests/support/proc_probe.hpp"
#include "tests/support/sanitizer.hpp"

namespace opsagent::testing {
namespace {
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using nlohmann::json;
using Lines = std::vector<std::string>;

// AddressSanitizer (quarantine, shadow memory, redzones) and ThreadSanitizer (shadow memory)
// make the same workload several times larger; memory budgets are scaled for them.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr long kSanitizerFactor = 8;
#else
constexpr long kSanitizerFactor = 1;
#endif

// The base test policy plus the commands these rows need. `marker` is built into the shell
// command of D3 (its background grandchild carries it on its command line for /proc scans).
std::string matrix_policy(const std::string& marker = "unused") {
  std::string policy = test_policy_with_run(
      ", hold, d8-sleeper, d3-forker, d3-escaper-stay, d3-background, big-flood", R"(
  hold:
    argv: [@HELPERS@/sleeper, "1000"]
    args: [{name: marker, pattern: '[a-z0-9-]+'}]
    timeout: 5s
  d8-sleeper:
    argv: [@HELPERS@/sleeper, "1000"]
    args: [{name: marker, pattern: '[a-z0-9-]+'}]
    timeout: 2s
  d3-forker:
    argv: [@HELPERS@/forker]
    args: [{name: marker, pattern: '[a-z0-9-]+'}]
    timeout: 1s
  d3-escaper-stay:
    argv: [@HELPERS@/escaper, stay]
    args: [{name: marker, pattern: '[a-z0-9-]+'}]
    timeout: 1s
  d3-background:
    argv: [/bin/sh, -c, "@HELPERS@/sleeper 1000 )" + marker + R"( & echo background=$!"]
  big-flood:
    argv: [@HELPERS@/flood, "200000000"]
    max_output: 1GiB
    timeout: 60s
)");
  return policy;
}

// --- audit and /proc helpers -----------------------------------------------------------------

// The audit file as written (complete lines only), for checks on the encoding itself.
Lines raw_audit_lines(const AgentProcess& agent) {
  Lines out;
  std::istringstream in(slurp(agent.audit_path()));
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// Every record is printable ASCII: no byte a client sent reaches the file unescaped.
void expect_audit_is_printable_ascii(const AgentProcess& agent) {
  for (const auto& line : raw_audit_lines(agent)) {
    const bool printable = std::all_of(line.begin(), line.end(), [](char ch) {
      const auto b = static_cast<unsigned char>(ch);
      return b >= 0x20 && b < 0x7F;
    });
    EXPECT_TRUE(printable) << line;
  }
}

std::uint64_t conn_of(const json& r) { return r.value("conn", std::uint64_t{0}); }

// Records of one connection (optionally of one event), in file (= seq) order.
std::vector<json> records_of(const AgentProcess& agent, std::uint64_t conn,
                             const std::string& event = "") {
  std::vector<json> out;
  for (auto& r : agent.audit()) {
    if (conn_of(r) == conn && (event.empty() || r.value("event", "") == event)) {
      out.push_back(std::move(r));
    }
  }
  return out;
}

std::size_t count_events(const AgentProcess& agent, const std::string& event) {
  const auto all = agent.audit();
  return static_cast<std::size_t>(std::count_if(
      all.begin(), all.end(), [&](const json& r) { return r.value("event", "") == event; }));
}

std::uint64_t last_seq(const AgentProcess& agent) {
  const auto all = agent.audit();
  return all.empty() ? 0 : all.back().value("seq", std::uint64_t{0});
}

// Polls `done` every 20 ms until it holds or `timeout` passes; returns its last value.
bool eventually(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!done()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// A connected, greeted client and the connection id the agent gave it.
struct Client {
  std::unique_ptr<TlsClient> tls;
  std::uint64_t conn = 0;
  TlsClient* operator->() const { return tls.get(); }
};

// Connects as `identity`. The agent queues auth_ok before it sends the greeting (the writer
// thread may write it a moment later), so once it is on disk the newest auth_ok of that
// principal is this connection's (tests connect one client at a time).
Client open_client(AgentProcess& agent, const std::string& identity) {
  Client c;
  std::uint64_t before = 0;
  for (const auto& r : agent.audit()) {
    if (r.value("event", "") == "auth_ok") before = std::max(before, r["seq"].get<std::uint64_t>());
  }
  c.tls = agent.connect(identity);
  eventually(
      [&] {
        for (const auto& r : agent.audit()) {
          if (r.value("event", "") == "auth_ok" && r.value("principal", "") == identity &&
              r["seq"].get<std::uint64_t>() > before) {
            c.conn = std::max(c.conn, conn_of(r));
          }
        }
        return c.conn != 0U;
      },
      5s);
  EXPECT_NE(c.conn, 0U) << "no auth_ok for " << identity;
  return c;
}

// --- line tables (B2, B3, B4, B6) ------------------------------------------------------------

struct LineCase {
  std::string name;
  std::string bytes;  ///< what the client sends, line terminator included
  std::string reply;  ///< the expected final line; "" = no reply at all
  bool prefix = false;
};

// The final line of a line refused by the parser (it is audited as command_rejected, never as a
// command).
bool is_parse_refusal(const std::string& reply) { return reply.rfind("ERR usage ", 0) == 0; }

// Drops every U+FFFD (audit text) or every non-ASCII byte (client text), to compare a line with
// invalid UTF-8 against its audited form.
std::string ascii_only(const std::string& s, bool drop_replacement) {
  std::string out = s;
  if (drop_replacement) {
    for (auto pos = out.find("\xEF\xBF\xBD"); pos != std::string::npos;
         pos = out.find("\xEF\xBF\xBD")) {
      out.erase(pos, 3);
    }
  }
  out.erase(std::remove_if(out.begin(), out.end(),
                           [](char ch) { return static_cast<unsigned char>(ch) >= 0x80; }),
            out.end());
  return out;
}

bool valid_utf8(const std::string& s) {
  try {
    (void)json(s).dump();  // the strict error handler throws on invalid UTF-8
    return true;
  } catch (const json::type_error&) {
    return false;
  }
}

// Sends every case on one connection and checks the reply and what the audit trail recorded:
// a line the parser refuses leaves exactly one command_rejected with the line (escaped) and no
// command record; a silent case is followed by a ping whose reply must be the very next one.
void run_line_table(AgentProcess& agent, const std::vector<LineCase>& cases) {
  Client c = open_client(agent, "alice");
  for (const auto& tc : cases) {
    SCOPED_TRACE(tc.name);
    const std::uint64_t seq_before = last_seq(agent);
    const bool silent = tc.reply.empty();
    ASSERT_TRUE(c->write(tc.bytes + (silent ? "ping\n" : ""))) << c->last_error();
    const Lines r = c->read_reply();
    ASSERT_FALSE(r.empty()) << "no reply: " << c->last_error();
    if (silent) {
      EXPECT_EQ(r, Lines{"OK pong"}) << "the case itself must not be answered";
    } else if (tc.prefix) {
      EXPECT_EQ(r.back().rfind(tc.reply, 0), 0U) << r.back();
    } else {
      EXPECT_EQ(r.back(), tc.reply);
    }
    // Both records precede the reply's final line, so they are in the file now.
    std::vector<json> commands;
    std::vector<json> rejected;
    for (auto& rec : records_of(agent, c.conn)) {
      if (rec.value("seq", std::uint64_t{0}) <= seq_before) continue;
      if (rec["event"] == "command") commands.push_back(std::move(rec));
      if (rec["event"] == "command_rejected") rejected.push_back(std::move(rec));
    }
    if (!silent && is_parse_refusal(tc.reply)) {
      EXPECT_TRUE(commands.empty()) << "a refused line was judged as a command";
      ASSERT_EQ(rejected.size(), 1U);
      const std::string line = tc.bytes.substr(0, tc.bytes.rfind('\n'));
      const std::string audited = rejected[0]["line"].get<std::string>();
      if (valid_utf8(line)) {
        EXPECT_EQ(audited, line) << "the audited line must be the whole line, byte for byte";
      } else {
        EXPECT_NE(audited.find("\xEF\xBF\xBD"), std::string::npos) << audited;
        EXPECT_EQ(ascii_only(audited, true), ascii_only(line, false));
      }
      EXPECT_EQ(rejected[0]["reason"], tc.reply.substr(std::string("ERR usage ").size()));
    } else {
      EXPECT_EQ(commands.size(), 1U) << "exactly one command judged";
      EXPECT_TRUE(rejected.empty());
    }
  }
  EXPECT_EQ(c->command("ping"), Lines{"OK pong"}) << "the session stays usable";
}

// ============================================================================================
// B1 Over-long lines.

TEST(MatrixB, B1_LinesUpToTheLimitRunAndOneByteMoreIsRefusedOnceAndCloses) {
  constexpr std::size_t kLimit = 1024;
  AgentProcess agent{AgentSpec{matrix_policy(), {{"limits", "{max_line_bytes: 1024}"}}}};
  {  // limit-1 and limit bytes (without the LF) are ordinary lines.
    Client c = open_client(agent, "alice");
    for (const std::size_t size : {kLimit - 1, kLimit}) {
      const std::string line = "ping" + std::string(size - 4, ' ');
      ASSERT_EQ(line.size(), size);
      EXPECT_EQ(c->command(line), Lines{"OK pong"}) << size;
    }
    EXPECT_TRUE(records_of(agent, c.conn, "line_too_long").empty());
  }
  // limit+1 bytes: refused whole, once, and the connection is closed. Once with the LF, once
  // without (the agent must not wait for an LF that may never come).
  for (const bool with_lf : {true, false}) {
    SCOPED_TRACE(with_lf ? "with LF" : "without LF");
    const std::string marker = unique_marker("b1");
    std::string line = "run d3-forker " + marker + " ";
    line += std::string(kLimit + 1 - line.size(), 'x');
    ASSERT_EQ(line.size(), kLimit + 1);
    Client c = open_client(agent, "alice");
    ASSERT_TRUE(c->write(with_lf ? line + "\n" : line));
    EXPECT_EQ(c->read_reply(), Lines{"ERR limit line longer than 1024 bytes; bye"});
    EXPECT_TRUE(c->wait_closed());
    const json end = agent.wait_for_audit("disconnect", "conn", c.conn);
    EXPECT_EQ(end["reason"], "line_too_long") << end.dump();
    const auto too_long = records_of(agent, c.conn, "line_too_long");
    ASSERT_EQ(too_long.size(), 1U);
    EXPECT_EQ(too_long[0]["limit"], kLimit);
    EXPECT_EQ(too_long[0]["principal"], "alice");
    EXPECT_TRUE(records_of(agent, c.conn, "command").empty()) << "nothing of the line ran";
    EXPECT_TRUE(wait_no_process_with_marker(marker, 200ms));
  }
}

TEST(MatrixB, B1_MebibyteWithoutNewlineIsRefusedOnceWithBoundedMemory) {
  constexpr int kClients = 16;
  constexpr std::size_t kFlood = std::size_t{1} << 20;
  // 16 connections, all open at once, each sending 1 MiB without an LF. The framer keeps at
  // most max_line_bytes (8 KiB) of an unfinished line and everything else per connection is
  // fixed-size (4 KiB read chunk, OpenSSL record buffers): well under 1 MiB for all of them.
  // An agent that buffered the lines would hold 16 MiB; 4 MiB of VmHWM growth is above allocator
  // noise and far below that.
  constexpr long kBudgetKib = 4 * 1024 * kSanitizerFactor;
  // The default max_clients_per_identity (8) would refuse half of them.
  AgentProcess agent{AgentSpec{
      kTestPolicy, {{"limits", "{max_clients_per_identity: " + std::to_string(kClients) + "}"}}}};
  auto warm = open_client(agent, "alice");  // first session: lazy allocations happen here
  EXPECT_EQ(warm->command("ping"), Lines{"OK pong"});
  const long hwm_before = status_kib(agent.pid(), "VmHWM");
  ASSERT_GT(hwm_before, 0);

  std::vector<Client> clients;
  for (int i = 0; i < kClients; ++i) clients.push_back(open_client(agent, "ci-bot"));
  const std::string flood(kFlood, 'A');
  for (auto& c : clients) {
    // The agent stops reading at 8 KiB and closes; the write may or may not get all of it into
    // the socket buffers before the close, so only its duration is bounded, not its outcome.
    (void)c->write(flood, 5s);
  }
  for (auto& c : clients) {
    SCOPED_TRACE("conn " + std::to_string(c.conn));
    // The refusal may be lost to the reset that closing with unread input causes; if it
    // arrives, it is the refusal.
    const auto r = c->read_reply(5s);
    if (!r.empty()) {
      EXPECT_EQ(r, Lines{"ERR limit line longer than 8192 bytes; bye"});
    }
    EXPECT_TRUE(c->wait_closed(5s));
    const json end = agent.wait_for_audit("disconnect", "conn", c.conn);
    EXPECT_EQ(end["reason"], "line_too_long") << end.dump();
    EXPECT_EQ(records_of(agent, c.conn, "line_too_long").size(), 1U) << "audited once";
    EXPECT_TRUE(records_of(agent, c.conn, "command").empty());
  }
  const long hwm_after = status_kib(agent.pid(), "VmHWM");
  EXPECT_LT(hwm_after - hwm_before, kBudgetKib)
      << "VmHWM " << hwm_before << " -> " << hwm_after << " KiB";
  std::printf("B1: VmHWM %ld -> %ld KiB\n", hwm_before, hwm_after);
  EXPECT_EQ(warm->command("ping"), Lines{"OK pong"}) << "other sessions are unaffected";
}

// ============================================================================================
// B2 NUL bytes.

TEST(MatrixB, B2_LineWithNulIsRefusedWholeNeverTruncated) {
  AgentProcess agent{AgentSpec{kTestPolicy, {}}};
  const std::string nul(1, '\0');
  run_line_table(agent,
                 {
                     {"NUL then a second command", "tail" + nul + "; rm -rf /\n",
                      "ERR usage control character U+0000 at byte 5"},
                     {"NUL after a complete command", "ping" + nul + "\n",
                      "ERR usage control character U+0000 at byte 5"},
                     {"NUL first", nul + "ping\n", "ERR usage control character U+0000 at byte 1"},
                     {"NUL inside an argument", "run echo-args a" + nul + "b\n",
                      "ERR usage control character U+0000 at byte 16"},
                     {"NUL inside a quoted argument", "run echo-args 'a" + nul + "b'\n",
                      "ERR usage control character U+0000 at byte 17"},
                     {"NUL before CR LF", "tail app 1" + nul + "\r\n",
                      "ERR usage control character U+0000 at byte 11"},
                 });
  expect_audit_is_printable_ascii(agent);
}

// ============================================================================================
// B3 Invalid UTF-8 and control characters.

TEST(MatrixB, B3_InvalidUtf8AndControlCharactersAreRefusedAndAuditedEscaped) {
  AgentProcess agent{AgentSpec{kTestPolicy, {}}};
  // Every bad sequence is placed where it would reach a child: "run echo-args " is 14 bytes.
  const std::string run = "run echo-args ";
  const auto invalid = [&](const std::string& name, const std::string& bad) {
    return LineCase{name, run + bad + "\n", "ERR usage invalid UTF-8 at byte 15"};
  };
  const auto control = [&](const std::string& name, const std::string& bad,
                           const std::string& code_point) {
    return LineCase{name, run + bad + "\n",
                    "ERR usage control character U+" + code_point + " at byte 15"};
  };
  run_line_table(agent, {
                            invalid("byte FF", "\xFF"),
                            invalid("byte FE", "\xFE"),
                            invalid("stray continuation byte", "\x80"),
                            invalid("truncated two-byte sequence", "\xC3("),
                            invalid("truncated at end of line", "\xE2\x82"),
                            invalid("overlong slash (2 bytes)", "\xC0\xAF"),
                            invalid("overlong slash (3 bytes)", "\xE0\x80\xAF"),
                            invalid("overlong slash (4 bytes)", "\xF0\x80\x80\xAF"),
                            invalid("overlong NUL (modified UTF-8)", "\xC0\x80"),
                            invalid("lone high surrogate U+D800", "\xED\xA0\x80"),
                            invalid("lone low surrogate U+DFFF", "\xED\xBF\xBF"),
                            invalid("CESU-8 surrogate pair", "\xED\xA0\xBD\xED\xB2\xA9"),
                            invalid("above U+10FFFF", "\xF4\x90\x80\x80"),
                            invalid("five-byte form", "\xF8\x88\x80\x80\x80"),
                            control("SOH", "\x01", "0001"),
                            control("backspace", "\b", "0008"),
                            control("vertical tab", "\v", "000B"),
                            control("form feed", "\f", "000C"),
                            control("TAB", "\t", "0009"),
                            control("unit separator", "\x1F", "001F"),
                            control("ESC colour sequence", "\x1B[31mred\x1B[0m", "001B"),
                            control("ESC OSC title", "\x1B]0;owned\x07", "001B"),
                            control("DEL", "\x7F", "007F"),
                            control("C1 PAD U+0080", "\xC2\x80", "0080"),
                            control("C1 NEL U+0085", "\xC2\x85", "0085"),
                            control("C1 CSI U+009B",
                                    "\xC2\x9B"
                                    "31m",
                                    "009B"),
                            control("C1 APC U+009F", "\xC2\x9F", "009F"),
                            {"control character in the verb", "pi\x1Bng\n",
                             "ERR usage control character U+001B at byte 3"},
                        });
  expect_audit_is_printable_ascii(agent);

  // Well-formed non-ASCII text (including U+2028, which some log readers treat as a line break)
  // is not a control character: it reaches the child byte for byte, and the audit escapes it.
  Client c = open_client(agent, "alice");
  const Lines texts = {"caf\xC3\xA9", "\xE6\x97\xA5\xE6\x9C\xAC", "\xF0\x9F\x8E\x89",
                       "a\xE2\x80\xA8"
                       "b",
                       "\xC2\xA0"};
  for (const auto& text : texts) {
    const auto r = c->command(run + text);
    ASSERT_EQ(r.size(), 2U) << text;
    EXPECT_EQ(r[1].rfind("OK done exit=0 ", 0), 0U) << r[1];
    const json j = json::parse(r[0].substr(2));
    EXPECT_EQ(j["argv"].back().get<std::string>(), text);
    const auto cmds = records_of(agent, c.conn, "command");
    ASSERT_FALSE(cmds.empty());
    EXPECT_EQ(cmds.back()["args"], (json{"echo-args", text}));
  }
  expect_audit_is_printable_ascii(agent);
}

// ============================================================================================
// B4 Line endings.

TEST(MatrixB, B4_OnlyLfEndsALineAndExactlyOneCrBeforeItIsStripped) {
  AgentProcess agent{AgentSpec{kTestPolicy, {}}};
  run_line_table(
      agent,
      {
          {"LF", "ping\n", "OK pong"},
          {"CR LF", "ping\r\n", "OK pong"},
          {"CR LF after arguments", "tail app 1\r\n", "OK app lines=1"},
          {"bare CR is not a line end", "ping\rwhoami\n",
           "ERR usage carriage return inside the line at byte 5"},
          {"CR CR LF", "ping\r\r\n", "ERR usage carriage return inside the line at byte 5"},
          {"leading CR", "\rping\n", "ERR usage carriage return inside the line at byte 1"},
          {"CR inside an argument", "tail app\r1\r\n",
           "ERR usage carriage return inside the line at byte 9"},
          {"CR smuggling a second command into an argument", "run echo-args a\rrun fail\n",
           "ERR usage carriage return inside the line at byte 16"},
          {"CR alone before LF", "\r\r\n", "ERR usage carriage return inside the line at byte 1"},
          {"lone CR LF is a blank line", "\r\n", ""},
      });
  // A bare CR at the end of what was sent does not end the line: nothing happens until the LF.
  Client c = open_client(agent, "alice");
  ASSERT_TRUE(c->write("ping\r"));
  ASSERT_TRUE(c->write("\n"));
  EXPECT_EQ(c->read_reply(), Lines{"OK pong"});
  expect_audit_is_printable_ascii(agent);
}

// ============================================================================================
// B5 Pipelining.

TEST(MatrixB, B5_FiftyPipelinedCommandsRunInOrderEachJudgedAndAuditedAtDispatch) {
  AgentProcess agent{AgentSpec{kTestPolicy, {}}};
  struct Kind {
    std::string line;      // "%" is replaced by the command's index
    std::string verb;      // as audited
    std::string decision;  // allow, deny, reject
    std::string final_prefix;
  };
  const std::vector<Kind> kinds = {
      {"ping", "ping", "allow", "OK pong"},
      {"whoami", "whoami", "allow", "OK alice roles=operator"},
      {"tail app 1", "tail", "allow", "OK app lines=1"},
      {"tail secret", "tail", "deny", "ERR denied "},
      {"run fail", "run", "allow", "ERR failed command exited with status 1 exit=1 "},
      {"hash md5 @DIR@/files/x", "hash", "deny", "ERR denied "},
      {"run echo-args %", "run", "allow", "OK done exit=0 "},
      {"run nope", "run", "deny", "ERR denied "},
      {"frobnicate %", "frobnicate", "reject", "ERR unknown "},
      {"PING", "PING", "reject", "ERR unknown "},
  };
  Client c = open_client(agent, "alice");
  std::string batch;
  Lines sent;
  for (int i = 0; i < 50; ++i) {
    std::string line = kinds[static_cast<std::size_t>(i) % kinds.size()].line;
    if (const auto p = line.find('%'); p != std::string::npos) {
      line.replace(p, 1, std::to_string(i));
    }
    if (const auto p = line.find("@DIR@"); p != std::string::npos) {
      line.replace(p, 5, agent.dir().string());
    }
    sent.push_back(line);
    batch += line + "\n";
  }
  ASSERT_TRUE(c->write(batch));  // one write: one or a few TLS records

  for (std::size_t i = 0; i < 50; ++i) {
    SCOPED_TRACE("reply " + std::to_string(i) + " to " + sent[i]);
    const Kind& kind = kinds[i % kinds.size()];
    const Lines r = c->read_reply();
    ASSERT_FALSE(r.empty()) << c->last_error();
    EXPECT_EQ(r.back().rfind(kind.final_prefix, 0), 0U) << r.back();
    for (std::size_t l = 0; l + 1 < r.size(); ++l) {
      EXPECT_TRUE(r[l].rfind("| ", 0) == 0) << "data line without a prefix: " << r[l];
    }
    if (kind.line == "run echo-args %") {  // its output belongs to this reply, not another one
      ASSERT_EQ(r.size(), 2U);
      EXPECT_EQ(json::parse(r[0].substr(2))["argv"].back(), std::to_string(i));
    }
  }

  // Audit: per line one command record (its own decision) and then its command_end, strictly
  // in order, so line i+1 was judged only after line i had finished. A verb that runs nothing
  // (ping, whoami, help, json) has one record holding decision and outcome.
  const auto one_record = [](const Kind& kind) {
    return kind.decision == "allow" && (kind.verb == "ping" || kind.verb == "whoami" ||
                                        kind.verb == "help" || kind.verb == "json");
  };
  std::size_t expected_records = 0;
  for (std::size_t i = 0; i < 50; ++i)
    expected_records += one_record(kinds[i % kinds.size()]) ? 1 : 2;
  std::vector<json> sequence;
  ASSERT_TRUE(eventually(
      [&] {
        sequence.clear();
        for (auto& r : records_of(agent, c.conn)) {
          if (r["event"] == "command" || r["event"] == "command_end")
            sequence.push_back(std::move(r));
        }
        return sequence.size() == expected_records;
      },
      10s));
  const json auth = records_of(agent, c.conn, "auth_ok").at(0);
  std::size_t at = 0;
  for (std::size_t i = 0; i < 50; ++i) {
    SCOPED_TRACE("command " + std::to_string(i) + ": " + sent[i]);
    const Kind& kind = kinds[i % kinds.size()];
    const json& judged = sequence.at(at++);
    EXPECT_EQ(judged["event"], "command");
    EXPECT_EQ(judged["command"], kind.verb);
    EXPECT_EQ(judged["decision"], kind.decision);
    EXPECT_EQ(judged["policy_version"], auth["policy_version"]);
    std::string args;
    for (const auto& a : judged["args"]) args += " " + a.get<std::string>();
    EXPECT_EQ(kind.verb + args, sent[i]);
    if (one_record(kind)) {
      EXPECT_EQ(judged["status"], "ok");
      continue;
    }
    const json& ended = sequence.at(at++);
    EXPECT_EQ(ended["event"], "command_end");
    EXPECT_EQ(ended["command"], kind.verb);
  }
}

TEST(MatrixB, B5_LinesSentWhileAStreamRunsWaitTheirTurnAndRepliesNeverInterleave) {
  AgentProcess agent{AgentSpec{kTestPolicy, {}}};
  Client c = open_client(agent, "alice");
  const std::string marker = unique_marker("b5");
  ASSERT_TRUE(c->write("run slow " + marker + "\n"));
  const auto first = c->read_line();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(*first, "| sleeping");  // the stream is running now
  ASSERT_TRUE(c->write("ping\nrun echo-args after\nwhoami\n"));

  // slow ends at its 1 s time limit; only then do the queued lines get their replies.
  const Lines slow = c->read_reply(10s);
  ASSERT_EQ(slow.size(), 1U);
  EXPECT_EQ(slow[0].rfind("ERR timeout command exceeded its time limit of 1s; killed", 0), 0U)
      << slow[0];
  EXPECT_EQ(c->read_reply(), Lines{"OK pong"});
  const Lines echo = c->read_reply();
  ASSERT_EQ(echo.size(), 2U);
  EXPECT_EQ(json::parse(echo[0].substr(2))["argv"].back(), "after");
  EXPECT_EQ(echo[1].rfind("OK done exit=0 ", 0), 0U) << echo[1];
  const Lines who = c->read_reply();
  ASSERT_FALSE(who.empty());
  EXPECT_EQ(who.back(), "OK alice roles=operator");

  // Each queued line was judged after the running command had ended, not when it arrived.
  ASSERT_TRUE(
      eventually([&] { return records_of(agent, c.conn, "command_end").size() == 2; }, 10s));
  Lines order;
  for (const auto& r : records_of(agent, c.conn)) {
    if (r["event"] == "command" || r["event"] == "command_end") {
      order.push_back(r["event"].get<std::string>() + ":" + r["command"].get<std::string>());
    }
  }
  EXPECT_EQ(order, (Lines{"command:run", "command_end:run", "command:ping", "command:run",
                          "command_end:run", "command:whoami"}));  // ping, whoami: one record each
}

TEST(MatrixB, B5_BeyondMaxPipelinedTheAgentStopsReadingInsteadOfBuffering) {
  // docs/protocol.md: at most limits.max_pipelined lines are queued behind a running command;
  // beyond that the agent stops reading and TCP flow control pushes back on the client. There
  // is no "ERR busy" for pipelined lines: a client that stays connected gets every line answered.
  constexpr long kBudgetKib = 4 * 1024 * kSanitizerFactor;
  AgentProcess agent{AgentSpec{matrix_policy(), {{"limits", "{max_pipelined: 4}"}}}};
  Client other = open_client(agent, "ci-bot");
  EXPECT_EQ(other->command("ping"), Lines{"OK pong"});
  // 16 MiB of pings: far more than the socket buffers of both ends can hold, so the write can
  // only complete if the agent reads (and queues) them.
  std::string pings;
  pings.reserve(16U << 20);
  while (pings.size() < (16U << 20)) pings += "ping\n";
  Client c = open_client(agent, "alice");
  const std::string marker = unique_marker("b5hold");
  ASSERT_TRUE(c->write("run hold " + marker + "\n"));  // runs for 5 s (its time limit)
  ASSERT_EQ(c->read_line().value_or(""), "| sleeping");
  const long rss_before = status_kib(agent.pid(), "VmRSS");
  const auto started = Clock::now();
  EXPECT_FALSE(c->write(pings, 1500ms)) << "the agent buffered 16 MiB of pipelined lines";
  EXPECT_GE(seconds_since(started), 1.4) << "the write must be held up, not refused";
  EXPECT_NE(c->last_error().find("timed out"), std::string::npos) << c->last_error();

  // Meanwhile the agent is neither bloated nor blocked for others, and judged nothing queued.
  const long rss_during = status_kib(agent.pid(), "VmRSS");
  EXPECT_LT(rss_during - rss_before, kBudgetKib)
      << "VmRSS " << rss_before << " -> " << rss_during << " KiB";
  // Served while the held command still runs (it ends at its 5 s limit), not after it.
  EXPECT_EQ(other->command("ping"), Lines{"OK pong"});
  EXPECT_TRUE(records_of(agent, c.conn, "command_end").empty())
      << "the other client was answered only once the running command had ended";
  EXPECT_EQ(records_of(agent, c.conn, "command").size(), 1U) << "queued lines judged early";

  // The half-written TLS record leaves this connection unusable: drop it. The agent notices
  // when it next touches the socket, drops the queued lines and ends the session.
  c.tls->reset();
  const json end = agent.wait_for_audit("disconnect", "conn", c.conn, 10s);
  EXPECT_EQ(end["reason"], "client_closed") << end.dump();
  const auto judged = records_of(agent, c.conn, "command");
  EXPECT_LE(judged.size(), 1U + 4U + 1U) << "more than max_pipelined queued lines were judged";
  EXPECT_TRUE(wait_no_process_with_marker(marker, 1s));
  EXPECT_EQ(other->command("ping"), Lines{"OK pong"});
}

// With max_pipelined lines queued behind a running command the reader reads nothing more; it
// watches the socket for a hang-up instead, so the client leaving still kills the command
// within D9's 1 s (regression test: it used to run on until its own time limit).
TEST(MatrixB, B5_ClientLeavingWithAFullQueueStillKillsTheRunningCommand) {
  AgentProcess agent{AgentSpec{matrix_policy(), {{"limits", "{max_pipelined: 2}"}}}};
  for (const bool rst : {false, true}) {
    SCOPED_TRACE(rst ? "RST" : "close_notify + FIN");
    Client c = open_client(agent, "alice");
    const std::string marker = unique_marker("b5full");
    ASSERT_TRUE(c->write("run hold " + marker + "\n"));
    ASSERT_EQ(c->read_line().value_or(""), "| sleeping");
    std::string pings;
    for (int i = 0; i < 2000; ++i) pings += "ping\n";
    ASSERT_TRUE(c->write(pings));
    if (rst) {
      c.tls->reset();
    } else {
      c->close();
    }
    EXPECT_TRUE(wait_no_process_with_marker(marker, scaled(1s)))
        << "the command outlived its client";
    agent.wait_for_audit("disconnect", "conn", c.conn);
    // Killed because the client left, not at its own 5 s time limit.
    const json end = agent.wait_for_audit("command_end", "conn", c.conn);
    EXPECT_EQ(end["command"], "run") << end.dump();
    EXPECT_TRUE(end.value("client_gone", false)) << end.dump();
  }
}

// ============================================================================================
// B6 Blank lines, whitespace, look-alikes and case.

TEST(MatrixB, B6_BlankLinesAreNoOpsAndCommandNamesMatchExactly) {
  AgentProcess agent{AgentSpec{kTestPolicy, {}}};
  const std::string nbsp = "\xC2\xA0";
  const std::string ideographic_space = "\xE3\x80\x80";
  const std::string unknown = "ERR unknown command not found: ";
  run_line_table(
      agent,
      {
          {"empty line", "\n", ""},
          {"spaces only", "     \n", ""},
          {"several empty lines", "\n\n\n", ""},
          {"leading spaces", "   ping\n", "OK pong"},
          {"trailing spaces", "ping   \n", "OK pong"},
          {"repeated spaces between words", "tail   app    1\n", "OK app lines=1"},
          {"tab only", "\t\n", "ERR usage control character U+0009 at byte 1"},
          {"tab between words", "tail\tapp 1\n", "ERR usage control character U+0009 at byte 5"},
          {"tab after the verb", "ping\t\n", "ERR usage control character U+0009 at byte 5"},
          {"NBSP only", nbsp + "\n", unknown, true},
          {"NBSP before the verb", nbsp + "ping\n", unknown, true},
          {"NBSP after the verb", "ping" + nbsp + "\n", unknown, true},
          {"NBSP as a word separator", "tail" + nbsp + "app 1\n", unknown, true},
          {"U+3000 before the verb", ideographic_space + "ping\n", unknown, true},
          {"U+3000 as a word separator", "tail" + ideographic_space + "app\n", unknown, true},
          {"zero-width space in the verb", "pi\xE2\x80\x8Bng\n", unknown, true},
          {"fullwidth letters (NFKC would make ping)",
           "\xEF\xBD\x90\xEF\xBD\x89\xEF\xBD\x8E\xEF\xBD\x87\n", unknown, true},
          {"dotless i", "p\xC4\xB1ng\n", unknown, true},
          {"upper case", "PING\n", "ERR unknown command not found: PING (try help)"},
          {"capitalised", "Ping\n", "ERR unknown command not found: Ping (try help)"},
          {"mixed case", "pinG\n", "ERR unknown command not found: pinG (try help)"},
          {"upper-case verb with arguments", "TAIL app 1\n",
           "ERR unknown command not found: TAIL (try help)"},
          {"upper-case run", "RUN echo-args x\n", "ERR unknown command not found: RUN (try help)"},
          {"prefix of a verb", "pin\n", "ERR unknown command not found: pin (try help)"},
          {"verb with a suffix", "pings\n", "ERR unknown command not found: pings (try help)"},
          {"quoted verb is the same word", "'ping'\n", "OK pong"},
          // An empty quoted word is a word: the line is not blank, and is not silently dropped.
          {"empty quoted verb", "''\n", "ERR unknown command not found:  (try help)"},
          {"empty quoted verb before a command", "'' ping\n",
           "ERR unknown command not found:  (try help)"},
          {"empty double-quoted verb before run", "\"\" run fail\n",
           "ERR unknown command not found:  (try help)"},
      });
  expect_audit_is_printable_ascii(agent);
}

// ============================================================================================
// B9 Quotes and escapes reach argv literally.

TEST(MatrixB, B9_QuotesAndEscapesFollowTheProtocolRulesAndReachArgvLiterally) {
  AgentProcess agent{AgentSpec{kTestPolicy, {}}};
  Client c = open_client(agent, "alice");
  const std::string helper = helper_path("argv-echo").string();
  struct ArgvCase {
    std::string written;  ///< the arguments as sent after "run echo-args "
    Lines words;          ///< what the child must receive after "fixed --"
  };
  const std::vector<ArgvCase> cases = {
      {R"(a"b)", {R"(a"b)"}},
      {R"("say \"hi\" \\ bye")", {R"(say "hi" \ bye)"}},
      {R"("a\b" "a\nb" "\'")", {R"(a\b)", R"(a\nb)", R"(\')"}},
      {R"('it"s' "it's")", {R"(it"s)", "it's"}},
      {R"('a\b' 'a\\b' '\"')", {R"(a\b)", R"(a\\b)", R"(\")"}},
      {R"(a\"b a\ b)", {R"(a\"b)", R"(a\)", "b"}},
      {R"(\\ \ \')", {R"(\\)", R"(\)", R"(\')"}},
      {R"($HOME '$HOME' "$HOME")", {"$HOME", "$HOME", "$HOME"}},
      {R"(${IFS} $(id) $((1+1)))", {"${IFS}", "$(id)", "$((1+1))"}},
      {"`id` '`id`' \"`id`\"", {"`id`", "`id`", "`id`"}},
      {R"(a'b'c ~ *)", {"a'b'c", "~", "*"}},
      {R"('' "" x)", {"", "", "x"}},
      {R"('two words' "and three words")", {"two words", "and three words"}},
      {R"(;id |id &&id)", {";id", "|id", "&&id"}},
      {R"(%2e%2e \x41 \u0041)", {"%2e%2e", R"(\x41)", R"(\u0041)"}},
  };
  for (const auto& tc : cases) {
    SCOPED_TRACE(tc.written);
    const auto r = c->command("run echo-args " + tc.written);
    ASSERT_EQ(r.size(), 2U) << (r.empty() ? c->last_error() : r.back());
    EXPECT_EQ(r[1].rfind("OK done exit=0 ", 0), 0U) << r[1];
    ASSERT_EQ(r[0].rfind("| ", 0), 0U) << r[0];
    json expected = json::array({helper, "fixed", "--"});
    for (const auto& w : tc.words) expected.push_back(w);
    // Byte comparison of every argv element as the child saw it.
    const json argv = json::parse(r[0].substr(2))["argv"];
    ASSERT_EQ(argv.size(), expected.size()) << argv.dump();
    for (std::size_t i = 0; i < argv.size(); ++i) {
      EXPECT_EQ(argv[i].get<std::string>(), expected[i].get<std::string>()) << "argv[" << i << "]";
    }
    // The audit names the same words.
    const json judged = records_of(agent, c.conn, "command").back();
    json args = json::array({"echo-args"});
    for (const auto& w : tc.words) args.push_back(w);
    EXPECT_EQ(judged["args"], args);
  }
  // Shell idioms the protocol does not have are usage errors, and nothing runs.
  const std::size_t judged_before = records_of(agent, c.conn, "command").size();
  for (const auto& [written, error] : std::vector<std::pair<std::string, std::string>>{
           {R"('it'\''s')", "ERR usage closing quote must be followed by a space at byte 19"},
           {R"("abc)", "ERR usage unterminated quote starting at byte 15"},
           {R"("abc\")", "ERR usage unterminated quote starting at byte 15"},
           {R"('abc)", "ERR usage unterminated quote starting at byte 15"},
           {R"("a"b)", "ERR usage closing quote must be followed by a space at byte 18"},
       }) {
    EXPECT_EQ(c->command("run echo-args " + written), Lines{error}) << written;
  }
  EXPECT_EQ(records_of(agent, c.conn, "command").size(), judged_before);
  EXPECT_EQ(records_of(agent, c.conn, "command_rejected").size(), 5U);
}

// ============================================================================================
// D3 Grandchildren.

class MatrixD3 : public ::testing::Test {
 protected:
  std::string marker = unique_marker("d3");
  AgentProcess agent{AgentSpec{matrix_policy(marker), {{"timeouts", "{drain: 500ms}"}}}};
};

TEST_F(MatrixD3, D3_ProcessGroupTreeIsKilledWhenTheCommandTimesOut) {
  Client c = open_client(agent, "alice");
  ASSERT_TRUE(c->write("run d3-forker " + marker + "\n"));
  const auto first = c->read_line();
  ASSERT_TRUE(first.has_value()) << c->last_error();
  std::smatch m;
  ASSERT_TRUE(std::regex_search(*first, m, std::regex(R"(child=(\d+) grandchild=(\d+))")))
      << *first;
  const pid_t child = std::stoi(m[1].str());
  const pid_t grandchild = std::stoi(m[2].str());
  EXPECT_TRUE(process_alive(grandchild));
  const Lines r = c->read_reply(10s);
  ASSERT_EQ(r.size(), 1U);
  EXPECT_EQ(r[0].rfind("ERR timeout command exceeded its time limit of 1s; killed signal=15", 0),
            0U)
      << r[0];
  EXPECT_TRUE(wait_no_process_with_marker(marker, 1s));
  // A killed process loses its command line (the marker) before it is a zombie: wait for the
  // pids themselves too.
  EXPECT_TRUE(wait_process_gone(child, 1s));
  EXPECT_TRUE(wait_process_gone(grandchild, 1s)) << "the grandchild outlived its command";
}

TEST_F(MatrixD3, D3_BackgroundGrandchildHoldingStdoutNeitherHoldsTheReplyNorSurvives) {
  // /bin/sh -c "sleeper 1000 MARKER & echo background=$!": the shell exits at once; its
  // background job stays in the process group and keeps the output pipe open.
  Client c = open_client(agent, "alice");
  const auto started = Clock::now();
  const Lines r = c->command("run d3-background", 10s);
  const double took = seconds_since(started);
  ASSERT_FALSE(r.empty()) << c->last_error();
  EXPECT_EQ(r.back().rfind("OK done exit=0 ", 0), 0U) << r.back();
  // Completed on the command's exit (its guard kills what it left behind; the agent's drain
  // bounds the wait in any case), not on the grandchild's pipe EOF 1000 s away: after the
  // 500 ms drain at most, with a margin that grows under the sanitizers.
  EXPECT_LT(took, 0.5 + scaled_seconds(2.0)) << "reply held by the grandchild's pipe";
  // Data lines: the shell's "background=PID" and, in any order, the grandchild's "sleeping"
  // (its output is still delivered while the agent drains).
  pid_t background = -1;
  for (std::size_t i = 0; i + 1 < r.size(); ++i) {
    if (r[i].rfind("| background=", 0) == 0) {
      background = std::stoi(r[i].substr(std::string("| background=").size()));
    } else {
      EXPECT_EQ(r[i], "| sleeping");
    }
  }
  ASSERT_GT(background, 0) << "no background=PID line";
  EXPECT_TRUE(eventually([&] { return !process_alive(background); }, 1s));
  EXPECT_TRUE(wait_no_process_with_marker(marker, 1s));
}

TEST_F(MatrixD3, D3_SetsidDoubleForkEscapeeNeitherHoldsTheReplyNorSurvives) {
  // escaper: the child calls setsid() (out of reach of a process-group kill) and forks a
  // grandchild that keeps stdout open; the command itself exits at once.
  Client c = open_client(agent, "alice");
  const auto started = Clock::now();
  const Lines r = c->command("run escaper " + marker, 10s);
  const double took = seconds_since(started);
  ASSERT_EQ(r.size(), 2U) << (r.empty() ? c->last_error() : r.back());
  ASSERT_EQ(r[0].rfind("| escaped=", 0), 0U) << r[0];
  EXPECT_EQ(r[1].rfind("OK done exit=0 ", 0), 0U) << r[1];
  EXPECT_LT(took, 0.5 + scaled_seconds(2.0)) << "reply held by the escapee's pipe";
  const pid_t escaped = std::stoi(r[0].substr(std::string("| escaped=").size()));
  // Killed by the command's guard (a subreaper) when the command exits, or else by the agent's
  // orphan sweep (every second).
  EXPECT_TRUE(eventually([&] { return !process_alive(escaped); }, 3s)) << "escapee survived";
  EXPECT_TRUE(wait_no_process_with_marker(marker, 1s));
}

TEST_F(MatrixD3, D3_SetsidEscapeeOfACommandKilledAtItsTimeLimitDiesWithIt) {
  // The same escape, but the command stays until its 1 s time limit kills it.
  Client c = open_client(agent, "alice");
  ASSERT_TRUE(c->write("run d3-escaper-stay " + marker + "\n"));
  const auto first = c->read_line();
  ASSERT_TRUE(first.has_value()) << c->last_error();
  ASSERT_EQ(first->rfind("| escaped=", 0), 0U) << *first;
  const pid_t escaped = std::stoi(first->substr(std::string("| escaped=").size()));
  EXPECT_TRUE(process_alive(escaped));
  const Lines r = c->read_reply(10s);
  ASSERT_EQ(r.size(), 1U);
  EXPECT_EQ(r[0].rfind("ERR timeout command exceeded its time limit of 1s; killed", 0), 0U) << r[0];
  EXPECT_TRUE(eventually([&] { return !process_alive(escaped); }, 3s)) << "escapee survived";
  EXPECT_TRUE(wait_no_process_with_marker(marker, 1s));
}

// ============================================================================================
// D8 Time limit.

TEST(MatrixD8, D8_CommandPastItsTimeLimitIsKilledAndTheTimeoutAudited) {
  AgentProcess agent{AgentSpec{matrix_policy(), {}}};
  Client c = open_client(agent, "alice");
  const std::string marker = unique_marker("d8");
  const auto started = Clock::now();
  ASSERT_TRUE(c->write("run d8-sleeper " + marker + "\n"));
  ASSERT_EQ(c->read_line().value_or(c->last_error()), "| sleeping");
  const Lines r = c->read_reply(2s + scaled(8s));
  const double took = seconds_since(started);
  ASSERT_EQ(r.size(), 1U);
  std::smatch m;
  ASSERT_TRUE(std::regex_match(
      r[0], m,
      std::regex(R"(ERR timeout command exceeded its time limit of 2s; killed signal=15 )"
                 R"(duration_ms=(\d+) output_bytes=9)")))
      << r[0];
  // Killed at the 2 s limit: never before it, and after it within a margin that grows under
  // the sanitizers.
  const long reply_ms = std::stol(m[1].str());
  const long latest_ms = 2000 + 1500 * sanitizer_time_scale();
  EXPECT_GE(reply_ms, 2000);
  EXPECT_LT(reply_ms, latest_ms);
  EXPECT_GE(took, 1.95);
  EXPECT_LT(took, 2.0 + scaled_seconds(2.0));
  EXPECT_TRUE(wait_no_process_with_marker(marker, 500ms)) << "the sleeper outlived its limit";

  const json end = agent.wait_for_audit("command_end", "conn", c.conn);
  EXPECT_EQ(end["command"], "run");
  EXPECT_EQ(end["status"], "timeout");
  EXPECT_EQ(end["signal"], SIGTERM);
  EXPECT_FALSE(end.contains("exit")) << end.dump();
  EXPECT_EQ(end["message"], "command exceeded its time limit of 2s; killed");
  EXPECT_GE(end["duration_ms"].get<long>(), reply_ms);
  EXPECT_LT(end["duration_ms"].get<long>(), latest_ms + 500);
  EXPECT_FALSE(end.contains("client_gone"));
  EXPECT_EQ(c->command("ping"), Lines{"OK pong"}) << "the session goes on";
}

// ============================================================================================
// E2 Per-identity cap.

TEST(MatrixE, E2_PerIdentityCapRefusesTheExtraSessionAndAdmitsOtherIdentities) {
  constexpr int kCap = 3;
  AgentProcess agent{
      AgentSpec{kTestPolicy, {{"limits", "{max_clients: 10, max_clients_per_identity: 3}"}}}};
  std::vector<Client> alice;
  for (int i = 0; i < kCap; ++i) alice.push_back(open_client(agent, "alice"));

  TlsClient extra(agent.client_options("alice"));
  ASSERT_EQ(extra.connect("127.0.0.1", agent.port()), "");
  EXPECT_EQ(extra.read_line().value_or(extra.last_error()),
            "ERR busy too many connections for alice (max_clients_per_identity 3); bye");
  EXPECT_TRUE(extra.wait_closed());
  const json refused = agent.wait_for_audit("session_refused", "principal", "alice");
  EXPECT_EQ(refused["reason"], "too many connections for alice (max_clients_per_identity 3)");

  // Identity B is admitted (up to its own cap), and A's sessions are untouched.
  std::vector<Client> bot;
  for (int i = 0; i < kCap; ++i) {
    bot.push_back(open_client(agent, "ci-bot"));
    EXPECT_EQ(bot.back()->command("ping"), Lines{"OK pong"});
  }
  for (auto& a : alice) EXPECT_EQ(a->command("ping"), Lines{"OK pong"});
  EXPECT_EQ(count_events(agent, "session_refused"), 1U);
  EXPECT_EQ(count_events(agent, "auth_ok"), static_cast<std::size_t>(2 * kCap));

  // A freed slot of A is A's again.
  EXPECT_EQ(alice.back()->command("exit"), Lines{"OK bye"});
  agent.wait_for_audit("disconnect", "conn", alice.back().conn);
  alice.pop_back();
  Client again = open_client(agent, "alice");
  EXPECT_EQ(again->command("ping"), Lines{"OK pong"});
}

// ============================================================================================
// E3 Memory with many hostile clients at once.

TEST(MatrixE, E3_ManyOverlongAndFloodingClientsAtOnceKeepTheAgentWithinItsMemoryBudget) {
  constexpr int kOverlong = 100;  // B1: 1 MiB without LF each
  constexpr int kFlooding = 100;  // D1: run big-flood (200 MB of output), never read
  // Per connection the agent holds at most: an SSL object with its record buffers (~40 KiB),
  // the 4 KiB read chunk, at most max_line_bytes (8 KiB) of an unfinished line, and for a
  // running command the output pipeline: 8 chunks of up to 16 KiB of lines in the run's
  // channel (~170 KiB with the strings' overhead), a 16 KiB partial line and one formatted
  // write waiting on the stalled socket (~17 KiB). That is ~250 KiB per flooding and ~50 KiB
  // per overlong connection, ~30 MiB in all (measured: ~50 MiB of VmHWM growth in a Debug
  // build). 80 MiB leaves room for allocator arenas and fragmentation and is still less than
  // buffering the overlong lines alone would take (100 MiB), let alone the floods (20 GB).
  constexpr long kBudgetKib = 80 * 1024 * kSanitizerFactor;
  constexpr auto kAttack = 4s;  // how long every flood keeps running before its client leaves
  AgentProcess agent{
      AgentSpec{matrix_policy(),
                {{"limits",
                  "{max_clients: 256, max_clients_per_identity: 256, max_handshakes: 256, "
                  "max_children: 128}"}}}};
  Client warm = open_client(agent, "ci-bot");
  EXPECT_EQ(warm->command("ping"), Lines{"OK pong"});
  const long hwm_before = status_kib(agent.pid(), "VmHWM");
  ASSERT_GT(hwm_before, 0);

  // Everyone connects first, so that the attacks below overlap.
  const auto started = Clock::now();
  std::vector<std::unique_ptr<TlsClient>> floods;
  std::vector<std::unique_ptr<TlsClient>> overlong;
  for (int i = 0; i < kFlooding + kOverlong; ++i) {
    auto c = std::make_unique<TlsClient>(agent.client_options("alice"));
    if (i % 2 == 0) {
      // A flooding client that never reads; a small receive buffer keeps the test's own
      // kernel memory small (the agent's side of the socket is what is under test).
      auto& socket = c->stream().next_layer();
      socket.open(boost::asio::ip::tcp::v4());
      socket.set_option(boost::asio::socket_base::receive_buffer_size(4096));
    }
    ASSERT_EQ(c->connect("127.0.0.1", agent.port()), "") << i;
    ASSERT_TRUE(c->read_line().has_value()) << i << ": " << c->last_error();
    (i % 2 == 0 ? floods : overlong).push_back(std::move(c));
  }
  const double connect_s = seconds_since(started);

  long peak_rss = 0;
  const auto sample = [&] { peak_rss = std::max(peak_rss, status_kib(agent.pid(), "VmRSS")); };
  for (auto& c : floods) ASSERT_TRUE(c->write("run big-flood\n"));
  const auto attack_started = Clock::now();
  const std::string line(std::size_t{1} << 20, 'A');
  for (auto& c : overlong) {
    (void)c->write(line, 2s);  // the agent closes at 8 KiB; the rest may not get in
    sample();
  }
  // Every flood is running and every overlong line refused (once each)...
  const auto count = [&](const std::string& event, const std::string& command) {
    std::size_t n = 0;
    for (const auto& r : agent.audit()) {
      n += r.value("event", "") == event && r.value("command", "") == command ? 1 : 0;
    }
    return n;
  };
  EXPECT_TRUE(eventually(
      [&] {
        sample();
        return count("command", "run") == kFlooding &&
               count("line_too_long", "") == static_cast<std::size_t>(kOverlong);
      },
      scaled(15s)));
  // ...and others are still served while the floods run (they end only when their clients
  // leave, below, or after the 30 s write_stall).
  EXPECT_EQ(warm->command("ping"), Lines{"OK pong"}) << "the agent stalled under the attack";
  EXPECT_EQ(count("command_end", "run"), 0U) << "a flood ended before the ping was answered";
  while (Clock::now() - attack_started < kAttack) {
    sample();
    std::this_thread::sleep_for(50ms);
  }
  const long hwm_attack = status_kib(agent.pid(), "VmHWM");

  // The flooding clients leave: every child is killed and every session ends.
  for (auto& c : floods) c->reset();
  EXPECT_TRUE(eventually(
      [&] {
        std::size_t gone = 0;
        for (const auto& r : agent.audit()) {
          gone += r.value("event", "") == "command_end" && r.value("client_gone", false) ? 1 : 0;
        }
        return gone == kFlooding;
      },
      scaled(15s)));
  const long hwm_after = status_kib(agent.pid(), "VmHWM");
  std::printf(
      "E3: %d clients connected in %.1f s; VmHWM %ld -> %ld (attack) -> %ld KiB, "
      "VmRSS peak %ld KiB\n",
      kFlooding + kOverlong, connect_s, hwm_before, hwm_attack, hwm_after, peak_rss);
  EXPECT_LT(hwm_after - hwm_before, kBudgetKib)
      << "VmHWM " << hwm_before << " -> " << hwm_after << " KiB";
  EXPECT_EQ(count("line_too_long", ""), static_cast<std::size_t>(kOverlong)) << "audited once";
  EXPECT_EQ(warm->command("ping"), Lines{"OK pong"});
  EXPECT_TRUE(process_alive(agent.pid()));
}

}  // namespace
}  // namespace opsagent::testing

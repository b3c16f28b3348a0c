// Shipping copies of audit records (issue 11): the record scanner, the systemd Native Journal
// Protocol encoder, the RFC 5424 encoder, and the datagram sink against a real AF_UNIX socket
// (drops counted, never blocking). The agent end to end: tests/integration/audit_shipping_test.cpp.

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>

#include "agent/audit/datagram_sink.hpp"
#include "agent/audit/journal_encoder.hpp"
#include "agent/audit/record_fields.hpp"
#include "agent/audit/syslog_encoder.hpp"
#include "agent/metrics/registry.hpp"

namespace opsagent::audit {
namespace {

namespace fs = std::filesystem;
using namespace std::string_literals;

const std::string kCommand =
    R"({"seq":42,"prev":"00","ts":"2026-12-03T09:00:00.123456Z","host":"web1",)"
    R"("instance":"0123456789abcdef","pid":777,"event":"command","conn":3,)"
    R"("principal":"alice","command":"run","args":["up]time","a\"b"],"decision":"deny",)"
    R"("rule":"roles.ops","reason":"no \"run\" here]","identity":{"cn":"x\"}","san":[1,{"a":"}"}]},)"
    R"("policy_version":"abcd"})";

const std::string kAllowed =
    R"({"seq":43,"prev":"00","ts":"2026-12-03T09:00:00.5Z","host":"web1","instance":"i","pid":7,)"
    R"("event":"command","principal":"alice","command":"ping","decision":"allow","status":"ok"})";

TEST(AuditShipping, ScansTopLevelFieldsAndSkipsNestedOnes) {
  const RecordFields f = scan_record(kCommand);
  EXPECT_EQ(f.seq, "42");
  EXPECT_EQ(f.ts, "2026-12-03T09:00:00.123456Z");
  EXPECT_EQ(f.host, "web1");
  EXPECT_EQ(f.pid, "777");
  EXPECT_EQ(f.event, "command");
  EXPECT_EQ(f.conn, "3");
  EXPECT_EQ(f.principal, "alice");
  EXPECT_EQ(f.command, "run");
  EXPECT_EQ(f.decision, "deny");
  EXPECT_EQ(f.reason, R"(no \"run\" here])");  // JSON escapes kept
  EXPECT_EQ(f.policy_version, "abcd");         // after a nested object with braces in strings
  EXPECT_TRUE(f.warning);
  EXPECT_EQ(record_summary(f), R"(alice run deny (no \"run\" here]))");

  const RecordFields ok = scan_record(kAllowed);
  EXPECT_FALSE(ok.warning);
  EXPECT_EQ(record_summary(ok), "alice ping allow ok");
  EXPECT_TRUE(scan_record(R"({"seq":1,"event":"auth_denied","reason":"unmapped"})").warning);
  const RecordFields end = scan_record(
      R"({"seq":1,"event":"command_end","principal":"bob","command":"run","status":"ok","exit":0})");
  EXPECT_EQ(record_summary(end), "bob run ended ok exit 0");
  EXPECT_FALSE(end.warning);
  EXPECT_TRUE(scan_record(R"({"event":"command_end","status":"timeout"})").warning);
}

TEST(AuditShipping, ScannerSurvivesMalformedLines) {
  for (const std::string& bad :
       {""s, "x"s, "{"s, "{\""s, R"({"event")"s, R"({"event":"unterminated)"s,
        R"({"event":"a","x":{"deep":[)"s, R"({"event":"a",)"s, "{\"a\\"s}) {
    const RecordFields f = scan_record(bad);
    (void)record_summary(f);
  }
  EXPECT_EQ(scan_record(R"({"event":"a","principal":"p","x":{)").principal, "p");
}

// The fields of a native journal datagram, in order; binary values decoded.
std::vector<std::pair<std::string, std::string>> parse_journal(const std::string& d) {
  std::vector<std::pair<std::string, std::string>> out;
  std::size_t i = 0;
  while (i < d.size()) {
    const auto lf = d.find('\n', i);
    const auto eq = d.find('=', i);
    if (eq != std::string::npos && eq < lf) {
      out.emplace_back(d.substr(i, eq - i), d.substr(eq + 1, lf - eq - 1));
      i = lf + 1;
      continue;
    }
    const std::string key = d.substr(i, lf - i);
    std::uint64_t n = 0;
    for (int b = 7; b >= 0; --b) n = (n << 8) | static_cast<unsigned char>(d[lf + 1 + b]);
    out.emplace_back(key, d.substr(lf + 9, n));
    EXPECT_EQ(d[lf + 9 + n], '\n');
    i = lf + 10 + n;
  }
  return out;
}

TEST(AuditShipping, JournalFieldsUseTheBinaryFormForValuesWithNewlines) {
  std::string out;
  append_journal_field(out, "A", "plain value");
  EXPECT_EQ(out, "A=plain value\n");
  out.clear();
  append_journal_field(out, "B", "two\nlines");
  EXPECT_EQ(out, "B\n\x09\0\0\0\0\0\0\0two\nlines\n"s);
  out.clear();
  const std::string big(300, '\n');
  append_journal_field(out, "C", big);
  EXPECT_EQ(out.substr(0, 10), "C\n\x2c\x01\0\0\0\0\0\0"s);  // 300 little endian
  EXPECT_EQ(out.size(), 2 + 8 + 300 + 1U);
  out.clear();
  append_journal_field(out, "E", "");
  EXPECT_EQ(out, "E=\n");
}

TEST(AuditShipping, JournalEntryCarriesTheRecordByteForByte) {
  const auto fields = parse_journal(encode_journal_entry(kCommand, scan_record(kCommand)));
  auto get = [&](const std::string& k) {
    for (const auto& [key, v] : fields) {
      if (key == k) return v;
    }
    return "<absent>"s;
  };
  EXPECT_EQ(get("OPSAGENT_RECORD"), kCommand);
  EXPECT_EQ(get("MESSAGE"), R"(alice run deny (no \"run\" here]))");
  EXPECT_EQ(get("PRIORITY"), "4");
  EXPECT_EQ(get("SYSLOG_IDENTIFIER"), "opsagent");
  EXPECT_EQ(get("SYSLOG_FACILITY"), "10");
  EXPECT_EQ(get("OPSAGENT_EVENT"), "command");
  EXPECT_EQ(get("OPSAGENT_PRINCIPAL"), "alice");
  EXPECT_EQ(get("OPSAGENT_HOST"), "web1");
  EXPECT_EQ(get("OPSAGENT_INSTANCE"), "0123456789abcdef");
  EXPECT_EQ(get("OPSAGENT_SEQ"), "42");
  EXPECT_EQ(get("OPSAGENT_DECISION"), "deny");
  EXPECT_EQ(get("OPSAGENT_COMMAND"), "run");
  EXPECT_EQ(get("OPSAGENT_STATUS"), "<absent>");
  EXPECT_EQ(get("PRIORITY"), "4");
  EXPECT_EQ(parse_journal(encode_journal_entry(kAllowed, scan_record(kAllowed)))[1].second, "6");
  // Every key is a valid journal field name: upper case, digits, '_', not starting with '_'.
  for (const auto& [key, v] : fields) {
    ASSERT_FALSE(key.empty());
    EXPECT_NE(key[0], '_');
    EXPECT_EQ(key.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"), std::string::npos)
        << key;
  }
}

TEST(AuditShipping, SyslogEscapesParamValuesPerRfc5424) {
  std::string out;
  append_sd_escaped(out, R"(a"b\c]d[e=f)");
  EXPECT_EQ(out, R"(a\"b\\c\]d[e=f)");
}

TEST(AuditShipping, SyslogMessageHasTheRfc5424Structure) {
  const std::string m = encode_syslog_message(kCommand, scan_record(kCommand), 10);
  // authpriv (10) * 8 + warning (4) = 84
  const std::string head =
      "<84>1 2026-12-03T09:00:00.123456Z web1 opsagent 777 command [opsagent@32473 ";
  ASSERT_EQ(m.substr(0, head.size()), head) << m;
  EXPECT_NE(m.find(R"( principal="alice")"), std::string::npos) << m;
  EXPECT_NE(m.find(R"( seq="42")"), std::string::npos) << m;
  EXPECT_NE(m.find(R"( reason="no \\\"run\\\" here\]")"), std::string::npos) << m;
  EXPECT_EQ(m.substr(m.size() - kCommand.size() - 2), "] " + kCommand);

  const std::string info = encode_syslog_message(kAllowed, scan_record(kAllowed), 16, "x@1");
  EXPECT_EQ(info.substr(0, 5), "<134>");  // local0 (16) * 8 + info (6)
  EXPECT_NE(info.find("[x@1 "), std::string::npos);
  EXPECT_EQ(encode_syslog_message(kAllowed, scan_record(kAllowed), 0).substr(0, 4), "<6>1");

  // A host name that is not printable US-ASCII, or too long, becomes the NILVALUE.
  const std::string odd = R"({"seq":1,"ts":"t","host":"a b","pid":1,"event":"x"})";
  EXPECT_EQ(encode_syslog_message(odd, scan_record(odd), 10).substr(0, 18), "<86>1 t - opsagent");
  const std::string long_event =
      R"({"seq":1,"ts":"t","host":"h","pid":1,"event":")" + std::string(33, 'e') + "\"}";
  EXPECT_NE(encode_syslog_message(long_event, scan_record(long_event), 10).find(" opsagent 1 - ["),
            std::string::npos);
}

TEST(AuditShipping, FacilitiesAndSdIds) {
  EXPECT_EQ(syslog_facility("authpriv"), 10);
  EXPECT_EQ(syslog_facility("auth"), 4);
  EXPECT_EQ(syslog_facility("local7"), 23);
  EXPECT_FALSE(syslog_facility("security").has_value());
  EXPECT_FALSE(syslog_facility("").has_value());
  EXPECT_TRUE(valid_sd_id("opsagent@32473"));
  EXPECT_TRUE(valid_sd_id("a@1.2.3"));
  for (const char* bad : {"opsagent", "@1", "a@", "a@1.", "a@x", "a b@1", "a=b@1", "a]@1", "a\"@1",
                          "abcdefghijklmnopqrstuvwxyzabcd@12"}) {
    EXPECT_FALSE(valid_sd_id(bad)) << bad;
  }
}

// A bound AF_UNIX datagram socket in a temporary directory.
class Receiver {
 public:
  explicit Receiver(fs::path path) : path_(std::move(path)) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path_.c_str());
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  }
  ~Receiver() {
    ::close(fd_);
    ::unlink(path_.c_str());
  }
  std::vector<std::string> drain() {
    std::vector<std::string> out;
    std::string buf(256 * 1024, '\0');
    for (;;) {
      const ssize_t n = ::recv(fd_, buf.data(), buf.size(), MSG_DONTWAIT);
      if (n < 0) return out;
      out.emplace_back(buf.data(), static_cast<std::size_t>(n));
    }
  }

 private:
  fs::path path_;
  int fd_ = -1;
};

class SinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "opsagent-ship-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  static std::uint64_t dropped() { return metrics::registry().audit_shipped[1][1].value(); }
  static std::uint64_t sent() { return metrics::registry().audit_shipped[1][0].value(); }
  fs::path dir_;
};

TEST_F(SinkTest, DropsWithoutADaemonReconnectsAndNeverBlocksWhenFull) {
  SinkOptions options;
  options.format = ShipFormat::syslog;
  options.socket = (dir_ / "log.sock").string();
  options.reconnect_interval = std::chrono::milliseconds(0);
  options.max_datagram = 4096;
  DatagramSink sink(options);
  const RecordFields f = scan_record(kAllowed);

  // No daemon: dropped and counted.
  const auto dropped0 = dropped();
  sink.ship(kAllowed, f);
  EXPECT_EQ(dropped(), dropped0 + 1);

  // The daemon appears: the next record is sent.
  Receiver rx(dir_ / "log.sock");
  const auto sent0 = sent();
  sink.ship(kAllowed, f);
  EXPECT_EQ(sent(), sent0 + 1);
  auto got = rx.drain();
  ASSERT_EQ(got.size(), 1U);
  EXPECT_EQ(got[0], encode_syslog_message(kAllowed, f, 10));

  // Too large for max_datagram: dropped, not sent.
  const std::string big = R"({"seq":1,"event":"x","pad":")" + std::string(5000, 'p') + "\"}";
  sink.ship(big, scan_record(big));
  EXPECT_EQ(sent(), sent0 + 1);
  EXPECT_EQ(dropped(), dropped0 + 2);

  // Nobody reads: the queue fills, sends fail at once with EAGAIN instead of blocking.
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 5000; ++i) sink.ship(kAllowed, f);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_GT(dropped(), dropped0 + 2);
  EXPECT_EQ(rx.drain().size() + (dropped() - dropped0 - 2), 5000U);
}

TEST_F(SinkTest, ReconnectsAtMostOncePerInterval) {
  SinkOptions options;
  options.format = ShipFormat::syslog;
  options.socket = (dir_ / "late.sock").string();
  options.reconnect_interval = std::chrono::hours(1);
  DatagramSink sink(options);
  const RecordFields f = scan_record(kAllowed);
  sink.ship(kAllowed, f);  // fails to connect: next attempt in an hour
  Receiver rx(dir_ / "late.sock");
  const auto sent0 = sent();
  sink.ship(kAllowed, f);
  EXPECT_EQ(sent(), sent0);
  EXPECT_TRUE(rx.drain().empty());
}

}  // namespace
}  // namespace opsagent::audit

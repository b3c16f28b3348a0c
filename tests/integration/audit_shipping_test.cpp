// Shipping copies of audit records to journald and syslog (issue 11) against the real agent over
// real TLS: the test binds AF_UNIX datagram sockets in a temporary directory standing in for
// journald's and syslog's, and checks what arrives against the audit file byte for byte; with no
// daemon the agent serves normally and counts the drops, and shipping resumes once the socket
// appears. The encoders' own cases: tests/unit/audit_shipping_test.cpp.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <poll.h>
#include <regex>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>

#include "tests/integration/test_policy.hpp"
#include "tests/support/agent_process.hpp"
#include "tests/support/metrics_probe.hpp"
#include "tests/support/sanitizer.hpp"

namespace opsagent::testing {
namespace {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

// A bound AF_UNIX SOCK_DGRAM socket drained by its own thread, like a daemon's.
class DatagramReceiver {
 public:
  explicit DatagramReceiver(fs::path path) : path_(std::move(path)) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path_.c_str());
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << path_;
    thread_ = std::thread([this] { run(); });
  }
  ~DatagramReceiver() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
    ::unlink(path_.c_str());
  }
  [[nodiscard]] std::vector<std::string> datagrams() const {
    std::lock_guard lock(mutex_);
    return got_;
  }
  // Waits until at least `n` datagrams arrived; the datagrams so far.
  std::vector<std::string> wait_for(std::size_t n, std::chrono::milliseconds timeout) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (datagrams().size() < n && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(10ms);
    }
    return datagrams();
  }

 private:
  void run() {
    std::string buf(256 * 1024, '\0');
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      const ssize_t n = ::recv(fd_, buf.data(), buf.size(), MSG_DONTWAIT);
      if (n < 0) continue;
      std::lock_guard lock(mutex_);
      got_.emplace_back(buf.data(), static_cast<std::size_t>(n));
    }
  }

  fs::path path_;
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  mutable std::mutex mutex_;
  std::vector<std::string> got_;
  std::thread thread_;
};

fs::path make_dir() {
  std::string tmpl = (fs::temp_directory_path() / "opsagent-ship-XXXXXX").string();
  EXPECT_NE(::mkdtemp(tmpl.data()), nullptr);
  return tmpl;
}

std::vector<std::string> file_lines(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// Native journal fields (KEY=value lines; the binary form decoded).
std::map<std::string, std::string> journal_fields(const std::string& d) {
  std::map<std::string, std::string> out;
  std::size_t i = 0;
  while (i < d.size()) {
    const auto lf = d.find('\n', i);
    if (lf == std::string::npos) break;
    const auto eq = d.find('=', i);
    if (eq != std::string::npos && eq < lf) {
      out[d.substr(i, eq - i)] = d.substr(eq + 1, lf - eq - 1);
      i = lf + 1;
      continue;
    }
    std::uint64_t n = 0;
    for (int b = 7; b >= 0; --b) n = (n << 8) | static_cast<unsigned char>(d[lf + 1 + b]);
    out[d.substr(i, lf - i)] = d.substr(lf + 9, n);
    i = lf + 10 + n;
  }
  return out;
}

TEST(AuditShippingAgent, EveryWrittenRecordReachesJournaldAndSyslogByteForByte) {
  const fs::path sockets = make_dir();
  std::vector<std::string> journal;
  std::vector<std::string> syslog;
  std::vector<std::string> lines;
  {
    DatagramReceiver jrx(sockets / "journal.sock");
    DatagramReceiver srx(sockets / "log.sock");
    AgentProcess agent{AgentSpec{
        kTestPolicy,
        {{"audit", "{path: audit.jsonl, journald: {enabled: true, socket: " +
                       (sockets / "journal.sock").string() + "}, syslog: {enabled: true, socket: " +
                       (sockets / "log.sock").string() + ", facility: local3}}"}}}};
    ASSERT_NE(agent.port(), 0);
    {
      auto alice = agent.connect("alice");
      ASSERT_NE(alice, nullptr);
      EXPECT_EQ(alice->command("ping"), std::vector<std::string>{"OK pong"});
      EXPECT_FALSE(alice->command("run echo-args one two").empty());
      EXPECT_EQ(alice->command("tail /etc/passwd")[0].rfind("ERR denied ", 0), 0U);
      alice->command("exit");
    }
    agent.wait_for_audit("disconnect");
    EXPECT_EQ(agent.stop(), 0);
    lines = file_lines(agent.audit_path());
    const std::size_t n = lines.size();
    journal = jrx.wait_for(n, scaled(10s));
    syslog = srx.wait_for(n, scaled(10s));
  }
  fs::remove_all(sockets);

  ASSERT_GE(lines.size(), 8U);
  ASSERT_EQ(journal.size(), lines.size());
  ASSERT_EQ(syslog.size(), lines.size());

  bool saw_allowed = false;
  bool saw_denied = false;
  // <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD-ID PARAM="VALUE"...] MSG
  static const std::regex rfc5424(
      R"(^<(\d{1,3})>1 (\S+) (\S+) opsagent (\d+) ([!-~]{1,32}) \[opsagent@32473((?: [a-z_]+="(?:[^"\\\]]|\\["\\\]])*")*)\] (.*)$)");
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const auto j = journal_fields(journal[i]);
    EXPECT_EQ(j.at("OPSAGENT_RECORD"), lines[i]) << "journal copy " << i;
    EXPECT_EQ(j.at("SYSLOG_IDENTIFIER"), "opsagent");
    EXPECT_FALSE(j.at("MESSAGE").empty());
    const nlohmann::json rec = nlohmann::json::parse(lines[i]);
    EXPECT_EQ(j.at("OPSAGENT_EVENT"), rec.at("event").get<std::string>());
    EXPECT_EQ(j.at("OPSAGENT_SEQ"), std::to_string(rec.at("seq").get<std::uint64_t>()));
    EXPECT_EQ(j.at("OPSAGENT_HOST"), rec.at("host").get<std::string>());
    EXPECT_EQ(j.at("OPSAGENT_INSTANCE"), rec.at("instance").get<std::string>());
    if (rec.contains("principal")) {
      EXPECT_EQ(j.at("OPSAGENT_PRINCIPAL"), rec.at("principal").get<std::string>());
    }

    std::smatch m;
    ASSERT_TRUE(std::regex_match(syslog[i], m, rfc5424)) << syslog[i];
    EXPECT_EQ(m[7].str(), lines[i]) << "syslog copy " << i;
    EXPECT_EQ(m[2].str(), rec.at("ts").get<std::string>());
    EXPECT_EQ(m[4].str(), std::to_string(rec.at("pid").get<int>()));
    EXPECT_EQ(m[5].str(), rec.at("event").get<std::string>());
    EXPECT_NE(
        m[6].str().find(" seq=\"" + std::to_string(rec.at("seq").get<std::uint64_t>()) + "\""),
        std::string::npos);

    if (rec.at("event") == "command" && rec.value("decision", "") == "allow") {
      saw_allowed = true;
      EXPECT_EQ(j.at("PRIORITY"), "6");
      EXPECT_EQ(j.at("OPSAGENT_DECISION"), "allow");
      EXPECT_EQ(m[1].str(), "158");  // local3 (19) * 8 + info (6)
    }
    if (rec.at("event") == "command" && rec.value("decision", "") == "deny") {
      saw_denied = true;
      EXPECT_EQ(j.at("PRIORITY"), "4");
      EXPECT_EQ(j.at("OPSAGENT_DECISION"), "deny");
      EXPECT_EQ(j.at("OPSAGENT_COMMAND"), "tail");
      EXPECT_EQ(j.at("MESSAGE").rfind("alice tail deny", 0), 0U) << j.at("MESSAGE");
      EXPECT_EQ(m[1].str(), "156");  // local3 (19) * 8 + warning (4)
      EXPECT_NE(m[6].str().find(" decision=\"deny\""), std::string::npos);
      EXPECT_NE(m[6].str().find(" principal=\"alice\""), std::string::npos);
    }
  }
  EXPECT_TRUE(saw_allowed);
  EXPECT_TRUE(saw_denied);
}

TEST(AuditShippingAgent, NoDaemonCostsOnlyCountedDropsAndShippingResumesWhenItAppears) {
  const fs::path sockets = make_dir();
  const fs::path socket = sockets / "journal.sock";
  AgentProcess agent{AgentSpec{kTestPolicy,
                               {{"metrics", "{listen: \"127.0.0.1:0\"}"},
                                {"audit", "{path: audit.jsonl, journald: {enabled: true, socket: " +
                                              socket.string() + "}}"}}}};
  ASSERT_NE(agent.port(), 0);
  const std::uint16_t port = metrics_port(agent, scaled(10s));
  ASSERT_NE(port, 0);
  const std::string dropped = R"(opsagent_audit_shipped_total{sink="journald",result="dropped"})";
  const std::string sent = R"(opsagent_audit_shipped_total{sink="journald",result="sent"})";
  {
    // No daemon: commands are served as usual, and every copy is dropped and counted.
    auto alice = agent.connect("alice");
    ASSERT_NE(alice, nullptr);
    for (int i = 0; i < 20; ++i)
      EXPECT_EQ(alice->command("ping"), std::vector<std::string>{"OK pong"});
    const std::string body = scrape(port);
    EXPECT_GE(sample(body, dropped), 20) << body;
    EXPECT_EQ(sample(body, sent), 0) << body;
    EXPECT_NE(agent.log().find("audit shipping to journald"), std::string::npos) << agent.log();

    // The daemon starts: within about a second (the reconnect interval) copies arrive again.
    DatagramReceiver rx(socket);
    const auto deadline = std::chrono::steady_clock::now() + scaled(10s);
    while (rx.datagrams().empty() && std::chrono::steady_clock::now() < deadline) {
      EXPECT_EQ(alice->command("ping"), std::vector<std::string>{"OK pong"});
      std::this_thread::sleep_for(50ms);
    }
    const auto got = rx.wait_for(1, 1s);
    ASSERT_FALSE(got.empty()) << "shipping did not resume";
    EXPECT_NE(got.back().find("OPSAGENT_EVENT=command\n"), std::string::npos);
    EXPECT_GE(sample(scrape(port), sent), 1);
    alice->command("exit");
    agent.wait_for_audit("disconnect");
    EXPECT_EQ(agent.stop(), 0);
  }
  EXPECT_NE(agent.log().find("audit shipping to journald (" + socket.string() + ") resumed"),
            std::string::npos)
      << agent.log();
  fs::remove_all(sockets);
}

}  // namespace
}  // namespace opsagent::testing

// systemd's service protocol (issue 10), observed on a NOTIFY_SOCKET the test owns: READY=1 only
// once the agent listens, RELOADING=1 with MONOTONIC_USEC then READY=1 around a SIGHUP reload,
// WATCHDOG=1 at half of WATCHDOG_USEC, STOPPING=1 on SIGTERM.

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>

#include "tests/integration/test_policy.hpp"
#include "tests/support/agent_process.hpp"
#include "tests/support/sanitizer.hpp"

namespace opsagent::testing {
namespace {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

// A unix datagram socket in a temporary directory, as systemd's notify socket.
class NotifySocket {
 public:
  NotifySocket() {
    std::string templ = (fs::temp_directory_path() / "opsagent-notify-XXXXXX").string();
    dir_ = ::mkdtemp(templ.data());
    path_ = dir_ / "notify";
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    path_.string().copy(addr.sun_path, sizeof addr.sun_path - 1);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  }
  ~NotifySocket() {
    ::close(fd_);
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;

  [[nodiscard]] std::string path() const { return path_.string(); }

  /// The next message, or "" when none comes within `timeout`.
  std::string next(std::chrono::milliseconds timeout) {
    timeval tv{static_cast<time_t>(timeout.count() / 1000),
               static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[4096];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
  }

  /// Messages until one containing `needle` (returned), skipping WATCHDOG=1 keep-alives and
  /// counting them in `keepalives`; "" on timeout.
  std::string until(const std::string& needle, std::chrono::milliseconds timeout,
                    int* keepalives = nullptr) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      const std::string m = next(100ms);
      if (m == "WATCHDOG=1") {
        if (keepalives != nullptr) ++*keepalives;
        if (needle != "WATCHDOG=1") continue;
      }
      if (m.find(needle) != std::string::npos) return m;
      if (!m.empty() && m != "WATCHDOG=1") seen.push_back(m);
    }
    return {};
  }

  std::vector<std::string> seen;  ///< other messages skipped by until()

 private:
  fs::path dir_;
  fs::path path_;
  int fd_ = -1;
};

TEST(ServiceNotify, ReadyReloadingWatchdogAndStoppingReachTheNotifySocket) {
  NotifySocket notify;
  AgentSpec spec{kTestPolicy, {}};
  // 400 ms: a keep-alive every 200 ms. WATCHDOG_PID unset means "the main process".
  spec.env = {{"NOTIFY_SOCKET", notify.path()}, {"WATCHDOG_USEC", "400000"}};
  AgentProcess agent(spec);
  ASSERT_NE(agent.port(), 0);

  // READY=1 comes after the listeners are bound: the port is already in the log by now.
  const std::string ready = notify.until("READY=1", scaled(10s));
  ASSERT_FALSE(ready.empty()) << agent.log();
  EXPECT_NE(ready.find("STATUS="), std::string::npos) << ready;
  EXPECT_TRUE(notify.seen.empty()) << "before READY=1: " << notify.seen.front();
  EXPECT_NE(agent.connect("alice"), nullptr);  // and it serves

  int keepalives = 0;
  EXPECT_FALSE(notify.until("WATCHDOG=1", scaled(5s), &keepalives).empty())
      << "no keep-alive although WATCHDOG_USEC is set";

  ASSERT_TRUE(agent.signal(SIGHUP));
  const std::string reloading = notify.until("RELOADING=1", scaled(10s));
  ASSERT_FALSE(reloading.empty()) << agent.log();
  EXPECT_NE(reloading.find("MONOTONIC_USEC="), std::string::npos) << reloading;
  const std::string ready_again = notify.until("READY=1", scaled(10s));
  EXPECT_FALSE(ready_again.empty()) << "no READY=1 after the reload";
  EXPECT_FALSE(agent.wait_for_audit("policy_reload").is_null());

  EXPECT_EQ(agent.stop(), 0);
  EXPECT_FALSE(notify.until("STOPPING=1", scaled(5s)).empty()) << agent.log();
}

TEST(ServiceNotify, NoKeepAlivesWithoutAWatchdog) {
  NotifySocket notify;
  AgentSpec spec{kTestPolicy, {}};
  spec.env = {{"NOTIFY_SOCKET", notify.path()}};
  AgentProcess agent(spec);
  ASSERT_NE(agent.port(), 0);
  ASSERT_FALSE(notify.until("READY=1", scaled(10s)).empty());
  EXPECT_EQ(notify.next(1s), "") << "a message although nothing happened";
}

}  // namespace
}  // namespace opsagent::testing

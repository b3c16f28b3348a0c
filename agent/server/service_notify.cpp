#include "agent/server/service_notify.hpp"

#include <ctime>
#include <string>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

namespace opsagent::server {
namespace asio = boost::asio;

namespace {

void send(const std::string& state) {
  // 0: nothing to notify (no NOTIFY_SOCKET); < 0: the socket is gone. Neither stops the agent.
  if (const int rc = ::sd_notify(0, state.c_str()); rc < 0) {
    spdlog::debug("sd_notify failed: error {}", -rc);
  }
}

}  // namespace

void notify_ready(const char* status) { send(std::string("READY=1\nSTATUS=") + status); }

void notify_reloading() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  const long long usec = static_cast<long long>(now.tv_sec) * 1'000'000 + now.tv_nsec / 1'000;
  send("RELOADING=1\nSTATUS=reloading\nMONOTONIC_USEC=" + std::to_string(usec));
}

void notify_stopping() { send("STOPPING=1\nSTATUS=stopping"); }

// The timer and its flag live on one strand: stop() comes from whichever I/O thread handles
// SIGTERM, while a tick may run on another.
struct ServiceWatchdog::Timer {
  explicit Timer(asio::io_context& io) : strand(asio::make_strand(io)), timer(strand) {}
  asio::strand<asio::io_context::executor_type> strand;
  asio::steady_timer timer;
  bool stopped = false;  // on `strand`
};

ServiceWatchdog::ServiceWatchdog(asio::io_context& io) : timer_(std::make_unique<Timer>(io)) {
  std::uint64_t usec = 0;
  // > 0 only when WATCHDOG_USEC is set (and WATCHDOG_PID, if set, is us).
  if (::sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
    interval_ = std::chrono::microseconds(usec / 2);
  }
}

ServiceWatchdog::~ServiceWatchdog() = default;

void ServiceWatchdog::start() {
  if (interval_.count() == 0) return;
  spdlog::info("systemd watchdog: keep-alive every {} ms", interval_.count() / 1000);
  // The handler runs on an I/O thread: a loop that no longer runs handlers sends nothing.
  struct Tick {
    Timer* t;
    std::chrono::microseconds every;
    void operator()(const boost::system::error_code& ec) const {
      if (ec || t->stopped) return;
      send("WATCHDOG=1");
      t->timer.expires_after(every);
      t->timer.async_wait(*this);
    }
  };
  asio::post(timer_->strand,
             [tick = Tick{timer_.get(), interval_}] { tick(boost::system::error_code{}); });
}

void ServiceWatchdog::stop() {
  asio::post(timer_->strand, [t = timer_.get()] {
    t->stopped = true;
    t->timer.cancel();
  });
}

}  // namespace opsagent::server

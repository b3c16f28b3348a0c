#pragma once
// The agent's side of systemd's service protocol (sd_notify(3), Type=notify): READY=1 once every
// listener is bound, RELOADING=1 ... READY=1 around a SIGHUP reload, STOPPING=1 on SIGTERM, and
// WATCHDOG=1 at half the interval the unit's WatchdogSec gives. Without NOTIFY_SOCKET (not under
// systemd) every call does nothing. Thread-safe: sd_notify only sends a datagram.

#include <chrono>
#include <memory>

#include <boost/asio/io_context.hpp>

namespace opsagent::server {

/// READY=1 with a STATUS= line.
void notify_ready(const char* status);
/// RELOADING=1 with MONOTONIC_USEC= (CLOCK_MONOTONIC now), as Type=notify-reload expects.
void notify_reloading();
/// STOPPING=1.
void notify_stopping();

/// Sends WATCHDOG=1 every half of WATCHDOG_USEC from the I/O threads, so a wedged event loop
/// stops the keep-alives and systemd restarts the agent. Does nothing when the watchdog is off.
class ServiceWatchdog {
 public:
  explicit ServiceWatchdog(boost::asio::io_context& io);
  ~ServiceWatchdog();
  ServiceWatchdog(const ServiceWatchdog&) = delete;
  ServiceWatchdog& operator=(const ServiceWatchdog&) = delete;

  /// Starts the keep-alives (first one at once) when systemd asked for them.
  void start();
  /// Stops them (at shutdown, so the io_context can run out of work).
  void stop();
  /// The interval between keep-alives, or zero when the watchdog is off.
  [[nodiscard]] std::chrono::microseconds interval() const { return interval_; }

 private:
  struct Timer;
  std::unique_ptr<Timer> timer_;
  std::chrono::microseconds interval_{0};
};

}  // namespace opsagent::server

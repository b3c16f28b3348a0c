#include "agent/audit/datagram_sink.hpp"

#include <cerrno>
#include <cstring>
#include <new>
#include <sys/socket.h>
#include <sys/un.h>

#include <spdlog/spdlog.h>

#include "agent/audit/journal_encoder.hpp"
#include "agent/audit/syslog_encoder.hpp"
#include "agent/common/best_effort.hpp"
#include "agent/common/errno_text.hpp"
#include "agent/metrics/registry.hpp"

namespace opsagent::audit {

DatagramSink::DatagramSink(SinkOptions options) : options_(std::move(options)) {
  datagram_.reserve(4096);
}

const char* DatagramSink::name() const noexcept {
  return options_.format == ShipFormat::journald ? "journald" : "syslog";
}

bool DatagramSink::connect_now() noexcept {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (options_.socket.size() >= sizeof addr.sun_path) {
    errno = ENAMETOOLONG;
    return false;
  }
  std::memcpy(addr.sun_path, options_.socket.data(), options_.socket.size());
  UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) return false;
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): the sockets API
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    return false;
  }
  fd_ = std::move(fd);
  return true;
}

// At most one message per log_interval, whatever the load: a daemon that cannot keep up must not
// turn into a flood of the operational log.
bool DatagramSink::may_log(std::chrono::steady_clock::time_point now) noexcept {
  if (last_log_ != std::chrono::steady_clock::time_point{} &&
      now - last_log_ < options_.log_interval) {
    return false;
  }
  last_log_ = now;
  return true;
}

void DatagramSink::dropped(const char* why, int err, bool disconnected) noexcept {
  metrics::registry().audit_shipped[static_cast<std::size_t>(options_.format)][1].inc();
  disconnected_ = disconnected_ || disconnected;
  ++drops_since_log_;
  if (!may_log(std::chrono::steady_clock::now())) return;
  log_noexcept(spdlog::level::warn,
               "audit shipping to {} ({}): {} record cop{} dropped since the last message, the "
               "last because: {}{}{} (the audit file has them; opsagent_audit_shipped_total "
               "counts every drop)",
               name(), options_.socket, drops_since_log_, drops_since_log_ == 1 ? "y" : "ies", why,
               err != 0 ? ": " : "", err != 0 ? common::errno_text(err) : "");
  drops_since_log_ = 0;
}

void DatagramSink::ship(std::string_view line, const RecordFields& fields) noexcept {
  const auto now = std::chrono::steady_clock::now();
  if (!fd_.valid()) {
    if (now < next_connect_) return dropped("not connected", 0, true);
    next_connect_ = now + options_.reconnect_interval;
    if (!connect_now()) return dropped("cannot connect", errno, true);
  }
  try {
    datagram_ = options_.format == ShipFormat::journald
                    ? encode_journal_entry(line, fields, options_.facility)
                    : encode_syslog_message(
                          line, fields, options_.facility,
                          options_.sd_id.empty() ? kDefaultSdId : std::string_view(options_.sd_id));
  } catch (const std::bad_alloc&) {
    return dropped("no memory to encode", 0, false);
  }
  if (datagram_.size() > options_.max_datagram) {
    return dropped("record too large", EMSGSIZE, false);
  }
  const ssize_t n =
      ::send(fd_.get(), datagram_.data(), datagram_.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  if (n == static_cast<ssize_t>(datagram_.size())) {
    metrics::registry().audit_shipped[static_cast<std::size_t>(options_.format)][0].inc();
    if (disconnected_) {
      // Follows a new connection, so at most once per reconnect_interval.
      disconnected_ = false;
      log_noexcept(spdlog::level::info, "audit shipping to {} ({}) resumed", name(),
                   options_.socket);
    }
    return;
  }
  const int err = n < 0 ? errno : EMSGSIZE;
  if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS || err == EMSGSIZE || err == EINTR ||
      err == ENOMEM) {
    return dropped(err == EMSGSIZE ? "record too large for the socket" : "daemon not keeping up",
                   err, false);
  }
  // ECONNREFUSED (the daemon is gone), ENOTCONN, EPIPE...: connect again, at most once a second.
  fd_.reset();
  dropped("connection lost", err, true);
}

}  // namespace opsagent::audit

#pragma once
// A plain TCP connection to the agent on 127.0.0.1 (no TLS), for handshake floods, slowloris
// and plaintext-on-the-TLS-port tests. Closed on destruction.

#include <chrono>
#include <cstdint>
#include <string>

namespace opsagent::testing {

class RawConnection {
 public:
  /// Connects to 127.0.0.1:`port`, from `source_address` (e.g. "127.0.0.2") when not empty.
  explicit RawConnection(std::uint16_t port, const std::string& source_address = "");
  ~RawConnection();
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  [[nodiscard]] bool connected() const { return connected_; }
  /// Writes all bytes (no SIGPIPE). False on error.
  bool send(const std::string& bytes);
  /// True when the agent closes (EOF or reset) within `timeout`; what it sends is discarded.
  bool wait_closed(std::chrono::milliseconds timeout);

 private:
  int fd_;
  bool connected_ = false;
};

}  // namespace opsagent::testing

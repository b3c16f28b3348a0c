#pragma once
// Where opsctl connects and how long each phase may take.

#include <chrono>
#include <cstdint>
#include <string>

namespace opsagent::client {

/// One resolved host: the name shown in output, where to connect, and which name the agent's
/// certificate must carry.
struct Target {
  std::string name;        ///< as shown in output and results ("web1")
  std::string address;     ///< DNS name or IP literal to connect to
  std::uint16_t port = 0;  ///< agent port
  std::string
      server_name;  ///< name or IP the agent certificate must match (SAN); defaults to address
  /// When set, the agent certificate's SHA-256 fingerprint ("AB:CD:...") must also be this.
  std::string pin_sha256{};

  friend bool operator==(const Target&, const Target&) = default;
};

/// Per-phase time limits. A zero command limit means none.
struct Timeouts {
  std::chrono::milliseconds connect{std::chrono::seconds(5)};     ///< resolve + TCP connect
  std::chrono::milliseconds handshake{std::chrono::seconds(10)};  ///< TLS handshake + greeting
  std::chrono::milliseconds command{std::chrono::minutes(5)};     ///< command sent -> final line
};

}  // namespace opsagent::client

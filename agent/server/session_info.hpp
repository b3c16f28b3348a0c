#pragma once
// Who is on the other end of a session.

#include <cstdint>
#include <string>
#include <vector>

#include "agent/identity/peer_identity.hpp"
#include "agent/policy/authorizer.hpp"

namespace opsagent::server {

/// Filled in as the connection is made (id and peer at accept, identity and principal at
/// authentication); used only on the session's strand.
struct SessionInfo {
  std::uint64_t id = 0;
  std::string peer;      ///< "127.0.0.1:53412"
  bool resumed = false;  ///< TLS session resumed from a ticket (verified again at the handshake)
  PeerIdentity identity;
  policy::Principal principal;
  /// Resumed only: the CAs of the chain verified again at the handshake, issuer first.
  std::vector<std::string> resumed_cas;
};

}  // namespace opsagent::server

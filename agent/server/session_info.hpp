#pragma once
// Who is on the other end of a session.

#include <cstdint>
#include <string>

#include "agent/identity/peer_identity.hpp"
#include "agent/policy/authorizer.hpp"

namespace opsagent::server {

/// Filled in as the connection is made (id and peer at accept, identity and principal at
/// authentication); used only on the session's strand.
struct SessionInfo {
  std::uint64_t id = 0;
  std::string peer;  ///< "127.0.0.1:53412"
  PeerIdentity identity;
  policy::Principal principal;
};

}  // namespace opsagent::server

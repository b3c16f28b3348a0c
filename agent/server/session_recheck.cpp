// What a reload (SIGHUP) does to an open session: its certificate chain and its identity mapping
// are checked again against what is now in force (SECURITY.md, "What a reload does").

#include <boost/asio/post.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "agent/server/session.hpp"
#include "agent/tls/chain_check.hpp"

namespace opsagent::server {
namespace asio = boost::asio;

void Session::recheck(std::shared_ptr<asio::ssl::context> tls,
                      std::shared_ptr<const policy::Policy> policy) {
  asio::post(stream_.get_executor(),
             [self = shared_from_this(), tls = std::move(tls), policy = std::move(policy)] {
               self->apply_recheck(*tls, *policy);
             });
}

void Session::apply_recheck(asio::ssl::context& tls, const policy::Policy& policy) {
  if (phase_ != Phase::serving || end_ || peer_gone_) return;
  if (const auto failure = tls::verify_peer_chain(stream_.native_handle(), tls.native_handle())) {
    audit_.session_revoked(*failure);
    spdlog::warn("conn {}: {}'s certificate no longer verifies after the reload ({}); closing",
                 info_.id, info_.principal.name, failure->text);
    interrupt(EndReason::certificate_revoked);
    return;
  }
  if (dispatcher_) dispatcher_->policy_replaced();
  auto remapped = policy::remap_identity(policy, info_.identity, info_.principal);
  if (remapped.kind == policy::Remapping::Kind::unmapped) {
    audit_.session_unmapped(remapped.reason, policy.version);
    spdlog::warn("conn {}: {}; closing", info_.id, remapped.reason);
    interrupt(EndReason::identity_unmapped);
  } else if (remapped.kind == policy::Remapping::Kind::roles_changed) {
    std::vector<std::string> old_roles = std::move(info_.principal.roles);
    info_.principal = std::move(remapped.principal);  // the gate reads it at the next command
    audit_.roles_changed(old_roles, policy.version);
    spdlog::info("conn {}: {} now has roles {} (policy {})", info_.id, info_.principal.name,
                 fmt::join(info_.principal.roles, ","), policy.version);
  }
}

}  // namespace opsagent::server

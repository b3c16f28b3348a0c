#include "agent/server/reloader.hpp"

#include <spdlog/spdlog.h>

#include "agent/config/config_error.hpp"
#include "agent/tls/tls_context.hpp"

namespace opsagent::server {

namespace {

void reload_policy(ServerContext& ctx) {
  const std::string old_version = ctx.policy.get()->version;
  try {
    std::shared_ptr<const policy::Policy> next = policy::load_policy(ctx.config.policy_path);
    ctx.policy.replace(next);
    ctx.audit.record("policy_reload", {{"policy", ctx.config.policy_path.string()},
                                       {"old_version", old_version},
                                       {"policy_version", next->version}});
    spdlog::info("policy reloaded: version {} (was {})", next->version, old_version);
  } catch (const config::ConfigError& e) {
    ctx.audit.record("policy_reload_failed", {{"policy", ctx.config.policy_path.string()},
                                              {"error", e.what()},
                                              {"policy_version", old_version}});
    spdlog::error("policy reload failed, keeping version {}: {}", old_version, e.what());
  }
}

void reload_tls(ServerContext& ctx) {
  try {
    // Sessions keep the context they were made with; new connections get this one.
    ctx.tls.replace(
        std::make_shared<boost::asio::ssl::context>(tls::make_server_context(ctx.config.tls)));
    ctx.audit.record("tls_reload", {{"certificate", ctx.config.tls.certificate.string()},
                                    {"client_ca", ctx.config.tls.client_ca.string()},
                                    {"crl", ctx.config.tls.crl.string()}});
    spdlog::info("TLS certificates, CA and CRL reloaded");
  } catch (const config::ConfigError& e) {
    ctx.audit.record("tls_reload_failed", {{"error", e.what()}});
    spdlog::error("TLS reload failed, keeping the current certificates: {}", e.what());
  }
}

}  // namespace

void reload(ServerContext& ctx) {
  if (auto st = ctx.audit.reopen(); !st) {
    spdlog::error("{}; still writing to the old audit file", st.error().message);
  }
  reload_policy(ctx);
  reload_tls(ctx);
}

}  // namespace opsagent::server

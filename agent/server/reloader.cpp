#include "agent/server/reloader.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "agent/common/json_release.hpp"
#include "agent/config/config_error.hpp"
#include "agent/config/config_file.hpp"
#include "agent/tls/tls_context.hpp"

namespace opsagent::server {

namespace {

void reload_policy(ServerContext& ctx) {
  const std::string old_version = ctx.policy.get()->version;
  std::string file_sha256;  // of the bytes read, so a rejected file can be identified later
  try {
    std::shared_ptr<const policy::Policy> next =
        policy::load_policy(ctx.config.policy_path, &file_sha256);
    ctx.policy.replace(next);
    ctx.audit.record("policy_reload", {{"policy", ctx.config.policy_path.string()},
                                       {"old_version", old_version},
                                       {"policy_version", next->version}});
    spdlog::info("policy reloaded: version {} (was {})", next->version, old_version);
  } catch (const config::ConfigError& e) {
    // Built with operator[], not a {{"key", value}} list: see common/json_release.hpp.
    nlohmann::json rec = nlohmann::json::object();
    const JsonReleaser release(rec);
    rec["policy"] = ctx.config.policy_path.string();
    rec["error"] = e.what();
    rec["policy_version"] = old_version;
    if (!file_sha256.empty()) rec["rejected_sha256"] = file_sha256;
    ctx.audit.record("policy_reload_failed", std::move(rec));
    spdlog::error("policy reload failed, keeping version {}: {}", old_version, e.what());
  }
}

void reload_tls(ServerContext& ctx) {
  try {
    // The key may have been replaced or re-moded since start-up: the same check as then.
    config::check_private_key_file(ctx.config.tls.private_key);
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

void reload(ServerContext& ctx) noexcept {
  // Each step on its own: one that fails for lack of memory does not skip the others.
  const auto guarded = [](const char* step, auto&& fn) noexcept {
    try {
      fn();
    } catch (const std::exception& e) {
      try {
        spdlog::error("reload: {} failed: {}; the old version stays", step, e.what());
      } catch (...) {  // out of memory for the message as well
      }
    } catch (...) {
      try {
        spdlog::error("reload: {} failed; the old version stays", step);
      } catch (...) {
      }
    }
  };
  guarded("audit log reopen", [&ctx] {
    if (auto st = ctx.audit.reopen(); !st) {
      spdlog::error("{}; still writing to the old audit file", st.error().message);
    }
  });
  guarded("policy reload", [&ctx] { reload_policy(ctx); });
  guarded("TLS reload", [&ctx] { reload_tls(ctx); });
}

}  // namespace opsagent::server

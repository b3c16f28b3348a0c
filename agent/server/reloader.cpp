#include "agent/server/reloader.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "agent/common/json_release.hpp"
#include "agent/config/config_error.hpp"
#include "agent/config/trust_files.hpp"
#include "agent/metrics/registry.hpp"
#include "agent/server/tls_setup.hpp"

namespace opsagent::server {

namespace {

// agent.yaml, whole or not at all. Keys that need a restart must be unchanged.
void reload_config(ServerContext& ctx) {
  const auto current = ctx.config.get();
  try {
    auto next = std::make_shared<config::AgentConfig>(config::load_agent_config(current->source));
    config::resolve_guard(*next);
    if (const std::string key = config::restart_only_change(*current, *next); !key.empty()) {
      throw config::ConfigError(current->source.string() + ": " + key +
                                " changed: it takes effect only when the agent restarts; nothing "
                                "of this file was applied");
    }
    ctx.registry.set_limits(Admission::Limits::from(next->limits));
    spdlog::set_level(spdlog::level::from_str(next->log_level));
    for (const std::string& warning : next->warnings) spdlog::warn("configuration: {}", warning);
    ctx.config.replace(next);
    metrics::registry().reloaded(metrics::ReloadPart::config, true);
    ctx.audit.record("config_reload", {{"config", next->source.string()}});
    spdlog::info("configuration reloaded from {}", next->source.string());
  } catch (const config::ConfigError& e) {
    metrics::registry().reloaded(metrics::ReloadPart::config, false);
    ctx.audit.record("config_reload_failed",
                     {{"config", current->source.string()}, {"error", e.what()}});
    spdlog::error("configuration reload failed, keeping the current one: {}", e.what());
  }
}

void reload_policy(ServerContext& ctx) {
  const auto config = ctx.config.get();
  const std::string old_version = ctx.policy.get()->version;
  std::string file_sha256;  // of the bytes read, so a rejected file can be identified later
  try {
    std::shared_ptr<const policy::Policy> next =
        policy::load_policy(config->policy_path, &file_sha256);
    ctx.policy.replace(next);
    metrics::registry().reloaded(metrics::ReloadPart::policy, true);
    ctx.audit.record("policy_reload", {{"policy", config->policy_path.string()},
                                       {"old_version", old_version},
                                       {"policy_version", next->version}});
    spdlog::info("policy reloaded: version {} (was {})", next->version, old_version);
  } catch (const config::ConfigError& e) {
    metrics::registry().reloaded(metrics::ReloadPart::policy, false);
    // Built with operator[], not a {{"key", value}} list: see common/json_release.hpp.
    nlohmann::json rec = nlohmann::json::object();
    const JsonReleaser release(rec);
    rec["policy"] = config->policy_path.string();
    rec["error"] = e.what();
    rec["policy_version"] = old_version;
    if (!file_sha256.empty()) rec["rejected_sha256"] = file_sha256;
    ctx.audit.record("policy_reload_failed", std::move(rec));
    spdlog::error("policy reload failed, keeping version {}: {}", old_version, e.what());
  }
}

void reload_tls(ServerContext& ctx) {
  const auto config = ctx.config.get();
  try {
    // The files may have been replaced or re-moded since start-up: the same checks as then.
    config::check_tls_files(config->tls);
    // Sessions keep the context they were made with; new connections get this one.
    ctx.tls.replace(
        std::make_shared<boost::asio::ssl::context>(make_agent_tls_context(config->tls)));
    metrics::registry().reloaded(metrics::ReloadPart::tls, true);
    ctx.audit.record("tls_reload", {{"certificate", config->tls.certificate.string()},
                                    {"client_ca", config->tls.client_ca.string()},
                                    {"crl", config->tls.crl.string()}});
    spdlog::info("TLS certificates, CA and CRL reloaded");
  } catch (const config::ConfigError& e) {
    metrics::registry().reloaded(metrics::ReloadPart::tls, false);
    ctx.audit.record("tls_reload_failed", {{"error", e.what()}});
    spdlog::error("TLS reload failed, keeping the current certificates: {}", e.what());
  }
}

// Trust files that have nothing to reload still get their start-up check again: one that
// became writable by others is refused (audited, and for the audit log the old descriptor is
// kept) rather than trusted until the next restart.
bool trust_check(ServerContext& ctx, const char* what, void (*check)(const std::filesystem::path&),
                 const std::filesystem::path& path) {
  try {
    check(path);
    return true;
  } catch (const config::ConfigError& e) {
    nlohmann::json rec = nlohmann::json::object();
    const JsonReleaser release(rec);
    rec["file"] = path.string();
    rec["what"] = what;
    rec["error"] = e.what();
    ctx.audit.record("trust_check_failed", std::move(rec));
    spdlog::error("reload: {} refused: {}", what, e.what());
    return false;
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
    if (!trust_check(ctx, "audit log", config::check_audit_file, ctx.config.get()->audit_path)) {
      return;
    }
    if (auto st = ctx.audit.reopen(); !st) {
      spdlog::error("{}; still writing to the old audit file", st.error().message);
    }
  });
  guarded("configuration reload", [&ctx] { reload_config(ctx); });
  guarded("policy reload", [&ctx] { reload_policy(ctx); });
  guarded("TLS reload", [&ctx] { reload_tls(ctx); });
  // Every spawn checks the guard too (exec::spawn); this makes a bad one visible at once.
  guarded("guard check", [&ctx] {
    const auto config = ctx.config.get();
    if (!config->exec.guard.empty()) {
      trust_check(ctx, "guard", config::check_guard_file, config->exec.guard);
    }
  });
}

}  // namespace opsagent::server

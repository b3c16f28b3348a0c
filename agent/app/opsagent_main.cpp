// opsagent: flags, load, wire, run — nothing else. The lifecycle is server/agent.hpp.

#include <csignal>
#include <cstdio>
#include <string>

#include <spdlog/spdlog.h>

#include "agent/app/agent_flags.hpp"
#include "agent/app/audit_main.hpp"
#include "agent/app/explain_main.hpp"
#include "agent/common/trusted_file.hpp"
#include "agent/config/agent_config.hpp"
#include "agent/config/config_error.hpp"
#include "agent/config/trust_files.hpp"
#include "agent/server/agent.hpp"
#include "agent/server/operational_log.hpp"
#include "agent/server/tls_setup.hpp"

namespace {
constexpr int kExitConfig = 78;  // EX_CONFIG
}  // namespace

// NOLINTNEXTLINE(bugprone-exception-escape): only std::bad_alloc, which ends it
int main(int argc, char** argv) {
  using namespace opsagent;
  if (argc > 1 && std::string(argv[1]) == "explain") return app::explain_main(argc - 1, argv + 1);
  if (argc > 1 && std::string(argv[1]) == "audit") return app::audit_main(argc - 1, argv + 1);
  bool check_only = false;
  const auto parsed = app::parse_args(argc, argv, check_only);
  if (const int* rc = std::get_if<int>(&parsed)) return *rc;
  const auto& config_file = std::get<std::string>(parsed);

  server::install_operational_log();    // the journal under systemd, else stderr
  (void)std::signal(SIGPIPE, SIG_IGN);  // writes to a vanished peer fail with EPIPE
  (void)std::signal(SIGXFSZ, SIG_IGN);  // an audit log over RLIMIT_FSIZE fails the write (EFBIG)
  try {
    config::AgentConfig cfg = config::load_agent_config(config_file);
    spdlog::set_level(spdlog::level::from_str(cfg.log_level));
    for (const std::string& warning : cfg.warnings) spdlog::warn("configuration: {}", warning);
    // Files owned by the user the agent drops to are its own (the key must be, for reloads).
    trust_owner(static_cast<long>(cfg.run_as.uid));
    auto policy = policy::load_policy(cfg.policy_path);
    auto tls = std::make_shared<boost::asio::ssl::context>(server::make_agent_tls_context(cfg.tls));
    config::resolve_guard(cfg);      // every command runs under opsagent-guard
    config::check_trust_files(cfg);  // the TLS files, the guard, the audit log (SIGHUP: again)
    if (check_only) {
      std::printf("configuration OK: %s (policy %s, version %s)\n", config_file.c_str(),
                  cfg.policy_path.c_str(), policy->version.c_str());
      return 0;
    }
    server::Agent agent(std::move(cfg), policy, tls);
    agent.start();
    agent.run();
  } catch (const config::ConfigError& e) {
    spdlog::error("configuration error: {}", e.what());
    return kExitConfig;
  } catch (const std::exception& e) {  // the audit log or a listener cannot be opened
    spdlog::error("{}", e.what());
    return kExitConfig;
  }
  return 0;
}

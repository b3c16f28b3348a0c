// opsagent: flags, load, wire, run — nothing else. The lifecycle is server/agent.hpp.

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <variant>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "agent/config/agent_config.hpp"
#include "agent/config/config_error.hpp"
#include "agent/exec/orphan_reaper.hpp"
#include "agent/server/agent.hpp"
#include "agent/tls/tls_context.hpp"

namespace {

constexpr int kExitUsage = 64;   // EX_USAGE
constexpr int kExitConfig = 78;  // EX_CONFIG

constexpr const char* kUsage =
    "usage: opsagent --config FILE [--check-config]\n"
    "       opsagent --version\n\n"
    "  --config FILE    agent configuration (YAML); see docs/configuration.md\n"
    "  --check-config   validate the configuration, policy and TLS files, then exit\n"
    "Runs in the foreground and logs to stderr; the audit trail goes to audit.path.\n";

// The config file, or an exit status when the flags say to stop (help, version, usage error).
std::variant<std::string, int> parse_args(int argc, char** argv, bool& check_only) {
  std::string config;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--config" && i + 1 < argc) {
      config = argv[++i];
    } else if (arg.starts_with("--config=")) {
      config = arg.substr(9);
    } else if (arg == "--check-config") {
      check_only = true;
    } else if (arg == "--version") {
      std::printf("opsagent %s\n", OPSAGENT_VERSION);
      return 0;
    } else if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else {
      std::fprintf(stderr, "opsagent: unknown argument '%s'\n%s", arg.c_str(), kUsage);
      return kExitUsage;
    }
  }
  if (config.empty()) {
    std::fprintf(stderr, "opsagent: --config FILE is required\n%s", kUsage);
    return kExitUsage;
  }
  return config;
}

// Every command runs under opsagent-guard, installed beside the agent unless exec.guard says.
void find_guard(opsagent::config::AgentConfig& cfg, const std::string& config_file) {
  if (!cfg.exec.guard.empty()) return;
  std::error_code ec;
  cfg.exec.guard =
      std::filesystem::read_symlink("/proc/self/exe", ec).parent_path() / "opsagent-guard";
  if (ec || ::access(cfg.exec.guard.c_str(), X_OK) != 0) {
    throw opsagent::config::ConfigError(
        config_file + ": exec.guard: " + cfg.exec.guard.string() +
        " is not an executable program (set exec.guard to where opsagent-guard is installed)");
  }
}

}  // namespace

int main(int argc, char** argv) {
  using namespace opsagent;
  bool check_only = false;
  const auto parsed = parse_args(argc, argv, check_only);
  if (const int* rc = std::get_if<int>(&parsed)) return *rc;

  spdlog::set_default_logger(spdlog::stderr_color_mt("opsagent"));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  std::signal(SIGPIPE, SIG_IGN);  // writes to a vanished peer fail with EPIPE
  std::signal(SIGXFSZ, SIG_IGN);  // an audit log over RLIMIT_FSIZE fails the write (EFBIG)

  const std::string& config_file = std::get<std::string>(parsed);
  try {
    config::AgentConfig cfg = config::load_agent_config(config_file);
    spdlog::set_level(spdlog::level::from_str(cfg.log_level));
    auto policy = policy::load_policy(cfg.policy_path);
    auto tls = std::make_shared<boost::asio::ssl::context>(tls::make_server_context(cfg.tls));
    find_guard(cfg, config_file);
    if (check_only) {
      std::printf("configuration OK: %s (policy %s, version %s)\n", config_file.c_str(),
                  cfg.policy_path.c_str(), policy->version.c_str());
      return 0;
    }
    // Children inherit the process umask (posix_spawn cannot set one), so it is set here once.
    ::umask(cfg.exec.umask);
    // Escaped descendants are re-parented to us, not init, so they can be found and killed.
    if (auto st = exec::become_subreaper(); !st) spdlog::warn("{}", st.error().message);
    auto audit = audit::AuditLog::open(cfg.audit_path);
    if (!audit) {
      spdlog::error("{}", audit.error().message);
      return kExitConfig;
    }

    server::Agent agent(std::move(cfg), policy, tls, std::move(audit.value()));
    agent.start();
    agent.run();
  } catch (const config::ConfigError& e) {
    spdlog::error("configuration error: {}", e.what());
    return kExitConfig;
  } catch (const std::exception& e) {  // a listener that cannot be bound
    spdlog::error("{}", e.what());
    return kExitConfig;
  }
  return 0;
}

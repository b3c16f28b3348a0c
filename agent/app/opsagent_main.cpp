// opsagent: flags, load, wire, run — nothing else.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <string>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/thread_pool.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "agent/audit/audit_log.hpp"
#include "agent/config/agent_config.hpp"
#include "agent/config/config_error.hpp"
#include "agent/config/trust_files.hpp"
#include "agent/exec/orphan_reaper.hpp"
#include "agent/policy/policy.hpp"
#include "agent/server/reloader.hpp"
#include "agent/server/server.hpp"
#include "agent/tls/tls_context.hpp"

namespace {

constexpr int kExitUsage = 64;   // EX_USAGE
constexpr int kExitConfig = 78;  // EX_CONFIG
constexpr std::chrono::seconds kShutdownDeadline{5};

void print_usage(std::FILE* to) {
  std::fprintf(to,
               "usage: opsagent --config FILE [--check-config]\n"
               "       opsagent --version\n\n"
               "  --config FILE    agent configuration (YAML); see docs/configuration.md\n"
               "  --check-config   validate the configuration, policy and TLS files, then exit\n"
               "Runs in the foreground and logs to stderr; the audit trail goes to audit.path.\n");
}

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

struct Options {
  std::string config;
  bool check_only = false;
};

int parse_args(int argc, char** argv, Options& opts) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--config" && i + 1 < argc) {
      opts.config = argv[++i];
    } else if (arg.rfind("--config=", 0) == 0) {
      opts.config = arg.substr(9);
    } else if (arg == "--check-config") {
      opts.check_only = true;
    } else if (arg == "--version") {
      std::printf("opsagent %s\n", OPSAGENT_VERSION);
      return 0;
    } else if (arg == "--help" || arg == "-h") {
      print_usage(stdout);
      return 0;
    } else {
      std::fprintf(stderr, "opsagent: unknown argument '%s'\n", arg.c_str());
      print_usage(stderr);
      return kExitUsage;
    }
  }
  if (opts.config.empty()) {
    std::fprintf(stderr, "opsagent: --config FILE is required\n");
    print_usage(stderr);
    return kExitUsage;
  }
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace opsagent;
  Options opts;
  if (const int rc = parse_args(argc, argv, opts); rc >= 0) return rc;

  auto logger = spdlog::stderr_color_mt("opsagent");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  // Writes to a vanished peer must fail with EPIPE, never kill the agent.
  std::signal(SIGPIPE, SIG_IGN);
  // An audit log over RLIMIT_FSIZE must fail the write (EFBIG, then fail closed), not kill us.
  std::signal(SIGXFSZ, SIG_IGN);

  config::AgentConfig cfg;
  std::shared_ptr<const policy::Policy> policy;
  std::shared_ptr<boost::asio::ssl::context> tls;
  try {
    cfg = config::load_agent_config(opts.config);
    spdlog::set_level(spdlog::level::from_str(cfg.log_level));
    policy = policy::load_policy(cfg.policy_path);
    tls = std::make_shared<boost::asio::ssl::context>(tls::make_server_context(cfg.tls));
  } catch (const config::ConfigError& e) {
    spdlog::error("configuration error: {}", e.what());
    return kExitConfig;
  }
  if (cfg.exec.guard.empty()) {
    // Every command runs under opsagent-guard; it is installed beside the agent.
    std::error_code ec;
    const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
    cfg.exec.guard = self.parent_path() / "opsagent-guard";
    if (ec || ::access(cfg.exec.guard.c_str(), X_OK) != 0) {
      spdlog::error(
          "configuration error: {}: exec.guard: {} is not an executable program (set "
          "exec.guard to where opsagent-guard is installed)",
          opts.config, cfg.exec.guard.string());
      return kExitConfig;
    }
  }
  try {
    config::check_trust_files(cfg);  // the TLS files, the guard, the audit log (SIGHUP: again)
  } catch (const config::ConfigError& e) {
    spdlog::error("configuration error: {}", e.what());
    return kExitConfig;
  }
  if (opts.check_only) {
    std::printf("configuration OK: %s (policy %s, version %s)\n", opts.config.c_str(),
                cfg.policy_path.c_str(), policy->version.c_str());
    return 0;
  }

  // Children inherit the process umask (posix_spawn cannot set one), so it is set here once.
  ::umask(cfg.exec.umask);
  // Descendants that escape a command's process group are re-parented to us, not to init, so
  // they can be found and killed (exec/orphan_reaper.hpp).
  if (auto st = exec::become_subreaper(); !st) spdlog::warn("{}", st.error().message);

  auto audit = audit::AuditLog::open(cfg.audit_path);
  if (!audit) {
    spdlog::error("{}", audit.error().message);
    return kExitConfig;
  }

  boost::asio::io_context io(cfg.limits.io_threads);
  boost::asio::thread_pool blocking(static_cast<std::size_t>(cfg.limits.hash_threads));
  server::Snapshot<const policy::Policy> policy_store(policy);
  server::Snapshot<boost::asio::ssl::context> tls_store(tls);
  server::SessionRegistry registry({cfg.limits.max_handshakes, cfg.limits.max_clients,
                                    cfg.limits.max_clients_per_identity, cfg.limits.max_children,
                                    cfg.limits.max_digests_per_identity});
  server::ServerContext ctx{cfg,      tls_store, policy_store, *audit.value(),
                            registry, blocking,  host_name()};
  server::Server server(io, ctx);
  // Signals only through signal_set. Installed before the agent says it is listening: a SIGTERM
  // right after that line must stop it cleanly, not kill it with the default action.
  boost::asio::signal_set stop_signals(io, SIGINT, SIGTERM);
  boost::asio::signal_set reload_signal(io, SIGHUP);
  // SIGUSR1/2 would terminate the process by default; they are reserved and ignored.
  boost::asio::signal_set reserved_signals(io, SIGUSR1, SIGUSR2);
  try {
    server.start();
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return kExitConfig;
  }

  nlohmann::json listening = nlohmann::json::array();
  for (const auto& ep : server.endpoints())
    listening.push_back(ep.address().to_string() + " " + std::to_string(ep.port()));
  ctx.audit.record("agent_start", {{"version", OPSAGENT_VERSION},
                                   {"config", cfg.source.string()},
                                   {"policy", cfg.policy_path.string()},
                                   {"policy_version", policy->version},
                                   {"listen", listening}});

  // Signal handlers run as ordinary completion handlers.
  std::mutex shutdown_mutex;
  std::condition_variable shutdown_cv;
  bool shutdown_done = false;  // GUARDED_BY(shutdown_mutex)
  std::atomic<bool> shutdown_forced{false};
  std::thread shutdown_watchdog;
  stop_signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    spdlog::info("received signal {}; shutting down", sig);
    reload_signal.cancel();
    reserved_signals.cancel();
    server.stop();
    // Sessions end within moments (children are killed); should one not, the agent still exits.
    shutdown_watchdog = std::thread([&] {
      std::unique_lock lock(shutdown_mutex);
      if (!shutdown_cv.wait_for(lock, kShutdownDeadline, [&] { return shutdown_done; })) {
        spdlog::warn("sessions still open {} s after the stop signal; stopping anyway",
                     kShutdownDeadline.count());
        shutdown_forced = true;
        io.stop();
      }
    });
  });
  // A burst of SIGHUPs costs one reload, not one per signal: while a reload is queued or running,
  // further SIGHUPs only make sure one more runs after it.
  std::atomic<int> reloads_wanted{0};
  std::function<void(const boost::system::error_code&, int)> on_hup =
      [&](const boost::system::error_code& ec, int) {
        if (ec) return;
        if (reloads_wanted.fetch_add(1) == 0) {
          spdlog::info("received SIGHUP; reloading policy and TLS files, reopening the audit log");
          boost::asio::post(blocking, [&ctx, &server, &reloads_wanted] {
            int seen = 0;
            do {
              seen = reloads_wanted.load();
              server::reload(ctx);
              // Open sessions answer to the reloaded CA and CRL too, not only new connections.
              server.recheck_certificates();
            } while (reloads_wanted.fetch_sub(seen) != seen);
          });
        }
        reload_signal.async_wait(on_hup);
      };
  reload_signal.async_wait(on_hup);
  std::function<void(const boost::system::error_code&, int)> on_reserved =
      [&](const boost::system::error_code& ec, int sig) {
        if (ec) return;
        spdlog::debug("ignoring signal {}", sig);
        reserved_signals.async_wait(on_reserved);
      };
  reserved_signals.async_wait(on_reserved);

  // An exception escaping a completion handler (std::bad_alloc in Asio's own allocations) ends
  // that handler, not the thread: log it and go on running.
  const auto run_io = [&io] {
    for (;;) {
      try {
        io.run();
        return;
      } catch (const std::exception& e) {
        try {
          spdlog::error("I/O thread: {}; carrying on", e.what());
        } catch (...) {  // out of memory for the message as well
        }
      }
    }
  };
  std::vector<std::thread> threads;
  for (int i = 1; i < cfg.limits.io_threads; ++i) threads.emplace_back(run_io);
  run_io();
  for (auto& t : threads) t.join();
  {
    std::lock_guard lock(shutdown_mutex);
    shutdown_done = true;
  }
  shutdown_cv.notify_all();
  if (shutdown_watchdog.joinable()) shutdown_watchdog.join();
  blocking.join();
  exec::sweep_orphans();

  ctx.audit.record("agent_stop", {{"reason", shutdown_forced ? "deadline" : "signal"}});
  if (shutdown_forced) {
    // Unfinished session frames still refer to objects of this scope: leave without destructors.
    spdlog::shutdown();
    std::_Exit(0);
  }
  spdlog::info("stopped");
  return 0;
}

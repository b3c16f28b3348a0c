#include "agent/server/agent.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <spdlog/spdlog.h>

#include "agent/audit/audit_log.hpp"
#include "agent/audit/receipt_wake.hpp"
#include "agent/common/best_effort.hpp"
#include "agent/exec/orphan_reaper.hpp"
#include "agent/metrics/metrics_server.hpp"
#include "agent/metrics/registry.hpp"
#include "agent/server/admission.hpp"
#include "agent/server/privileges.hpp"
#include "agent/server/reloader.hpp"
#include "agent/server/server.hpp"
#include "agent/server/server_context.hpp"
#include "agent/server/service_notify.hpp"
#include "agent/server/snapshot.hpp"

namespace opsagent::server {
namespace asio = boost::asio;
using boost::system::error_code;

namespace {
constexpr std::chrono::seconds kShutdownDeadline{5};

// What the whole process needs before it creates any file or child.
bool prepare_process(const config::AgentConfig& config) {
  // Children inherit the process umask (posix_spawn cannot set one), so it is set here once;
  // the audit log is created under it too.
  ::umask(config.exec.umask);
  // Escaped descendants are re-parented to us, not init, so they can be found and killed.
  if (auto st = exec::become_subreaper(); !st) spdlog::warn("{}", st.error().message);
  return true;
}

std::unique_ptr<audit::AuditLog> open_audit_log(const config::AgentConfig& config) {
  audit::AuditLog::Options options;
  options.host = config.audit_host.empty() ? host_name() : config.audit_host;
  options.chain_key = config.audit_chain_key;
  options.sync = config.audit_sync == "none"           ? audit::SyncPolicy::none
                 : config.audit_sync == "every_record" ? audit::SyncPolicy::every_record
                                                       : audit::SyncPolicy::interval;
  options.sync_interval = std::chrono::milliseconds(config.audit_sync_interval_ms);
  if (config.audit_journald.enabled) {
    audit::SinkOptions sink;
    sink.format = audit::ShipFormat::journald;
    sink.socket = config.audit_journald.socket.string();
    sink.facility = config.audit_syslog.facility_code;
    options.sinks.push_back(std::move(sink));
  }
  if (config.audit_syslog.enabled) {
    audit::SinkOptions sink;
    sink.format = audit::ShipFormat::syslog;
    sink.socket = config.audit_syslog.socket.string();
    sink.facility = config.audit_syslog.facility_code;
    sink.sd_id = config.audit_syslog.sd_id;
    options.sinks.push_back(std::move(sink));
  }
  auto log = audit::AuditLog::open(config.audit_path, std::move(options));
  if (!log) throw std::runtime_error(log.error().message);
  return std::move(log.value());
}

}  // namespace

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

namespace {

// The I/O contexts beyond the main one: one per further I/O thread, each run by that thread
// alone (concurrency hint 1).
std::vector<std::unique_ptr<asio::io_context>> make_pinned_contexts(int io_threads) {
  std::vector<std::unique_ptr<asio::io_context>> contexts;
  for (int i = 1; i < io_threads; ++i) {
    contexts.push_back(std::make_unique<asio::io_context>(1));
    // Creates the context's reactor (epoll, eventfd, timerfd) now, not with its first
    // connection: the agent's descriptors are all open once it listens.
    const asio::steady_timer make_reactor(*contexts.back());
  }
  return contexts;
}

std::vector<asio::executor_work_guard<asio::io_context::executor_type>> keep_running(
    const std::vector<std::unique_ptr<asio::io_context>>& contexts) {
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
  guards.reserve(contexts.size());
  for (const auto& context : contexts) guards.push_back(asio::make_work_guard(*context));
  return guards;
}

}  // namespace

// Declaration order is destruction order in reverse: the server and its sessions go before the
// shared state they use.
struct Agent::State {
  State(config::AgentConfig c, std::shared_ptr<const policy::Policy> policy,
        std::shared_ptr<asio::ssl::context> tls)
      : config_store(std::make_shared<const config::AgentConfig>(std::move(c))),
        process_prepared(prepare_process(*config_store.get())),
        audit(open_audit_log(*config_store.get())),
        io(1),
        pinned(make_pinned_contexts(config_store.get()->limits.io_threads)),
        pinned_work(keep_running(pinned)),
        blocking(static_cast<std::size_t>(config_store.get()->limits.blocking_threads)),
        housekeeping(1),
        preauth_audit(*audit),
        policy_store(std::move(policy)),
        tls_store(std::move(tls)),
        registry(Admission::Limits::from(config_store.get()->limits)),
        ctx{config_store, tls_store,    policy_store,  *audit,     registry,
            blocking,     housekeeping, preauth_audit, host_name()},
        server(io, ctx, session_contexts()),
        stop_signals(io, SIGINT, SIGTERM),
        reload_signal(io, SIGHUP),
        reserved_signals(io, SIGUSR1, SIGUSR2),
        watchdog(io) {
    // A session waiting for its audit record is woken by the writer (each context is run by
    // one thread, which ReceiptWake requires).
    for (auto* context : session_contexts()) audit::install_receipt_wake(*context);
  }

  void start_metrics();
  void on_stop_signal(int sig);
  void on_reload_signal();
  void wait_reserved_signals();
  void reload_until_caught_up() noexcept;
  static void run_io(asio::io_context& context) noexcept;
  // Every connection's context: the main one, then one per further I/O thread.
  std::vector<asio::io_context*> session_contexts() {
    std::vector<asio::io_context*> all{&io};
    for (auto& context : pinned) all.push_back(context.get());
    return all;
  }
  void stop_all_io() {
    io.stop();
    for (auto& context : pinned) context->stop();
  }

  Snapshot<const config::AgentConfig> config_store;  // io_threads, blocking_threads: start-up only
  bool process_prepared;  // umask and subreaper, before the audit log or any child exists
  std::unique_ptr<audit::AuditLog> audit;
  // One io_context per I/O thread (limits.io_threads), each run by its thread alone; every
  // connection is pinned to one of them, so its handlers never hop between threads (the
  // wake-ups that cost a shared context a third of its CPU per request, README Performance).
  // `io` also holds the acceptors, signals, metrics and timers; the others only connections
  // and are kept running (pinned_work) until `io` has nothing left to do.
  asio::io_context io;
  std::vector<std::unique_ptr<asio::io_context>> pinned;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> pinned_work;
  asio::thread_pool blocking;      // client file work (hash, tail), limits.blocking_threads
  asio::thread_pool housekeeping;  // reload and the orphan sweep only: never behind client work
  PreAuthAudit preauth_audit;
  Snapshot<const policy::Policy> policy_store;
  Snapshot<asio::ssl::context> tls_store;
  Admission registry;
  ServerContext ctx;
  Server server;
  std::unique_ptr<metrics::MetricsServer> metrics_server;  // when metrics.listen is set
  // Signals only through signal_set, installed before the agent says it is listening: a SIGTERM
  // right after that line must stop it cleanly, not kill it with the default action.
  asio::signal_set stop_signals;
  asio::signal_set reload_signal;
  // SIGUSR1/2 would terminate the process by default; they are reserved and ignored.
  asio::signal_set reserved_signals;
  ServiceWatchdog watchdog;  // WATCHDOG=1 from the I/O threads when systemd asks for it

  // A burst of SIGHUPs costs one reload, not one per signal: while a reload is queued or
  // running, further SIGHUPs only make sure one more runs after it.
  std::atomic<int> reloads_wanted{0};

  std::mutex shutdown_mutex;
  std::condition_variable shutdown_cv;
  bool shutdown_done = false;  // GUARDED_BY(shutdown_mutex)
  std::atomic<bool> shutdown_forced{false};
  std::thread shutdown_watchdog;
};

Agent::Agent(config::AgentConfig config, std::shared_ptr<const policy::Policy> policy,
             std::shared_ptr<asio::ssl::context> tls)
    : state_(std::make_unique<State>(std::move(config), std::move(policy), std::move(tls))) {}

Agent::~Agent() = default;

void Agent::start() {
  State& s = *state_;
  // Metrics first: once the agent says it is listening, its endpoint is up too.
  s.start_metrics();
  s.server.start();
  // Bound and open: no root needed any more. Nothing is accepted before run().
  drop_privileges(s.config_store.get()->run_as, s.config_store.get()->audit_path);
  warn_about_root_commands(*s.config_store.get());

  nlohmann::json listening = nlohmann::json::array();
  for (const auto& ep : s.server.endpoints()) {
    listening.push_back(ep.address().is_v6()
                            ? "[" + ep.address().to_string() + "]:" + std::to_string(ep.port())
                            : ep.address().to_string() + ":" + std::to_string(ep.port()));
  }
  const auto config = s.config_store.get();
  s.audit->record("agent_start", {{"version", OPSAGENT_VERSION},
                                  {"config", config->source.string()},
                                  {"policy", config->policy_path.string()},
                                  {"policy_version", s.policy_store.get()->version},
                                  {"listen", listening}});

  // Signal handlers run as ordinary completion handlers.
  s.stop_signals.async_wait([&s](const error_code& ec, int sig) {
    if (!ec) s.on_stop_signal(sig);
  });
  s.reload_signal.async_wait([&s](const error_code& ec, int) {
    if (!ec) s.on_reload_signal();
  });
  s.wait_reserved_signals();
  s.watchdog.start();
  // Every listener is bound, privileges are dropped, signals are handled: systemd may now
  // consider the agent started (Type=notify) and order dependent units after it.
  notify_ready("serving");
}

// GET /metrics on its own listener (metrics.listen), on the same I/O threads: rendering reads
// atomics and snapshots only.
void Agent::State::start_metrics() {
  const auto config = config_store.get();
  if (!config->metrics.listen) return;
  const auto& where = *config->metrics.listen;
  const asio::ip::tcp::endpoint endpoint(asio::ip::make_address(where.host), where.port);
  metrics::MetricsServer::TlsContext tls;
  if (config->metrics.tls) tls = [this] { return tls_store.get(); };
  auto render = [this] {
    const Admission::Counts counts = registry.counts();
    metrics::ScrapeState state;
    state.connections_active = counts.clients;
    state.handshakes_active = counts.handshakes;
    state.children_active = counts.children;
    state.policy_version = policy_store.get()->version;
    state.version = OPSAGENT_VERSION;
    return metrics::render(metrics::registry(), state);
  };
  metrics_server =
      std::make_unique<metrics::MetricsServer>(io, endpoint, std::move(tls), std::move(render));
  metrics_server->start();
  const auto bound = metrics_server->endpoint();
  const std::string host = bound.address().is_v6() ? "[" + bound.address().to_string() + "]"
                                                   : bound.address().to_string();
  spdlog::info("metrics endpoint on {}://{}:{}/metrics", config->metrics.tls ? "https" : "http",
               host, bound.port());
}

void Agent::State::wait_reserved_signals() {
  reserved_signals.async_wait([this](const error_code& ec, int sig) {
    if (ec) return;
    spdlog::debug("ignoring signal {}", sig);
    wait_reserved_signals();
  });
}

void Agent::State::on_stop_signal(int sig) {
  spdlog::info("received signal {}; shutting down", sig);
  notify_stopping();
  watchdog.stop();
  reload_signal.cancel();
  reserved_signals.cancel();
  server.stop();
  if (metrics_server) metrics_server->stop();
  // Sessions end within moments (children are killed); should one not, the agent still exits.
  shutdown_watchdog = std::thread([this] {
    std::unique_lock lock(shutdown_mutex);
    if (!shutdown_cv.wait_for(lock, kShutdownDeadline, [this] { return shutdown_done; })) {
      spdlog::warn("sessions still open {} s after the stop signal; stopping anyway",
                   kShutdownDeadline.count());
      shutdown_forced = true;
      stop_all_io();
    }
  });
}

void Agent::State::on_reload_signal() {
  if (reloads_wanted.fetch_add(1) == 0) {
    spdlog::info(
        "received SIGHUP; reloading the configuration, policy and TLS files, reopening the "
        "audit log");
    asio::post(housekeeping, [this] { reload_until_caught_up(); });
  }
  reload_signal.async_wait([this](const error_code& ec, int) {
    if (!ec) on_reload_signal();
  });
}

void Agent::State::reload_until_caught_up() noexcept {
  int seen = 0;
  notify_reloading();  // Type=notify-reload and `systemctl reload` wait for the READY=1 below
  do {
    seen = reloads_wanted.load();
    reload(ctx);
    // Open sessions answer to the reloaded policy, CA and CRL too, not only new connections.
    server.recheck_sessions();
  } while (reloads_wanted.fetch_sub(seen) != seen);
  notify_ready("serving");
}

// An exception escaping a completion handler (std::bad_alloc in Asio's own allocations) ends
// that handler, not the thread: log it and go on running.
void Agent::State::run_io(asio::io_context& context) noexcept {
  for (;;) {
    try {
      context.run();
      return;
    } catch (...) {
      log_noexcept(spdlog::level::err, "I/O thread: {}; carrying on",
                   exception_text(std::current_exception()));
    }
  }
}

void Agent::run() {
  State& s = *state_;
  std::vector<std::thread> threads;
  for (auto& context : s.pinned) {
    threads.emplace_back([c = context.get()] { State::run_io(*c); });
  }
  State::run_io(s.io);
  // The main context has ended: no acceptor, no signal, every session told to stop. The other
  // contexts end once their last connections have.
  s.pinned_work.clear();
  for (auto& t : threads) t.join();
  {
    std::lock_guard lock(s.shutdown_mutex);
    s.shutdown_done = true;
  }
  s.shutdown_cv.notify_all();
  if (s.shutdown_watchdog.joinable()) s.shutdown_watchdog.join();
  s.blocking.join();
  s.housekeeping.join();
  exec::sweep_orphans();
  s.preauth_audit.flush();  // the counts of the interval cut short

  s.audit->record("agent_stop", {{"reason", s.shutdown_forced ? "deadline" : "signal"}});
  if (s.shutdown_forced) {
    // Unfinished session frames still refer to this object: leave without destructors.
    spdlog::shutdown();
    std::_Exit(0);
  }
  spdlog::info("stopped");
}

}  // namespace opsagent::server

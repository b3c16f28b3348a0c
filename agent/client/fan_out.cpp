#include "agent/client/fan_out.hpp"

#include <algorithm>
#include <csignal>
#include <exception>
#include <map>
#include <optional>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>

#include "agent/client/agent_connection.hpp"

namespace opsagent::client {
namespace asio = boost::asio;

namespace {

// Shared by the workers; they all run on the one thread of the io_context.
struct FanOutState {
  FanOutState(asio::ssl::context& tls_context, const std::vector<Target>& hosts,
              const std::string& line, const FanOutOptions& opts, Reporter& out)
      : tls(tls_context),
        targets(hosts),
        command_line(line),
        options(opts),
        reporter(out),
        results(hosts.size()),
        reported(hosts.size(), false) {}

  asio::ssl::context& tls;
  const std::vector<Target>& targets;
  const std::string& command_line;
  const FanOutOptions& options;
  Reporter& reporter;
  std::vector<HostResult> results;
  std::vector<bool> reported;
  std::size_t next = 0;
  std::size_t workers_left = 0;
  int signal = 0;  // first signal caught, 0 while running
  int signals_seen = 0;
  std::map<std::size_t, AgentConnection*> running;     // host index -> its open connection
  std::map<std::size_t, asio::steady_timer*> backoff;  // host index -> its wait to retry
  std::size_t batch_end = 0;  // workers take hosts below this index (--serial)
  std::size_t failures = 0;   // hosts that ended neither ok nor cancelled
  bool max_fail_hit = false;  // more than options.max_fail failures: no new hosts
  std::optional<asio::signal_set> signals;
  std::exception_ptr failure;
};

void report(FanOutState& state, std::size_t index, HostResult result) {
  if (result.status != HostStatus::ok && result.status != HostStatus::cancelled &&
      result.status != HostStatus::not_started) {
    ++state.failures;
    if (state.options.max_fail && state.failures > *state.options.max_fail) {
      state.max_fail_hit = true;
    }
  }
  state.results[index] = std::move(result);
  state.reported[index] = true;
  state.reporter.result(index, state.results[index]);
}

// The first signal stops the fan-out: no new host starts, running connections are closed.
// Later ones are only passed on (opsctl exits from on_signal).
void wait_for_signal(FanOutState& state) {
  state.signals->async_wait([&state](const boost::system::error_code& ec, int signal) {
    if (ec) return;  // cancelled: the fan-out is over
    ++state.signals_seen;
    if (state.signal == 0) {
      state.signal = signal;
      for (auto& [index, connection] : state.running) connection->abort();
      for (auto& [index, timer] : state.backoff) timer->cancel();
    }
    if (state.options.on_signal) state.options.on_signal(signal, state.signals_seen);
    wait_for_signal(state);
  });
}

// A worker takes the next host until none is left or the fan-out is interrupted; N workers
// give the concurrency limit. (A coroutine function, not a capturing lambda: see
// docs/development.md.)
// Waits before connecting again: 250 ms, 500 ms, 1 s, ... at most 4 s.
std::chrono::milliseconds retry_delay(int attempt) {
  return std::min(std::chrono::milliseconds(250) * (1 << std::min(attempt - 1, 4)),
                  std::chrono::milliseconds(4000));
}

bool may_start_hosts(const FanOutState& state) {
  return state.next < state.batch_end && state.signal == 0 && !state.max_fail_hit;
}

asio::awaitable<void> work(FanOutState& state) {
  const asio::any_io_executor executor = co_await asio::this_coro::executor;
  while (may_start_hosts(state)) {
    const std::size_t index = state.next++;
    FanOutState* s = &state;
    LineHandler handler = [s, index](const protocol::ReplyLine& line, std::string_view) {
      if (line.kind == protocol::ReplyKind::data) {
        s->reporter.line(index, line.channel, line.text);
      } else if (line.kind == protocol::ReplyKind::invalid) {
        s->reporter.line(index, protocol::Channel::err,
                         "opsctl: unexpected reply line: " + line.text);
      }
    };
    // Connect, again after a connection failure (--retry): nothing ran on the host yet.
    std::optional<AgentConnection> connection;
    HostResult result;
    bool cancelled = false;
    int attempt = 0;
    while (true) {
      ++attempt;
      connection.emplace(executor, state.tls, state.targets[index], state.options.timeouts);
      state.running[index] = &*connection;
      result = co_await connection->open();
      state.running.erase(index);
      if (connection->aborted()) cancelled = true;
      if (cancelled || result.status != HostStatus::unreachable ||
          attempt > state.options.retries) {
        break;
      }
      asio::steady_timer timer(executor);
      timer.expires_after(retry_delay(attempt));
      state.backoff[index] = &timer;
      co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
      state.backoff.erase(index);
      if (state.signal != 0) {
        cancelled = true;
        break;
      }
    }
    if (!cancelled && result.status == HostStatus::ok) {
      state.running[index] = &*connection;
      connection->set_idle_handler([s] { s->reporter.flush(); });
      result = co_await connection->command(state.command_line, std::move(handler));
      co_await connection->close();
      state.running.erase(index);
      cancelled = connection->aborted();
    }
    result.attempts = attempt;
    if (!cancelled && attempt > 1) result.message += fmt::format(" ({} attempts)", attempt);
    if (cancelled) {
      const auto duration = result.duration;
      result = HostResult{};
      result.status = HostStatus::cancelled;
      result.code = "interrupted";
      result.message = "interrupted by " + signal_name(state.signal) + "; connection closed";
      result.duration = duration;
      result.attempts = attempt;
    }
    report(state, index, std::move(result));
  }
}

}  // namespace

FanOutOutcome run_fan_out(asio::ssl::context& tls, const std::vector<Target>& targets,
                          const std::string& command_line, const FanOutOptions& options,
                          Reporter& reporter) {
  asio::io_context io(1);
  FanOutState state(tls, targets, command_line, options, reporter);
  if (options.handle_signals) state.signals.emplace(io, SIGINT, SIGTERM);
  const std::size_t batch = options.serial == 0 ? targets.size() : options.serial;
  std::size_t batches = 0;
  // One pass of the io_context per batch (--serial); without it, one batch of every host.
  while (state.next < targets.size() && state.signal == 0 && !state.max_fail_hit) {
    state.batch_end = std::min(state.next + batch, targets.size());
    ++batches;
    if (state.signals) wait_for_signal(state);  // signals that came between batches wait here
    const std::size_t workers = std::min({std::max<std::size_t>(options.concurrency, 1),
                                          kMaxConnections, state.batch_end - state.next});
    state.workers_left = workers;
    for (std::size_t i = 0; i < workers; ++i) {
      asio::co_spawn(io, work(state), [&state](const std::exception_ptr& e) {
        if (e && !state.failure) state.failure = e;
        // The last worker ends the wait for signals, so io.run() returns.
        if (--state.workers_left == 0 && state.signals) state.signals->cancel();
      });
    }
    io.restart();
    io.run();
    if (state.failure) std::rethrow_exception(state.failure);
  }

  // Hosts no worker reached (interrupted, or --max-fail).
  for (std::size_t i = 0; i < targets.size(); ++i) {
    if (state.reported[i]) continue;
    HostResult r;
    r.status = HostStatus::not_started;
    if (state.signal != 0) {
      r.code = "interrupted";
      r.message = "not started: interrupted by " + signal_name(state.signal);
    } else {
      r.code = "max_fail";
      r.message = fmt::format("not started: more than {} hosts failed (--max-fail)",
                              options.max_fail.value_or(0));
    }
    report(state, i, std::move(r));
  }
  FanOutOutcome outcome{std::move(state.results), state.signal};
  outcome.batches = batches;
  outcome.stopped_by_max_fail = state.max_fail_hit && state.signal == 0;
  return outcome;
}

}  // namespace opsagent::client

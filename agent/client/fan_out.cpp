#include "agent/client/fan_out.hpp"

#include <algorithm>
#include <csignal>
#include <exception>
#include <map>
#include <optional>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

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
  std::map<std::size_t, AgentConnection*> running;  // host index -> its open connection
  std::optional<asio::signal_set> signals;
  std::exception_ptr failure;
};

void report(FanOutState& state, std::size_t index, HostResult result) {
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
    }
    if (state.options.on_signal) state.options.on_signal(signal, state.signals_seen);
    wait_for_signal(state);
  });
}

// A worker takes the next host until none is left or the fan-out is interrupted; N workers
// give the concurrency limit. (A coroutine function, not a capturing lambda: see
// docs/development.md.)
asio::awaitable<void> work(FanOutState& state) {
  const asio::any_io_executor executor = co_await asio::this_coro::executor;
  while (state.next < state.targets.size() && state.signal == 0) {
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
    AgentConnection connection(executor, state.tls, state.targets[index], state.options.timeouts);
    state.running[index] = &connection;
    HostResult result = co_await connection.open();
    if (result.status == HostStatus::ok && !connection.aborted()) {
      result = co_await connection.command(state.command_line, std::move(handler));
      co_await connection.close();
    }
    state.running.erase(index);
    if (connection.aborted()) {
      const auto duration = result.duration;
      result = HostResult{};
      result.status = HostStatus::cancelled;
      result.code = "interrupted";
      result.message = "interrupted by " + signal_name(state.signal) + "; connection closed";
      result.duration = duration;
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
  if (options.handle_signals) {
    state.signals.emplace(io, SIGINT, SIGTERM);
    wait_for_signal(state);
  }
  const std::size_t workers =
      std::min(std::max<std::size_t>(options.concurrency, 1), targets.size());
  state.workers_left = workers;
  for (std::size_t i = 0; i < workers; ++i) {
    asio::co_spawn(io, work(state), [&state](const std::exception_ptr& e) {
      if (e && !state.failure) state.failure = e;
      // The last worker ends the wait for signals, so io.run() returns.
      if (--state.workers_left == 0 && state.signals) state.signals->cancel();
    });
  }
  if (workers == 0 && state.signals) state.signals->cancel();
  io.run();
  if (state.failure) std::rethrow_exception(state.failure);

  // Hosts no worker reached (interrupted before they started).
  for (std::size_t i = 0; i < targets.size(); ++i) {
    if (state.reported[i]) continue;
    HostResult r;
    r.status = HostStatus::not_started;
    r.code = "interrupted";
    r.message = "not started: interrupted by " + signal_name(state.signal);
    report(state, i, std::move(r));
  }
  return FanOutOutcome{std::move(state.results), state.signal};
}

}  // namespace opsagent::client

#include "agent/client/fan_out.hpp"

#include <algorithm>
#include <exception>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "agent/client/agent_connection.hpp"

namespace opsagent::client {
namespace asio = boost::asio;

namespace {

// Shared by the workers; they all run on the one thread of the io_context.
struct FanOutState {
  asio::ssl::context& tls;
  const std::vector<Target>& targets;
  const std::string& command_line;
  const FanOutOptions& options;
  Reporter& reporter;
  std::vector<HostResult> results;
  std::size_t next = 0;
  std::exception_ptr failure;
};

// A worker takes the next host until none is left; N workers give the concurrency limit.
// (A coroutine function, not a capturing lambda: see docs/development.md.)
asio::awaitable<void> work(FanOutState& state) {
  const asio::any_io_executor executor = co_await asio::this_coro::executor;
  while (state.next < state.targets.size()) {
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
    Target target = state.targets[index];
    std::string command_line = state.command_line;
    HostResult result =
        co_await run_on_host(executor, state.tls, std::move(target), state.options.timeouts,
                             std::move(command_line), std::move(handler));
    state.results[index] = std::move(result);
    state.reporter.result(index, state.results[index]);
  }
}

}  // namespace

std::vector<HostResult> run_fan_out(asio::ssl::context& tls, const std::vector<Target>& targets,
                                    const std::string& command_line, const FanOutOptions& options,
                                    Reporter& reporter) {
  asio::io_context io(1);
  FanOutState state{tls,     targets,  command_line,
                    options, reporter, std::vector<HostResult>(targets.size()),
                    0,       nullptr};
  const std::size_t workers =
      std::min(std::max<std::size_t>(options.concurrency, 1), targets.size());
  for (std::size_t i = 0; i < workers; ++i) {
    asio::co_spawn(io, work(state), [&state](const std::exception_ptr& e) {
      if (e && !state.failure) state.failure = e;
    });
  }
  io.run();
  if (state.failure) std::rethrow_exception(state.failure);
  return std::move(state.results);
}

}  // namespace opsagent::client

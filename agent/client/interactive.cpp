#include "agent/client/interactive.hpp"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <optional>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <editline/readline.h>
#include <fmt/format.h>

#include "agent/client/agent_connection.hpp"
#include "agent/client/output.hpp"
#include "agent/common/environment.hpp"
#include "agent/protocol/verbs.hpp"

namespace opsagent::client {
namespace asio = boost::asio;
namespace fs = std::filesystem;

namespace {

constexpr int kHistoryLines = 1000;

// Runs one step of `connection` to completion. Network I/O happens only here, while the
// user is not typing; between commands the io_context is idle. A Ctrl-C meanwhile aborts the
// connection (the agent then ends the command) and the step returns its failure; between steps
// Ctrl-C is ignored, so it never ends the shell.
HostResult run_step(asio::io_context& io, AgentConnection& connection,
                    asio::awaitable<HostResult> step) {
  std::optional<HostResult> result;
  std::exception_ptr error;
  {
    asio::signal_set interrupt(io, SIGINT);
    interrupt.async_wait([&connection](const boost::system::error_code& ec, int) {
      if (!ec) connection.abort();
    });
    asio::co_spawn(io, std::move(step), [&](const std::exception_ptr& e, HostResult r) {
      error = e;
      if (!e) result = std::move(r);
      interrupt.cancel();
    });
    io.restart();
    io.run();
  }
  (void)std::signal(SIGINT, SIG_IGN);  // the signal_set put the default action back
  if (error) std::rethrow_exception(error);
  return std::move(*result);
}

// Prints a line from the agent, escaped: the shell shows the protocol as it is, but never a
// control byte from the network (SECURITY-MATRIX I11).
void print_line(std::string_view text) {
  const std::string shown = protocol::sanitize_line(text);
  (void)std::fwrite(shown.data(), 1, shown.size(), stdout);
  (void)std::fputc('\n', stdout);
  (void)std::fflush(stdout);
}

void print_reply_line(const protocol::ReplyLine& /*line*/, std::string_view raw) {
  print_line(raw);
}

std::string trim(const std::string& s) {
  const auto first = s.find_first_not_of(" \t");
  if (first == std::string::npos) return {};
  const auto last = s.find_last_not_of(" \t");
  return s.substr(first, last - first + 1);
}

struct FreeDeleter {
  void operator()(char* p) const noexcept { std::free(p); }  // NOLINT(cppcoreguidelines-no-malloc)
};

}  // namespace

fs::path default_history_file() {
  if (const char* state = common::env_var("XDG_STATE_HOME"); state != nullptr && *state != '\0') {
    return fs::path(state) / "opsctl" / "history";
  }
  if (const char* home = common::env_var("HOME"); home != nullptr && *home != '\0') {
    return fs::path(home) / ".local" / "state" / "opsctl" / "history";
  }
  return {};
}

int run_interactive(asio::ssl::context& tls, const Target& target, const Timeouts& timeouts,
                    const fs::path& history_file) {
  asio::io_context io(1);
  (void)std::signal(SIGINT, SIG_IGN);
  auto connection = std::make_unique<AgentConnection>(io.get_executor(), tls, target, timeouts);
  const auto connect = [&]() -> std::optional<int> {
    const HostResult opened = run_step(io, *connection, connection->open());
    if (connection->aborted()) return exit_status::interrupted(SIGINT);
    if (opened.status != HostStatus::ok) {
      (void)std::fprintf(stderr, "%s\n", failure_message(target, opened).c_str());
      return single_host_exit_status(opened);
    }
    print_line(connection->greeting());
    return std::nullopt;
  };
  if (const auto failed = connect()) return *failed;

  if (!history_file.empty()) {
    std::error_code ec;
    fs::create_directories(history_file.parent_path(), ec);
    ::read_history(history_file.c_str());
  }
  ::stifle_history(kHistoryLines);
  const std::string prompt = protocol::sanitize_line(target.name) + "> ";
  int status = 0;
  while (true) {
    errno = 0;
    std::unique_ptr<char, FreeDeleter> raw(::readline(prompt.c_str()));
    std::string line;
    if (!raw && errno == EINTR) {
      // Ctrl-C at the prompt: libedit catches SIGINT while it reads and gives up the line.
      // Like a shell, drop what was typed and prompt again; only Ctrl-D (end of input) leaves.
      (void)std::fputc('\n', stdout);
      continue;
    }
    if (!raw) {
      // End of input: leave politely, as if the user had typed `exit`.
      (void)std::fputc('\n', stdout);
      line = protocol::spec_of(protocol::Verb::exit).name;
    } else {
      line = trim(raw.get());
      if (line.empty()) continue;  // the agent does not answer blank lines
      ::add_history(line.c_str());
    }
    const protocol::VerbSpec* verb = protocol::find_verb(line);
    const bool leaving = verb != nullptr && verb->ends_session;
    const HostResult reply = run_step(io, *connection, connection->command(line, print_reply_line));
    if (connection->aborted()) {
      // Ctrl-C: the protocol has no way to stop one command, so the connection was closed
      // (which ends the command on the agent); a new one keeps the shell going.
      (void)std::fprintf(stderr, "\nopsctl: %s: command cancelled; reconnecting\n",
                         protocol::sanitize_line(target.name).c_str());
      if (leaving) break;
      connection = std::make_unique<AgentConnection>(io.get_executor(), tls, target, timeouts);
      if (const auto failed = connect()) {
        status = *failed;
        break;
      }
      continue;
    }
    if (!connection->is_open() && reply.code == "timeout") {
      (void)std::fprintf(stderr, "%s\n", failure_message(target, reply).c_str());
      status = single_host_exit_status(reply);
      break;
    }
    if (reply.code == "connection" || reply.code == "protocol") {
      if (!leaving) {
        (void)std::fprintf(stderr, "%s\n", failure_message(target, reply).c_str());
        status = single_host_exit_status(reply);
      }
      break;
    }
    if (leaving) break;
  }
  if (!history_file.empty()) {
    ::write_history(history_file.c_str());
  }
  asio::co_spawn(io, connection->close(), [](const std::exception_ptr&) {});
  io.restart();
  io.run();
  return status;
}

}  // namespace opsagent::client

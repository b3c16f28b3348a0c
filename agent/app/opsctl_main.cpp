// opsctl: flags, load, wire, run — nothing else. The client for scripts and fleets
// (docs/opsctl.md).

#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <unistd.h>
#include <vector>

#include <fmt/format.h>
#include <openssl/ssl.h>

#include "agent/client/cli.hpp"
#include "agent/client/client_config.hpp"
#include "agent/client/fan_out.hpp"
#include "agent/client/host_result.hpp"
#include "agent/client/interactive.hpp"
#include "agent/client/inventory.hpp"
#include "agent/client/output.hpp"
#include "agent/client/session_cache.hpp"
#include "agent/common/environment.hpp"
#include "agent/common/errno_text.hpp"
#include "agent/config/config_error.hpp"
#include "agent/protocol/command_parser.hpp"
#include "agent/protocol/reply_formatter.hpp"
#include "agent/protocol/verbs.hpp"
#include "agent/tls/tls_context.hpp"

namespace {

using namespace opsagent;
using namespace opsagent::client;

// Messages may quote inventory names or target patterns: escaped like everything opsctl prints.
void print_error(const std::string& message) {
  (void)std::fprintf(stderr, "opsctl: %s\n", protocol::sanitize_line(message).c_str());
}

[[noreturn]] void usage_error(const std::string& message) {
  print_error(message + " (see opsctl --help)");
  // NOLINTNEXTLINE(concurrency-mt-unsafe): argument errors come before any thread starts
  std::exit(exit_status::kUsage);
}

// Builds the protocol line and checks it the way the agent will (one line, no controls).
std::string command_line(const std::vector<std::string>& words) {
  std::string line;
  for (const auto& w : words) {
    if (!line.empty()) line.push_back(' ');
    line += protocol::quote_argument(w);
  }
  const auto parsed = protocol::parse_command(line);
  if (!parsed) usage_error("invalid command: " + parsed.error().message);
  if (parsed->verb != words.front() || parsed->args.size() + 1 != words.size()) {
    usage_error("invalid command");
  }
  return line;
}

// The hosts that were not ok, one per line, for `--limit @FILE` (an Ansible retry file).
bool write_retry_file(const std::string& path, const std::vector<Target>& targets,
                      const std::vector<HostResult>& results) {
  std::string text;
  for (std::size_t i = 0; i < targets.size() && i < results.size(); ++i) {
    if (results[i].status != HostStatus::ok) text += targets[i].name + "\n";
  }
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) {
    print_error(path + ": cannot write the retry file: " + common::errno_text(errno));
    return false;
  }
  const bool written = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  if (std::fclose(f) != 0 || !written) {
    print_error(path + ": cannot write the retry file: " + common::errno_text(errno));
    return false;
  }
  return true;
}

// `all`, the groups and the hosts, one per line, for shell completion (names escaped).
void list_names(const Inventory& inventory) {
  std::string text = "all\n";
  for (const auto& [group, hosts] : inventory.groups()) {
    if (group != "all") text += protocol::sanitize_line(group) + "\n";
  }
  for (const auto& host : inventory.hosts()) text += protocol::sanitize_line(host.name) + "\n";
  (void)std::fwrite(text.data(), 1, text.size(), stdout);
}

// Whether stream `fd` gets colours (--color, NO_COLOR, TERM, a terminal).
bool colour_for(ColourChoice choice, int fd) {
  return colour_wanted(choice, ::isatty(fd) == 1, common::env_var("NO_COLOR"),
                       common::env_var("TERM"));
}

int run(int argc, char** argv) {
  // Writes to a vanished agent must fail with EPIPE, never kill opsctl.
  (void)std::signal(SIGPIPE, SIG_IGN);
  auto parsed = parse_command_line(std::vector<std::string>(argv + 1, argv + argc));
  if (auto* done = std::get_if<CliExit>(&parsed)) {
    (void)std::fputs(done->out.c_str(), stdout);
    // The message may quote a target pattern: escaped like everything opsctl prints.
    if (!done->err.empty()) {
      (void)std::fprintf(stderr, "%s\n", protocol::sanitize_line(done->err).c_str());
    }
    return done->status;
  }
  const CliOptions& opts = std::get<CliOptions>(parsed);

  ClientSettings settings;
  std::optional<Inventory> inventory;
  try {
    settings = resolve_client_settings(opts.flags, process_env);
    if (!settings.inventory.empty()) inventory.emplace(Inventory::load(settings.inventory));
  } catch (const std::exception& e) {
    print_error(e.what());
    return exit_status::kConfig;
  }

  if (opts.list_names) {
    if (!inventory) usage_error("--list-names needs an inventory (-i or $OPSCTL_INVENTORY)");
    list_names(*inventory);
    return 0;
  }

  std::string limit = opts.limit;
  if (!limit.empty() && limit.front() == '@') {
    auto listed = read_limit_file(limit.substr(1));
    if (!listed) usage_error(listed.error().message);
    limit = std::move(listed.value());
  }
  auto selection =
      select_targets(inventory ? &*inventory : nullptr, opts.targets, settings.port, limit);
  if (!selection) usage_error(selection.error().message);
  const std::vector<Target>& targets = selection->targets;
  if (opts.list_targets) {
    for (const auto& t : targets) {
      std::printf("%s\t%s\t%u\t%s\n", protocol::sanitize_line(t.name).c_str(),
                  protocol::sanitize_line(t.address).c_str(), t.port,
                  protocol::sanitize_line(t.server_name).c_str());
    }
    return 0;
  }

  std::optional<boost::asio::ssl::context> tls;
  try {
    require_tls_files(settings);
    check_tls_files_readable(settings);
    check_private_key_mode(settings.tls.private_key);
    tls.emplace(tls::make_client_context(settings.tls));
    // A fan-out holds up to -j connections that mostly wait: OpenSSL frees a connection's
    // record buffers (about 34 KiB) while they are empty instead of keeping them.
    SSL_CTX_set_mode(tls->native_handle(), SSL_MODE_RELEASE_BUFFERS);
    if (settings.resume) {
      SessionCache::attach(*tls, std::make_shared<SessionCache>(
                                     default_session_cache_dir(),
                                     session_scope(tls->native_handle(), settings.tls.ca)));
    } else {
      // Tells the agent not to make a ticket this client would drop (it costs the agent CPU).
      SSL_CTX_set_options(tls->native_handle(), SSL_OP_NO_TICKET);
    }
  } catch (const std::exception& e) {
    print_error(e.what());
    return exit_status::kConfig;
  }

  if (opts.command.empty()) {
    if (targets.size() != 1) {
      usage_error("an interactive session needs exactly one host; give a COMMAND for several");
    }
    if (opts.raw_bytes) usage_error("--raw-bytes needs a COMMAND (the shell always escapes)");
    return run_interactive(*tls, targets.front(), settings.timeouts, default_history_file());
  }
  const std::string line = command_line(opts.command);

  const bool single = selection->single_host;
  const OutputMode mode = opts.output.value_or(single ? OutputMode::raw : OutputMode::prefix);
  // Raw bytes only where nothing else shares the stream: one host's own lines, no prefixes.
  if (opts.raw_bytes && (!single || mode != OutputMode::raw)) {
    usage_error("--raw-bytes needs exactly one host and -o raw");
  }
  ProgressLine progress(stderr, !single && ::isatty(STDERR_FILENO) == 1, targets.size());
  ReportOptions report;
  report.raw_bytes = opts.raw_bytes;
  report.sort = opts.sort;
  report.collapse = opts.collapse;
  report.quiet = opts.quiet;
  report.colour_out = colour_for(opts.colour, STDOUT_FILENO);
  report.colour_err = colour_for(opts.colour, STDERR_FILENO);
  auto reporter = make_reporter(mode, targets, OutputStreams{}, progress, report);
  FanOutOptions fan_out;
  fan_out.timeouts = settings.timeouts;
  fan_out.concurrency = settings.concurrency;
  fan_out.retries = opts.retries;
  if (opts.serial) fan_out.serial = opts.serial->of(targets.size(), true);
  if (opts.max_fail) fan_out.max_fail = opts.max_fail->of(targets.size(), false);
  // Ctrl-C: the fan-out stops starting hosts and closes the running ones; a second one leaves
  // at once, with the terminal clean.
  fan_out.handle_signals = true;
  fan_out.on_signal = [&progress](int signal, int count) {
    progress.clear();
    if (count > 1) std::_Exit(exit_status::interrupted(signal));
    print_error(signal_name(signal) +
                ": stopping: no new hosts, closing the running ones (again to quit at once)");
  };
  const auto started = std::chrono::steady_clock::now();
  FanOutOutcome outcome;
  try {
    outcome = run_fan_out(*tls, targets, line, fan_out, *reporter);
  } catch (const std::exception& e) {
    progress.clear();
    print_error(std::string("internal error: ") + e.what());
    return exit_status::kAgentError;
  }
  progress.clear();
  reporter->finish();
  const std::vector<HostResult>& results = outcome.results;
  const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started);
  RunFacts facts;
  facts.signal = outcome.signal;
  facts.serial = fan_out.serial;
  facts.batches = outcome.batches;
  facts.max_fail = fan_out.max_fail;
  facts.stopped_by_max_fail = outcome.stopped_by_max_fail;
  if (mode == OutputMode::json && (!single || outcome.signal != 0)) {
    std::printf("%s\n", json_summary(targets, results, elapsed, facts).c_str());
    (void)std::fflush(stdout);
  }
  if (!opts.retry_file.empty() && !write_retry_file(opts.retry_file, targets, results)) {
    return exit_status::kConfig;
  }

  if (single) {
    const std::string message = failure_message(targets.front(), results.front());
    if (!message.empty() && mode != OutputMode::json) {
      (void)std::fprintf(stderr, "%s\n", message.c_str());
    }
    return outcome.signal != 0 ? exit_status::interrupted(outcome.signal)
                               : single_host_exit_status(results.front());
  }
  if (opts.summary || outcome.signal != 0) {
    const std::string summary = format_summary(targets, results, elapsed, facts);
    (void)std::fwrite(summary.data(), 1, summary.size(), stderr);
  }
  return outcome.signal != 0 ? exit_status::interrupted(outcome.signal)
                             : fan_out_exit_status(results);
}

// Output that could not be written (a full disk, a closed pipe) must not pass for success: a
// script would take the part that was written for the whole. A status that already says
// something failed is kept; a success becomes kOutput. A closed pipe is the reader's choice
// (`opsctl ... | head -1`): the status says it, no message does.
int finish_output(int status) {
  errno = 0;
  const bool flushed = std::fflush(stdout) == 0;
  if (flushed && std::ferror(stdout) == 0) return status;
  const int err = flushed || errno == 0 ? stdout_write_error() : errno;
  if (err != EPIPE) {
    print_error(err != 0
                    ? std::string("cannot write to standard output: ") + common::errno_text(err)
                    : std::string("cannot write to standard output"));
  }
  return status == exit_status::kOk ? exit_status::kOutput : status;
}

// stdio gives a pipe or a file a 4 KiB buffer: a write(2) for every 4 KiB of streamed output.
// The reporters flush whenever the connection has nothing more to read, so a bigger buffer
// holds no line back while a command is quiet; a terminal keeps its line buffering. Called
// before anything is written to stdout (setvbuf's precondition).
void size_stdout_buffer() {
  if (::isatty(STDOUT_FILENO) == 1) return;
  static std::array<char, std::size_t{64} * 1024> buffer;
  (void)std::setvbuf(stdout, buffer.data(), _IOFBF, buffer.size());
}

}  // namespace

// NOLINTNEXTLINE(bugprone-exception-escape): only std::bad_alloc, which ends it
int main(int argc, char** argv) {
  size_stdout_buffer();
  return finish_output(run(argc, argv));
}

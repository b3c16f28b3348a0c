// opsctl: flags, load, wire, run — nothing else. The client for scripts and fleets
// (docs/opsctl.md).

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <unistd.h>
#include <vector>

#include <fmt/format.h>

#include "agent/client/client_config.hpp"
#include "agent/client/fan_out.hpp"
#include "agent/client/host_result.hpp"
#include "agent/client/interactive.hpp"
#include "agent/client/inventory.hpp"
#include "agent/client/output.hpp"
#include "agent/config/config_error.hpp"
#include "agent/protocol/command_parser.hpp"
#include "agent/protocol/reply_formatter.hpp"
#include "agent/protocol/verbs.hpp"
#include "agent/tls/tls_context.hpp"

namespace {

using namespace opsagent;
using namespace opsagent::client;
namespace fs = std::filesystem;

constexpr std::string_view kUsage = R"(usage: opsctl [OPTIONS] TARGETS [COMMAND [ARGS...]]
       opsctl [OPTIONS] --list-targets TARGETS
       opsctl --help | --version

Runs one opsagent command on one host or a fleet, or (without COMMAND and with exactly one
host) opens an interactive shell on it. COMMAND is an agent command; the agent's policy decides
which of these you may use:
{commands}

TARGETS  comma-separated: HOST[:PORT], [IPv6]:PORT, inventory host or group names, `all`,
         globs (web*, db-[12]) and !EXCLUDED terms; e.g. 'web,db1,!web3'

Options (before TARGETS):
  -i, --inventory FILE     inventory: opsctl YAML or Ansible YAML ($OPSCTL_INVENTORY)
  -c, --config FILE        client config file ($OPSCTL_CONFIG; default ~/.config/opsctl/config.yaml)
      --cert FILE          client certificate, PEM ($OPSCTL_CERT)
      --key FILE           client private key, PEM, mode 0600 ($OPSCTL_KEY)
      --ca FILE            CA that signed the agents' certificates ($OPSCTL_CA)
  -p, --port PORT          agent port for hosts that name none ($OPSCTL_PORT)
  -o, --output MODE        raw | prefix | grouped | json (default: raw for one host, prefix for several)
      --json               same as -o json (one JSON object per line on stdout)
      --raw-bytes          one host, -o raw: write the command's output lines exactly as received,
                           control characters included (default: escaped as \xNN, \uNNNN)
  -j, --concurrency N      hosts in flight at once (default 64)
      --connect-timeout D  resolve + TCP connect (default 5s)
      --handshake-timeout D  TLS handshake + greeting (default 10s)
  -t, --timeout D          command, from sending it to the final reply line (default 5m; 0 = none)
      --no-summary         no summary on stderr after a fan-out
      --list-targets       print NAME ADDRESS PORT SERVER_NAME (tab-separated) per selected host
  -h, --help, --version
Durations: 250ms, 10s, 5m, 1h. The agent certificate must chain to the CA and carry the
host's DNS name or IP address (SAN); there is no way to turn this off. Control characters,
bidi controls and invalid UTF-8 from an agent or an inventory are never written to the
terminal: human output escapes them, JSON output is ASCII with \uNNNN escapes.

Exit status:
  one host   the remote command's exit status (0-255; 128+N when killed by signal N), or
             a code below when it did not run
  fan-out    0 when every host is ok, else the first of 67, 65, 66, 70, 69, 68, 1 that applies
  1   some host's command failed (fan-out)     67  TLS failure (untrusted, name mismatch)
  64  usage error (arguments, targets)          68  cannot connect (refused, unreachable, DNS)
  65  denied by the agent's policy              69  timeout (handshake, command, agent-side)
  66  unknown command or bad arguments (agent)  70  other agent error (busy, limit, notfound, internal)
  78  configuration error (config, inventory, certificate files)
)";

// kUsage with the agent's commands listed from the protocol's verb table.
std::string usage_text() {
  std::string commands;
  for (const auto& verb : protocol::all_verbs()) {
    if (!commands.empty()) commands += '\n';
    commands += fmt::format("  {:<26} {}", verb.usage, verb.summary);
  }
  return fmt::format(fmt::runtime(kUsage), fmt::arg("commands", commands));
}

struct Options {
  ClientFlags flags;
  std::optional<OutputMode> output;
  bool raw_bytes = false;
  bool summary = true;
  bool list_targets = false;
  std::string targets;
  std::vector<std::string> command;
};

// Messages may quote inventory names or target patterns: escaped like everything opsctl prints.
void print_error(const std::string& message) {
  std::fprintf(stderr, "opsctl: %s\n", protocol::sanitize_line(message).c_str());
}

[[noreturn]] void usage_error(const std::string& message) {
  print_error(message + " (see opsctl --help)");
  std::exit(exit_status::kUsage);
}

std::uint16_t parse_port_flag(const std::string& v) {
  if (v.empty() || v.size() > 5 || v.find_first_not_of("0123456789") != std::string::npos)
    usage_error("--port needs 1-65535");
  const int p = std::stoi(v);
  if (p < 1 || p > 65535) usage_error("--port needs 1-65535");
  return static_cast<std::uint16_t>(p);
}

std::optional<int> parse_args(std::vector<std::string> args, Options& o) {
  std::size_t i = 0;
  const auto value = [&](const std::string& name) -> std::string {
    if (i + 1 >= args.size()) usage_error(name + " needs a value");
    return args[++i];
  };
  const auto duration = [&](const std::string& name, bool allow_zero) {
    const std::string v = value(name);
    try {
      return parse_duration_flag(name, v, allow_zero);
    } catch (const std::exception& e) {
      usage_error(e.what());
    }
  };
  for (; i < args.size(); ++i) {
    std::string arg = args[i];
    // --name=value is the same as --name value.
    if (const auto eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      args.insert(args.begin() + static_cast<std::ptrdiff_t>(i) + 1, arg.substr(eq + 1));
      arg.resize(eq);
      args[i] = arg;
    }
    if (arg == "-h" || arg == "--help") {
      std::fputs(usage_text().c_str(), stdout);
      return 0;
    }
    if (arg == "--version") {
      std::printf("opsctl %s\n", OPSAGENT_VERSION);
      return 0;
    }
    if (arg == "-i" || arg == "--inventory") {
      o.flags.inventory = value(arg);
    } else if (arg == "-c" || arg == "--config") {
      o.flags.config = value(arg);
    } else if (arg == "--cert") {
      o.flags.certificate = value(arg);
    } else if (arg == "--key") {
      o.flags.private_key = value(arg);
    } else if (arg == "--ca") {
      o.flags.ca = value(arg);
    } else if (arg == "-p" || arg == "--port") {
      o.flags.port = parse_port_flag(value(arg));
    } else if (arg == "-o" || arg == "--output") {
      const std::string m = value(arg);
      if (m == "raw") {
        o.output = OutputMode::raw;
      } else if (m == "prefix") {
        o.output = OutputMode::prefix;
      } else if (m == "grouped") {
        o.output = OutputMode::grouped;
      } else if (m == "json") {
        o.output = OutputMode::json;
      } else {
        usage_error("--output is raw, prefix, grouped or json");
      }
    } else if (arg == "--json") {
      o.output = OutputMode::json;
    } else if (arg == "--raw-bytes") {
      o.raw_bytes = true;
    } else if (arg == "-j" || arg == "--concurrency") {
      const std::string v = value(arg);
      if (v.empty() || v.size() > 4 || v.find_first_not_of("0123456789") != std::string::npos ||
          std::stoi(v) < 1) {
        usage_error("--concurrency needs 1-9999");
      }
      o.flags.concurrency = static_cast<std::size_t>(std::stoi(v));
    } else if (arg == "--connect-timeout") {
      o.flags.connect_timeout = duration(arg, false);
    } else if (arg == "--handshake-timeout") {
      o.flags.handshake_timeout = duration(arg, false);
    } else if (arg == "-t" || arg == "--timeout") {
      o.flags.command_timeout = duration(arg, true);
    } else if (arg == "--no-summary") {
      o.summary = false;
    } else if (arg == "--list-targets") {
      o.list_targets = true;
    } else if (arg == "--") {
      ++i;
      break;
    } else if (!arg.empty() && arg[0] == '-' && arg != "-") {
      usage_error("unknown option '" + arg + "'");
    } else {
      break;
    }
  }
  if (i >= args.size()) usage_error("no TARGETS given");
  o.targets = args[i++];
  for (; i < args.size(); ++i) o.command.push_back(args[i]);
  return std::nullopt;
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
  if (parsed->verb != words.front() || parsed->args.size() + 1 != words.size())
    usage_error("invalid command");
  return line;
}

}  // namespace

int main(int argc, char** argv) {
  // Writes to a vanished agent must fail with EPIPE, never kill opsctl.
  std::signal(SIGPIPE, SIG_IGN);
  Options opts;
  if (const auto rc = parse_args(std::vector<std::string>(argv + 1, argv + argc), opts)) return *rc;

  ClientSettings settings;
  std::optional<Inventory> inventory;
  try {
    settings = resolve_client_settings(opts.flags, process_env);
    if (!settings.inventory.empty()) inventory.emplace(Inventory::load(settings.inventory));
  } catch (const std::exception& e) {
    print_error(e.what());
    return exit_status::kConfig;
  }

  auto selection = select_targets(inventory ? &*inventory : nullptr, opts.targets, settings.port);
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
    check_private_key_mode(settings.tls.private_key);
    tls.emplace(tls::make_client_context(settings.tls));
  } catch (const std::exception& e) {
    print_error(e.what());
    return exit_status::kConfig;
  }

  if (opts.command.empty()) {
    if (targets.size() != 1)
      usage_error("an interactive session needs exactly one host; give a COMMAND for several");
    if (opts.raw_bytes) usage_error("--raw-bytes needs a COMMAND (the shell always escapes)");
    return run_interactive(*tls, targets.front(), settings.timeouts, default_history_file());
  }
  const std::string line = command_line(opts.command);

  const bool single = selection->single_host;
  const OutputMode mode = opts.output.value_or(single ? OutputMode::raw : OutputMode::prefix);
  // Raw bytes only where nothing else shares the stream: one host's own lines, no prefixes.
  if (opts.raw_bytes && (!single || mode != OutputMode::raw))
    usage_error("--raw-bytes needs exactly one host and -o raw");
  ProgressLine progress(stderr, !single && ::isatty(STDERR_FILENO) == 1, targets.size());
  auto reporter = make_reporter(mode, targets, OutputStreams{}, progress, opts.raw_bytes);
  FanOutOptions fan_out{settings.timeouts, settings.concurrency};
  const auto started = std::chrono::steady_clock::now();
  std::vector<HostResult> results;
  try {
    results = run_fan_out(*tls, targets, line, fan_out, *reporter);
  } catch (const std::exception& e) {
    progress.clear();
    print_error(std::string("internal error: ") + e.what());
    return exit_status::kAgentError;
  }
  progress.clear();

  if (single) {
    const std::string message = failure_message(targets.front(), results.front());
    if (!message.empty() && mode != OutputMode::json) std::fprintf(stderr, "%s\n", message.c_str());
    return single_host_exit_status(results.front());
  }
  if (opts.summary) {
    const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - started);
    const std::string summary = format_summary(targets, results, elapsed);
    std::fwrite(summary.data(), 1, summary.size(), stderr);
  }
  return fan_out_exit_status(results);
}

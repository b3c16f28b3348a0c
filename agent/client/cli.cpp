#include "agent/client/cli.hpp"

#include <algorithm>
#include <charconv>
#include <exception>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "agent/protocol/verbs.hpp"

namespace opsagent::client {
namespace {

constexpr std::string_view kUsage = R"(usage: opsctl [OPTIONS] TARGETS [COMMAND [ARGS...]]
       opsctl [OPTIONS] --list-targets TARGETS
       opsctl -i INVENTORY --list-names
       opsctl --help | --version

Runs one opsagent command on one host or a fleet, or (without COMMAND and with exactly one
host) opens an interactive shell on it. COMMAND is an agent command; the agent's policy decides
which of these you may use:
{commands}

TARGETS  an Ansible pattern: terms separated by ',' (or ':'), each HOST[:PORT], [IPv6]:PORT,
         an inventory host or group, `all`, a glob (web*, db-[12]) or ~REGEX; &TERM keeps
         only hosts also in TERM, !TERM removes hosts (alone: all but those);
         e.g. 'web,db1,!web3', 'web:&prod', '~^db[0-9]+$'

Options (before TARGETS):
  -i, --inventory FILE     inventory: opsctl YAML, Ansible YAML or INI, or an executable
                           printing Ansible JSON for --list ($OPSCTL_INVENTORY)
  -l, --limit PATTERN      only hosts TARGETS and PATTERN both select; @FILE: the hosts
                           listed in FILE, one per line (a retry file)
  -c, --config FILE        client config file ($OPSCTL_CONFIG; default ~/.config/opsctl/config.yaml)
      --cert FILE          client certificate, PEM ($OPSCTL_CERT)
      --key FILE           client private key, PEM, mode 0600 ($OPSCTL_KEY)
      --ca FILE            CA that signed the agents' certificates ($OPSCTL_CA)
  -p, --port PORT          agent port for hosts that name none ($OPSCTL_PORT)
  -o, --output MODE        raw | prefix | grouped | json | table (default: raw for one host,
                           prefix for several)
      --json               same as -o json (one JSON object per line on stdout)
      --table              same as -o table: one row per host (status, exit, duration) at the end
      --collapse           grouped, and hosts with identical output under one header
      --sort               hosts in name order (web2 before web10), written when all are done
  -q, --quiet              no per-host output, only the summary (and the exit status)
      --color WHEN         auto (default: on a terminal, unless NO_COLOR is set) | always | never
      --raw-bytes          one host, -o raw: write the command's output lines exactly as received,
                           control characters included (default: escaped as \xNN, \uNNNN)
  -j, --concurrency N      hosts in flight at once (default 256)
      --connect-timeout D  resolve + TCP connect (default 5s)
      --handshake-timeout D  TLS handshake + greeting (default 10s)
      --no-resume          full TLS handshakes only: no cached sessions offered or kept
                           (default: resume, cache in $XDG_CACHE_HOME/opsctl/sessions)
  -t, --timeout D          command, from sending it to the final reply line (default 5m; 0 = none)
      --retry N            connect up to N more times to unreachable hosts (250ms, 500ms, ...
                           pauses); a command that was sent is never sent again
      --retry-file FILE    after a fan-out, write the hosts that were not ok to FILE, one
                           per line, for --limit @FILE
      --serial N|N%        rolling batches: the next N hosts start when a batch is done
      --max-fail N|N%      start no new host once more than N hosts failed
      --no-summary         no summary on stderr after a fan-out
      --list-targets       print NAME ADDRESS PORT SERVER_NAME (tab-separated) per selected host
      --list-names         print `all`, the inventory's groups and hosts, one per line
  -h, --help, --version
Durations: 250ms, 10s, 5m, 1h. The agent certificate must chain to the CA and carry the
host's DNS name or IP address (SAN); there is no way to turn this off. Control characters,
bidi controls and invalid UTF-8 from an agent or an inventory are never written to the
terminal: human output escapes them, JSON output is ASCII with \uNNNN escapes.

Interrupting a fan-out (Ctrl-C, SIGTERM) stops starting hosts, closes the running ones (their
commands end on the agents), prints which hosts were done, cancelled or not started and exits
130 (SIGINT) or 143 (SIGTERM); a second Ctrl-C exits at once.

Exit status:
  one host   the remote command's exit status (0-255; 128+N when killed by signal N), or
             a code below when it did not run
  fan-out    0 when every host is ok, else the first of 67, 65, 66, 70, 69, 68, 1 that applies
  1   some host's command failed (fan-out)     67  TLS failure (untrusted, name mismatch)
  64  usage error (arguments, targets)          68  cannot connect (refused, unreachable, DNS)
  65  denied by the agent's policy              69  timeout (handshake, command, agent-side)
  66  unknown command or bad arguments (agent)  70  other agent error (busy, limit, notfound, internal)
  78  configuration error (config, inventory, certificate files)
  130 interrupted (SIGINT; 143 for SIGTERM)
)";

constexpr int kUsageStatus = 64;

// Thrown inside parse_command_line only, turned into a CliExit there.
struct UsageError {
  std::string message;
};

// Digits only (no sign, no spaces), within T.
template <typename T>
std::optional<T> parse_decimal(std::string_view text) {
  T value{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::uint16_t port_value(const std::string& v) {
  const auto p = parse_decimal<std::uint16_t>(v);
  if (!p || *p < 1) throw UsageError{"--port needs 1-65535"};
  return *p;
}

std::size_t concurrency_value(const std::string& v) {
  const auto n = parse_decimal<std::size_t>(v);
  if (!n || *n < 1 || *n > 9999) throw UsageError{"--concurrency needs 1-9999"};
  return *n;
}

OutputMode output_value(const std::string& m) {
  if (m == "raw") return OutputMode::raw;
  if (m == "prefix") return OutputMode::prefix;
  if (m == "grouped") return OutputMode::grouped;
  if (m == "json") return OutputMode::json;
  if (m == "table") return OutputMode::table;
  throw UsageError{"--output is raw, prefix, grouped, json or table"};
}

std::chrono::milliseconds duration_value(std::string_view flag, const std::string& v,
                                         bool allow_zero) {
  try {
    return parse_duration_flag(flag, v, allow_zero);
  } catch (const std::exception& e) {
    throw UsageError{e.what()};
  }
}

int retry_value(const std::string& v) {
  const auto n = parse_decimal<int>(v);
  if (!n || *n < 0 || *n > 10) throw UsageError{"--retry needs 0-10"};
  return *n;
}

HostCount count_value(std::string_view flag, std::string v, bool allow_zero) {
  HostCount c;
  if (!v.empty() && v.back() == '%') {
    c.percent = true;
    v.pop_back();
  }
  const auto n = parse_decimal<std::size_t>(v);
  if (!n || (*n == 0 && !allow_zero) || (c.percent && *n > 100) || *n > 1000000) {
    throw UsageError{fmt::format("{} needs a number of hosts or a percentage (N or N%)", flag)};
  }
  c.value = *n;
  return c;
}

ColourChoice colour_value(const std::string& v) {
  if (v == "auto") return ColourChoice::automatic;
  if (v == "always") return ColourChoice::always;
  if (v == "never") return ColourChoice::never;
  throw UsageError{"--color is auto, always or never"};
}

// The output options that exclude each other, checked once every flag is known.
void check_output_options(const CliOptions& o, bool json, bool table) {
  if (json && table) throw UsageError{"--json and --table exclude each other"};
  const auto mode = o.output;
  if (o.collapse && mode && *mode != OutputMode::grouped) {
    throw UsageError{"--collapse goes with grouped output only (-o grouped, or no -o)"};
  }
  if (o.sort && mode == OutputMode::json) {
    throw UsageError{"--sort does not apply to JSON output (sort with jq)"};
  }
  if (o.quiet && ((mode && *mode != OutputMode::json) || o.collapse || o.sort)) {
    throw UsageError{
        "--quiet shows no per-host output; it excludes -o (but json), --collapse and --sort"};
  }
  if (o.raw_bytes && (o.collapse || o.sort || o.quiet)) {
    throw UsageError{"--raw-bytes excludes --collapse, --sort and --quiet"};
  }
}

CliExit usage_exit(const std::string& message) {
  return CliExit{kUsageStatus, {}, fmt::format("opsctl: {} (see opsctl --help)", message)};
}

}  // namespace

std::size_t HostCount::of(std::size_t total, bool at_least_one) const {
  if (!percent) return value;
  const std::size_t n = at_least_one ? (total * value + 99) / 100 : total * value / 100;
  return at_least_one ? std::max<std::size_t>(n, 1) : n;
}

std::string usage_text() {
  std::string commands;
  for (const auto& verb : protocol::all_verbs()) {
    if (!commands.empty()) commands += '\n';
    commands += fmt::format("  {:<26} {}", verb.usage, verb.summary);
  }
  return fmt::format(fmt::runtime(kUsage), fmt::arg("commands", commands));
}

std::variant<CliOptions, CliExit> parse_command_line(const std::vector<std::string>& args) {
  CLI::App app("opsctl");
  // Options end at TARGETS: it and everything after it are left in remaining().
  app.prefix_command();
  app.set_help_flag();
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);

  bool help = false;
  bool version = false;
  std::optional<std::string> inventory;
  std::optional<std::string> config;
  std::optional<std::string> cert;
  std::optional<std::string> key;
  std::optional<std::string> ca;
  std::optional<std::string> port;
  std::optional<std::string> output;
  std::optional<std::string> concurrency;
  std::optional<std::string> connect_timeout;
  std::optional<std::string> handshake_timeout;
  std::optional<std::string> timeout;
  bool json = false;
  CliOptions o;
  bool no_summary = false;
  app.add_flag("-h,--help", help);
  app.add_flag("--version", version);
  app.add_option("-i,--inventory", inventory);
  app.add_option("-c,--config", config);
  app.add_option("--cert", cert);
  app.add_option("--key", key);
  app.add_option("--ca", ca);
  app.add_option("-p,--port", port);
  app.add_option("-o,--output", output);
  app.add_flag("--json", json);
  app.add_flag("--raw-bytes", o.raw_bytes);
  app.add_option("-j,--concurrency", concurrency);
  app.add_option("--connect-timeout", connect_timeout);
  app.add_option("--handshake-timeout", handshake_timeout);
  app.add_option("-t,--timeout", timeout);
  app.add_flag("--no-summary", no_summary);
  bool no_resume = false;
  app.add_flag("--no-resume", no_resume);
  app.add_flag("--list-targets", o.list_targets);
  app.add_flag("--list-names", o.list_names);
  bool table = false;
  std::optional<std::string> colour;
  app.add_flag("--table", table);
  app.add_flag("--collapse", o.collapse);
  app.add_flag("--sort", o.sort);
  app.add_flag("-q,--quiet", o.quiet);
  app.add_option("--color,--colour", colour);
  app.add_option("-l,--limit", o.limit);
  std::optional<std::string> retry;
  std::optional<std::string> serial;
  std::optional<std::string> max_fail;
  app.add_option("--retry", retry);
  app.add_option("--retry-file", o.retry_file);
  app.add_option("--serial", serial);
  app.add_option("--max-fail", max_fail);

  try {
    std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 pops from the back
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    if (help) return CliExit{0, usage_text(), {}};
    return usage_exit(e.what());
  }
  if (help) return CliExit{0, usage_text(), {}};
  if (version) return CliExit{0, fmt::format("opsctl {}\n", OPSAGENT_VERSION), {}};

  std::vector<std::string> rest = app.remaining();
  if (!rest.empty() && rest.front() == "--") {
    rest.erase(rest.begin());
  } else if (!rest.empty() && rest.front().size() > 1 && rest.front().front() == '-') {
    return usage_exit(fmt::format("unknown option '{}'", rest.front()));
  }
  if (rest.empty() && !o.list_names) return usage_exit("no TARGETS given");
  if (!rest.empty() && o.list_names) return usage_exit("--list-names takes no TARGETS");

  try {
    if (inventory) o.flags.inventory = *inventory;
    if (config) o.flags.config = *config;
    if (cert) o.flags.certificate = *cert;
    if (key) o.flags.private_key = *key;
    if (ca) o.flags.ca = *ca;
    if (port) o.flags.port = port_value(*port);
    if (output) o.output = output_value(*output);
    if (json) o.output = OutputMode::json;
    if (table) o.output = OutputMode::table;
    if (o.collapse && !o.output) o.output = OutputMode::grouped;
    if (colour) o.colour = colour_value(*colour);
    if (concurrency) o.flags.concurrency = concurrency_value(*concurrency);
    if (no_resume) o.flags.resume = false;
    if (connect_timeout) {
      o.flags.connect_timeout = duration_value("--connect-timeout", *connect_timeout, false);
    }
    if (handshake_timeout) {
      o.flags.handshake_timeout = duration_value("--handshake-timeout", *handshake_timeout, false);
    }
    if (timeout) o.flags.command_timeout = duration_value("--timeout", *timeout, true);
    if (retry) o.retries = retry_value(*retry);
    if (serial) o.serial = count_value("--serial", *serial, false);
    if (max_fail) o.max_fail = count_value("--max-fail", *max_fail, true);
    check_output_options(o, json, table);
  } catch (const UsageError& e) {
    return usage_exit(e.message);
  }
  o.summary = !no_summary;
  if (rest.empty()) return o;
  o.targets = rest.front();
  o.command.assign(rest.begin() + 1, rest.end());
  return o;
}

}  // namespace opsagent::client

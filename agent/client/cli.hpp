#pragma once
// opsctl's command line, parsed with CLI11: options before TARGETS, everything after TARGETS is
// the agent command. Pure: no I/O, so every flag, message and exit status is unit tested
// (tests/unit/cli_test.cpp).

#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "agent/client/client_config.hpp"
#include "agent/client/colour.hpp"
#include "agent/client/output.hpp"

namespace opsagent::client {

/// A host count given as N or N% (of the selected hosts).
struct HostCount {
  std::size_t value = 0;
  bool percent = false;
  /// N, or N% of `total` rounded down (rounded up, and at least 1, when `at_least_one`).
  [[nodiscard]] std::size_t of(std::size_t total, bool at_least_one) const;
};

/// Everything the command line asks for.
struct CliOptions {
  ClientFlags flags;                 ///< settings that also come from environment and config
  std::optional<OutputMode> output;  ///< -o / --json (unset: raw for one host, prefix else)
  bool raw_bytes = false;            ///< --raw-bytes
  bool summary = true;               ///< false with --no-summary
  bool list_targets = false;         ///< --list-targets
  bool list_names = false;           ///< --list-names (for completion; needs no TARGETS)
  bool sort = false;                 ///< --sort
  bool collapse = false;             ///< --collapse (grouped output)
  bool quiet = false;                ///< -q / --quiet
  ColourChoice colour = ColourChoice::automatic;  ///< --color WHEN
  std::string targets;                            ///< the TARGETS pattern
  std::string limit;                              ///< -l / --limit PATTERN or @FILE (empty: none)
  int retries = 0;                                ///< --retry N (connection failures only)
  std::string retry_file;                         ///< --retry-file FILE (empty: none)
  std::optional<HostCount> serial;                ///< --serial N|N%
  std::optional<HostCount> max_fail;              ///< --max-fail N|N%
  std::vector<std::string> command;  ///< COMMAND and its ARGS, one word each (empty: shell)
};

/// The command line ends opsctl at once: --help or --version (status 0, text for stdout), or a
/// usage error (status 64, "opsctl: ... (see opsctl --help)" for stderr).
struct CliExit {
  int status = 0;
  std::string out;  ///< for stdout
  std::string err;  ///< one line for stderr, without LF and not yet escaped
};

/// Parses argv[1..] (`args`). Options: docs/opsctl.md "Options"; `--name=value` and `-j8`
/// spellings work; `--` ends the options. Never throws for bad input.
std::variant<CliOptions, CliExit> parse_command_line(const std::vector<std::string>& args);

/// The --help text, with the agent's commands listed from the protocol's verb table.
std::string usage_text();

}  // namespace opsagent::client

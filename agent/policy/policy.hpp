#pragma once
// The authorisation policy as loaded from policy.yaml: immutable once built, shared by pointer
// (std::shared_ptr<const Policy>) so a reload swaps it whole. See docs/policy.md.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <re2/re2.h>

#include "agent/policy/path_pattern.hpp"

namespace opsagent::policy {

/// Which certificate field an identity rule compares (as a whole byte string, case-sensitive;
/// fingerprints are compared case-insensitively in "AB:CD:..." form).
enum class MatchField { common_name, san_dns, san_uri, fingerprint };

struct IdentityRule {
  MatchField field = MatchField::common_name;
  std::string value;
  /// Optional constraints on who issued the certificate, so that two CAs trusted in one bundle
  /// cannot mint the same principal: the leaf's issuer name (RFC 2253, whole and exact) and a CA
  /// that must be in the verified chain (SHA-256 fingerprint, "AB:CD:...").
  std::optional<std::string> issuer;
  std::optional<std::string> ca_fingerprint;
  std::string principal;
  std::vector<std::string> roles;
  std::string rule;  ///< e.g. "identities[1]", used in audit records
};

/// One user-supplied argument of a named command.
struct ArgSpec {
  std::string name;
  std::string pattern_text;                 ///< as written (RE2 syntax, always full-match)
  std::shared_ptr<const re2::RE2> pattern;  ///< compiled; RE2 runs in linear time
  bool optional = false;                    ///< optional args may only follow required ones
};

/// A command that `run NAME [ARGS...]` may execute. Never through a shell.
struct RunCommand {
  std::string name;
  std::string description;        ///< one line for `help run`; may be empty
  std::vector<std::string> argv;  ///< argv[0] is an absolute path
  std::vector<ArgSpec> args;      ///< what the client may append
  bool end_of_options = true;     ///< insert "--" before client arguments
  std::chrono::milliseconds timeout{30'000};
  std::uint64_t max_output = 1U << 20;  ///< bytes of stdout+stderr before the child is killed
};

struct HashGrant {
  std::set<std::string> algorithms;  ///< e.g. sha256 (comphash implies sha1)
  std::vector<PathPattern> paths;
};

struct Role {
  std::string name;
  std::set<std::string> commands;  ///< verbs this role allows
  std::set<std::string> deny;      ///< verbs this role denies (deny wins over allow)
  std::set<std::string> logs;      ///< names from Policy::logs
  HashGrant hash;
  std::set<std::string> run;  ///< names from Policy::commands
};

/// Where something is written in the policy file: 1-based line and column.
struct SourceLocation {
  int line = 0;
  int column = 0;
};

struct Policy {
  std::filesystem::path source;
  std::string version;                   ///< first 16 hex digits of the file's SHA-256
  std::string sha256;                    ///< the file's whole SHA-256, 64 lower-case hex digits
  std::vector<IdentityRule> identities;  ///< first match wins
  std::map<std::string, Role> roles;
  std::map<std::string, std::filesystem::path> logs;  ///< name -> absolute path
  std::map<std::string, RunCommand> commands;
  int tail_max_lines = 1000;
  /// Where each rule is written, for `opsagent explain`. Keys: "identities[N]", "roles.R",
  /// "roles.R.commands.VERB", "roles.R.deny.VERB", "roles.R.logs.LOG", "roles.R.run.CMD",
  /// "roles.R.hash.algorithms.ALG", "roles.R.hash.paths.PATTERN", "logs.LOG", "commands.CMD",
  /// "commands.CMD.args.ARG", "tail.max_lines".
  std::map<std::string, SourceLocation> locations;
};

/// Loads and validates policy.yaml. Throws config::ConfigError naming file, line and key
/// (unknown keys, wrong types, undefined roles/logs/commands, bad regexes, relative argv[0], ...).
/// When `file_sha256` is given, it receives the SHA-256 (64 lower-case hex digits) of the bytes
/// read, before they are checked, so a caller can name the exact file it rejected; it is left
/// empty when the file could not be read.
std::shared_ptr<const Policy> load_policy(const std::filesystem::path& file,
                                          std::string* file_sha256 = nullptr);

/// The same validation on policy text already in memory, without the file checks (size is still
/// bounded by the YAML limits); `name` stands for the file in messages and in Policy::source.
/// Throws config::ConfigError. Used by load_policy and by the policy fuzz target.
std::shared_ptr<const Policy> load_policy_from_text(const std::string& text,
                                                    const std::string& name);

}  // namespace opsagent::policy

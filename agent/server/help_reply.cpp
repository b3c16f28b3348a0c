#include "agent/server/help_reply.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "agent/policy/grants.hpp"
#include "agent/protocol/verbs.hpp"

namespace opsagent::server {
namespace {

using protocol::Verb;

constexpr std::size_t kUsageWidth = 26;

std::string joined(const std::vector<std::string>& items, std::string_view separator) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += separator;
    out += item;
  }
  return out;
}

std::string verb_line(const protocol::VerbSpec& verb) {
  return fmt::format("{:<{}} {}", verb.usage, kUsageWidth, verb.summary);
}

HelpReply run_help(const policy::Policy& policy, const policy::Principal& principal) {
  HelpReply r;
  const auto commands = policy::runnable_commands(policy, principal);
  for (const policy::RunCommand* cmd : commands) {
    std::string line =
        fmt::format("{:<{}} {}", policy::run_usage(*cmd), kUsageWidth, cmd->description);
    while (!line.empty() && line.back() == ' ') line.pop_back();
    r.lines.push_back(std::move(line));
    for (const auto& arg : cmd->args) {
      r.lines.push_back(fmt::format("    {:<14} {:<9} {}", arg.name,
                                    arg.optional ? "optional" : "required", arg.pattern_text));
    }
  }
  r.outcome = Outcome::success("help run", {{"commands", std::to_string(commands.size()), true}});
  return r;
}

HelpReply tail_help(const policy::Policy& policy, const policy::Principal& principal) {
  HelpReply r;
  const auto logs = policy::tailable_logs(policy, principal);
  for (const auto& log : logs) {
    r.lines.push_back(fmt::format("{:<16} {}", log.name, log.path.string()));
  }
  r.outcome =
      Outcome::success("help tail", {{"logs", std::to_string(logs.size()), true},
                                     {"max_lines", std::to_string(policy.tail_max_lines), true}});
  return r;
}

HelpReply hash_help(const policy::Policy& policy, const policy::Principal& principal, Verb verb) {
  HelpReply r;
  const auto grants = policy::hash_grants(policy, principal, verb);
  for (const auto& grant : grants) {
    r.lines.push_back(fmt::format("algorithms {} paths {}", joined(grant.algorithms, ","),
                                  joined(grant.paths, " ")));
  }
  r.outcome = Outcome::success(fmt::format("help {}", protocol::spec_of(verb).name),
                               {{"grants", std::to_string(grants.size()), true}});
  return r;
}

}  // namespace

HelpReply help_reply(const policy::Policy& policy, const policy::Principal& principal,
                     const std::vector<std::string>& args) {
  const auto allowed = policy::allowed_verbs(policy, principal);
  HelpReply r;
  if (args.empty()) {
    for (const protocol::VerbSpec* verb : allowed) r.lines.push_back(verb_line(*verb));
    r.outcome = Outcome::success("help");
    return r;
  }
  const std::string& name = args.front();
  const protocol::VerbSpec* verb = protocol::find_verb(name);
  if (verb == nullptr) {
    r.outcome =
        Outcome::failure(ErrorCode::unknown, fmt::format("command not found: {} (try help)", name));
    return r;
  }
  if (std::find(allowed.begin(), allowed.end(), verb) == allowed.end()) {
    r.outcome = Outcome::failure(
        ErrorCode::denied,
        fmt::format("'{}' is not available to {} (help lists what is)", name, principal.name));
    return r;
  }
  if (verb->verb == Verb::run) return run_help(policy, principal);
  if (verb->verb == Verb::tail) return tail_help(policy, principal);
  if (verb->verb == Verb::hash || verb->verb == Verb::comphash) {
    return hash_help(policy, principal, verb->verb);
  }
  r.lines.push_back(verb_line(*verb));
  r.outcome = Outcome::success(fmt::format("help {}", verb->name));
  return r;
}

}  // namespace opsagent::server

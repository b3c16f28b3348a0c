#include "agent/policy/grants.hpp"

#include <algorithm>

namespace opsagent::policy {

std::vector<const Role*> roles_granting(const Policy& policy, const Principal& principal,
                                        protocol::Verb verb) {
  const std::string name(protocol::spec_of(verb).name);
  const std::vector<const Role*> roles = roles_of(policy, principal);
  std::vector<const Role*> out;
  for (const Role* role : roles) {
    if (role->deny.contains(name)) return {};  // deny wins, as in authorize()
    if (role->commands.contains(name)) out.push_back(role);
  }
  return out;
}

std::vector<const RunCommand*> runnable_commands(const Policy& policy, const Principal& principal) {
  std::vector<const RunCommand*> out;
  for (const Role* role : roles_granting(policy, principal, protocol::Verb::run)) {
    for (const auto& name : role->run) {
      const auto it = policy.commands.find(name);
      if (it != policy.commands.end()) out.push_back(&it->second);
    }
  }
  std::sort(out.begin(), out.end(),
            [](const RunCommand* a, const RunCommand* b) { return a->name < b->name; });
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::vector<TailableLog> tailable_logs(const Policy& policy, const Principal& principal) {
  std::vector<TailableLog> out;
  for (const Role* role : roles_granting(policy, principal, protocol::Verb::tail)) {
    for (const auto& name : role->logs) {
      const auto it = policy.logs.find(name);
      const bool seen = std::any_of(out.begin(), out.end(),
                                    [&name](const TailableLog& l) { return l.name == name; });
      if (it != policy.logs.end() && !seen) out.push_back({name, it->second});
    }
  }
  std::sort(out.begin(), out.end(),
            [](const TailableLog& a, const TailableLog& b) { return a.name < b.name; });
  return out;
}

std::vector<HashListing> hash_grants(const Policy& policy, const Principal& principal,
                                     protocol::Verb verb) {
  const bool comphash = verb == protocol::Verb::comphash;
  std::vector<HashListing> out;
  for (const Role* role : roles_granting(policy, principal, verb)) {
    HashListing listing;
    listing.role = role->name;
    if (comphash) {
      listing.algorithms.emplace_back(protocol::kComphashAlgorithm);
    } else {
      listing.algorithms.assign(role->hash.algorithms.begin(), role->hash.algorithms.end());
    }
    for (const auto& pattern : role->hash.paths) listing.paths.push_back(pattern.text());
    if (!listing.algorithms.empty() && !listing.paths.empty()) out.push_back(std::move(listing));
  }
  return out;
}

std::string run_usage(const RunCommand& command) {
  std::string out = command.name;
  for (const auto& arg : command.args) {
    out += arg.optional ? " [" + arg.name + "]" : " <" + arg.name + ">";
  }
  return out;
}

}  // namespace opsagent::policy

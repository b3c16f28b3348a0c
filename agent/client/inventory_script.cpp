#include "agent/client/inventory_script.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <set>
#include <spawn.h>
#include <string>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "agent/common/errno_text.hpp"
#include "agent/common/unique_fd.hpp"
#include "agent/config/config_error.hpp"

namespace opsagent::client {
namespace {

using config::ConfigError;
using config::YamlNode;
using nlohmann::json;

constexpr std::size_t kMaxOutput = std::size_t{64} << 20U;

YamlNode scalar(std::string text, bool quoted) {
  YamlNode n;
  n.kind = YamlNode::Kind::scalar;
  n.scalar = std::move(text);
  n.quoted = quoted;
  return n;
}

YamlNode map_node() {
  YamlNode n;
  n.kind = YamlNode::Kind::map;
  return n;
}

// A JSON value as the YAML reader would have given it: strings are quoted scalars, numbers and
// booleans plain ones.
YamlNode from_json(const json& j) {
  if (j.is_null()) return YamlNode{};
  if (j.is_string()) return scalar(j.get<std::string>(), true);
  if (j.is_boolean()) return scalar(j.get<bool>() ? "true" : "false", false);
  if (j.is_number()) return scalar(j.dump(), false);
  if (j.is_array()) {
    YamlNode n;
    n.kind = YamlNode::Kind::sequence;
    for (const auto& item : j) n.items.push_back(from_json(item));
    return n;
  }
  YamlNode n = map_node();
  for (const auto& [k, v] : j.items()) n.entries.emplace_back(scalar(k, false), from_json(v));
  return n;
}

std::string run_list(const std::filesystem::path& path) {
  const std::string program = path.string();
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    throw ConfigError(fmt::format("{}: cannot run: {}", program, common::errno_text(errno)));
  }
  UniqueFd read_end(fds[0]);
  UniqueFd write_end(fds[1]);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, write_end.get(), 1);
  std::string arg0 = program;
  std::string arg1 = "--list";
  char* argv[] = {arg0.data(), arg1.data(), nullptr};
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, program.c_str(), &fa, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  write_end.reset();
  if (rc != 0) {
    throw ConfigError(fmt::format("{}: cannot run: {}", program, common::errno_text(rc)));
  }
  std::string out;
  char buf[65536];
  bool too_large = false;
  while (true) {
    const ssize_t n = ::read(read_end.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    if (out.size() > kMaxOutput) {
      too_large = true;
      if (pid > 0) ::kill(pid, SIGKILL);
      break;
    }
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (too_large) {
    throw ConfigError(
        fmt::format("{} --list: more than {} MiB of output", program, kMaxOutput >> 20U));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    throw ConfigError(fmt::format("{} --list: {} {}", program,
                                  WIFEXITED(status) ? "exited with status" : "killed by signal",
                                  WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status)));
  }
  return out;
}

}  // namespace

bool is_inventory_script(const std::filesystem::path& path) {
  const auto ext = path.extension();
  if (ext == ".yaml" || ext == ".yml" || ext == ".ini") return false;
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111U) != 0;
}

config::YamlNode load_inventory_script(const std::filesystem::path& path) {
  const std::string where = path.string() + " --list";
  const json doc = json::parse(run_list(path), nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    throw ConfigError(fmt::format("{}: expected a JSON object (Ansible dynamic inventory)", where));
  }
  json hostvars = json::object();
  if (const auto meta = doc.find("_meta"); meta != doc.end() && meta->is_object()) {
    if (const auto hv = meta->find("hostvars"); hv != meta->end() && hv->is_object()) {
      hostvars = *hv;
    }
  }
  const auto vars_of = [&](const std::string& host) {
    const auto it = hostvars.find(host);
    return it == hostvars.end() ? YamlNode{} : from_json(*it);
  };
  YamlNode root = map_node();
  std::set<std::string> listed;
  for (const auto& [name, value] : doc.items()) {
    if (name == "_meta") continue;
    YamlNode group = map_node();
    const json* hosts = nullptr;
    if (value.is_array()) {
      hosts = &value;
    } else if (value.is_object()) {
      for (const auto& [key, part] : value.items()) {
        if (key == "hosts") {
          if (!part.is_array()) {
            throw ConfigError(
                fmt::format("{}: {}.hosts: expected a list of host names", where, name));
          }
          hosts = &part;
        } else if (key == "children") {
          if (!part.is_array()) {
            throw ConfigError(
                fmt::format("{}: {}.children: expected a list of group names", where, name));
          }
          YamlNode children = map_node();
          for (const auto& c : part) {
            if (!c.is_string()) {
              throw ConfigError(fmt::format("{}: {}.children: expected group names", where, name));
            }
            children.entries.emplace_back(scalar(c.get<std::string>(), false), YamlNode{});
          }
          group.entries.emplace_back(scalar("children", false), std::move(children));
        } else if (key == "vars") {
          group.entries.emplace_back(scalar("vars", false), from_json(part));
        } else {
          throw ConfigError(
              fmt::format("{}: {}: unknown key '{}' (hosts, children, vars)", where, name, key));
        }
      }
    } else {
      throw ConfigError(
          fmt::format("{}: {}: expected a list of hosts or a group object", where, name));
    }
    if (hosts != nullptr) {
      YamlNode host_map = map_node();
      for (const auto& h : *hosts) {
        if (!h.is_string()) {
          throw ConfigError(fmt::format("{}: {}.hosts: expected host names", where, name));
        }
        const std::string host = h.get<std::string>();
        listed.insert(host);
        host_map.entries.emplace_back(scalar(host, false), vars_of(host));
      }
      group.entries.emplace_back(scalar("hosts", false), std::move(host_map));
    }
    root.entries.emplace_back(scalar(name, false), std::move(group));
  }
  // Hosts that only have variables are ungrouped, as in Ansible.
  YamlNode ungrouped_hosts = map_node();
  for (const auto& [host, vars] : hostvars.items()) {
    if (!listed.contains(host)) {
      ungrouped_hosts.entries.emplace_back(scalar(host, false), vars_of(host));
    }
  }
  if (!ungrouped_hosts.entries.empty()) {
    YamlNode group = map_node();
    group.entries.emplace_back(scalar("hosts", false), std::move(ungrouped_hosts));
    root.entries.emplace_back(scalar("ungrouped", false), std::move(group));
  }
  return root;
}

}  // namespace opsagent::client

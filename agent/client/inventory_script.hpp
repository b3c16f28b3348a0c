#pragma once
// Executable inventories: a program that prints Ansible's dynamic inventory JSON for `--list`,
// read into the same tree as an Ansible YAML inventory (inventory.cpp gives it its meaning).

#include <filesystem>

#include "agent/config/strict_yaml.hpp"

namespace opsagent::client {

/// True when `path` is a regular file with an execute bit and is not named *.yaml, *.yml or
/// *.ini (those are read, never run).
bool is_inventory_script(const std::filesystem::path& path);

/// Runs `path --list` (no shell; stdin /dev/null, stderr passed through), reads at most 64 MiB
/// of JSON from its stdout and returns it as an Ansible YAML inventory tree:
/// `{"group": {"hosts": [...], "vars": {...}, "children": [...]}}` or `{"group": [hosts]}`,
/// with host variables from `_meta.hostvars` (hosts only listed there are ungrouped). Throws
/// config::ConfigError naming the program when it cannot run, exits non-zero or prints
/// something else.
config::YamlNode load_inventory_script(const std::filesystem::path& path);

}  // namespace opsagent::client

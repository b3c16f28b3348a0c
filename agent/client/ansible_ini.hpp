#pragma once
// Ansible INI inventories, read into the same tree as an Ansible YAML inventory so one builder
// (inventory.cpp) gives both the same meaning. Pure: text in, tree out.

#include <string>
#include <string_view>

#include "agent/config/strict_yaml.hpp"

namespace opsagent::client {

/// True when `text` reads as an INI inventory rather than YAML: its first line that is not
/// blank or a comment (`#`, `;`) is a `[section]` header or a host line (`web1`,
/// `web1 ansible_host=10.0.0.1`, `web1:7443`), not a YAML key (`key:`, `key: value`), a
/// document marker or a flow collection.
bool looks_like_ini(std::string_view text);

/// Parses an Ansible INI inventory: hosts before any section are ungrouped; `[group]` lists
/// hosts (ranges such as `web[01:50]`, `host:port`) with `key=value` host variables,
/// `[group:vars]` holds `key=value` lines, `[group:children]` names child groups. Values may be
/// quoted ('...' or "..."). Returns the equivalent Ansible YAML tree (`group: {hosts: {h:
/// {vars}}, children: {g: }, vars: {...}}`) with each node's line and column in the INI file,
/// so later errors name FILE:LINE:COLUMN. Throws config::ConfigError "FILE:LINE:COLUMN:
/// message" for lines it cannot read.
config::YamlNode parse_ansible_ini(std::string_view text, const std::string& file);

}  // namespace opsagent::client

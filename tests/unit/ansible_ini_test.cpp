// Ansible INI inventories: read into the Ansible YAML tree, so both mean the same; errors name
// FILE:LINE:COLUMN.

#include "agent/client/ansible_ini.hpp"

#include <algorithm>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "agent/client/inventory.hpp"
#include "agent/config/config_error.hpp"

namespace opsagent::client {
namespace {

const char* const kIni = R"(# the fleet, as an Ansible INI inventory
cache.example.com

[web]
web[01:02] ansible_port=22
web03 opsagent_port=7444 ansible_host="127.0.0.4"

[web:vars]
ansible_become = true

[dbs]
db1 ansible_host=127.0.0.5 opsagent_server_name='db1.internal'

[prod:children]
web
dbs

[all:vars]
opsagent_port=7443

[web]
; hosts listed again in a second [web] section add to the group
web01 ansible_host=127.0.0.2
web02 ansible_host=127.0.0.3
)";

const char* const kYaml = R"(
all:
  vars: {opsagent_port: 7443}
  hosts:
    cache.example.com:
  children:
    prod:
      children:
        web:
          hosts:
            web01: {ansible_host: 127.0.0.2, ansible_port: 22}
            web02: {ansible_host: 127.0.0.3, ansible_port: 22}
            web03: {opsagent_port: 7444, ansible_host: 127.0.0.4}
        dbs:
          hosts:
            db1: {ansible_host: 127.0.0.5, opsagent_server_name: db1.internal}
)";

std::vector<Target> sorted(const Inventory& inv, std::string_view pattern) {
  auto sel = select_targets(&inv, pattern, std::nullopt);
  EXPECT_TRUE(sel.ok()) << pattern << ": " << (sel.ok() ? "" : sel.error().message);
  if (!sel.ok()) return {};
  auto t = sel->targets;
  std::sort(t.begin(), t.end(), [](const Target& a, const Target& b) { return a.name < b.name; });
  return t;
}

std::string error_of(const std::string& text) {
  try {
    Inventory::parse(text, "hosts.ini");
  } catch (const config::ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(AnsibleIni, DetectedFromTheFirstLine) {
  EXPECT_TRUE(looks_like_ini("# c\n\n[web]\nweb1\n"));
  EXPECT_TRUE(looks_like_ini("web1 ansible_host=10.0.0.1\n"));
  EXPECT_TRUE(looks_like_ini("; c\nweb1:7443\n"));
  EXPECT_FALSE(looks_like_ini("all:\n  hosts:\n"));
  EXPECT_FALSE(looks_like_ini("hosts: {a: }\n"));
  EXPECT_FALSE(looks_like_ini("---\nall:\n"));
  EXPECT_FALSE(looks_like_ini("[a, b]\n"));
  EXPECT_FALSE(looks_like_ini(""));
}

TEST(AnsibleIni, GroupsChildrenVarsRangesAndHostVarsMeanWhatTheYamlFormSays) {
  const auto ini = Inventory::parse(kIni, "hosts.ini");
  const auto yaml = Inventory::parse(kYaml, "hosts.yaml");
  EXPECT_EQ(ini.format(), Inventory::Format::ansible);
  for (const char* pattern : {"all", "web", "dbs", "prod", "ungrouped", "web0*,!web02"}) {
    EXPECT_EQ(sorted(ini, pattern), sorted(yaml, pattern)) << pattern;
  }
  const auto all = sorted(ini, "all");
  ASSERT_EQ(all.size(), 5U);
  EXPECT_EQ(all[0], (Target{"cache.example.com", "cache.example.com", 7443, "cache.example.com"}));
  EXPECT_EQ(all[1], (Target{"db1", "127.0.0.5", 7443, "db1.internal"}));
  // opsagent_port (all's vars) beats ansible_port, the SSH port (docs/opsctl.md).
  EXPECT_EQ(all[2], (Target{"web01", "127.0.0.2", 7443, "127.0.0.2"}));
  EXPECT_EQ(all[4], (Target{"web03", "127.0.0.4", 7444, "127.0.0.4"}));
  EXPECT_EQ(ini.default_port(), 7443);
}

TEST(AnsibleIni, ErrorsNameFileLineAndColumn) {
  EXPECT_EQ(error_of("[web]\nweb1 port\n"),
            "hosts.ini:2:6: expected key=value after the host name, got 'port'");
  EXPECT_EQ(error_of("[web:hosts]\n"),
            "hosts.ini:1:5: unknown section kind ':hosts' (use :vars or :children)");
  EXPECT_EQ(error_of("[web]\n[db\n"),
            "hosts.ini:2:1: a section header is [GROUP], [GROUP:vars] or [GROUP:children]");
  EXPECT_EQ(error_of("[web:vars]\nnovalue\n"), "hosts.ini:2:1: expected key=value, got 'novalue'");
  EXPECT_EQ(error_of("[web]\nweb1 a=\"open\n"), "hosts.ini:2:8: unterminated quote");
  EXPECT_EQ(error_of("[p:children]\na b\n"), "hosts.ini:2:3: one child group name per line");
  // Errors found later, by the inventory builder, point into the INI file too.
  const std::string bad_port = error_of("[web]\nweb1 opsagent_port=99999\n");
  EXPECT_EQ(bad_port.rfind("hosts.ini:2:20: ", 0), 0U) << bad_port;
  const std::string bad_range = error_of("[web]\nweb[5:1]\n");
  EXPECT_EQ(bad_range.rfind("hosts.ini:2:1: ", 0), 0U) << bad_range;
}

}  // namespace
}  // namespace opsagent::client

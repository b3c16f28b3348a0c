// Inventory (native and Ansible YAML) and target patterns.

#include "agent/client/inventory.hpp"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "agent/config/config_error.hpp"

namespace opsagent::client {
namespace {

const char* const kNative = R"(
defaults:
  port: 7443
hosts:
  web1: {address: 10.0.0.11}
  web2: {address: 10.0.0.12, port: 7444}
  db1:
    address: 10.0.1.5
    server_name: db1.example.com
  lb.example.com:
groups:
  web: [web1, web2]
  prod: [web, db1]
)";

const char* const kAnsible = R"(
all:
  vars:
    opsagent_port: 7443
    ansible_user: deploy
  hosts:
    lb.example.com:
  children:
    web:
      hosts:
        web1:
          ansible_host: 10.0.0.11
        web2:
          ansible_host: 10.0.0.12
          opsagent_port: "7444"
    prod:
      children:
        web:
        dbs:
          hosts:
            db1:
              ansible_host: 10.0.1.5
              ansible_port: 22
              opsagent_server_name: db1.example.com
)";

std::vector<std::string> names(const std::vector<Target>& targets) {
  std::vector<std::string> out;
  for (const auto& t : targets) out.push_back(t.name);
  return out;
}

std::vector<Target> select_ok(const Inventory& inv, std::string_view pattern) {
  auto sel = select_targets(&inv, pattern, std::uint16_t{9});
  EXPECT_TRUE(sel.ok()) << pattern << ": " << (sel.ok() ? "" : sel.error().message);
  return sel.ok() ? sel->targets : std::vector<Target>{};
}

std::string error_of(const std::string& text) {
  try {
    Inventory::parse(text, "inv.yaml");
  } catch (const config::ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(Inventory, DetectsTheFormat) {
  EXPECT_EQ(Inventory::parse(kNative, "n.yaml").format(), Inventory::Format::native);
  EXPECT_EQ(Inventory::parse(kAnsible, "a.yaml").format(), Inventory::Format::ansible);
}

TEST(Inventory, NativeHostsCarryAddressPortAndServerName) {
  const auto inv = Inventory::parse(kNative, "n.yaml");
  const auto all = select_ok(inv, "all");
  ASSERT_EQ(all.size(), 4U);
  EXPECT_EQ(all[0], (Target{"web1", "10.0.0.11", 7443, "10.0.0.11"}));
  EXPECT_EQ(all[1], (Target{"web2", "10.0.0.12", 7444, "10.0.0.12"}));
  EXPECT_EQ(all[2], (Target{"db1", "10.0.1.5", 7443, "db1.example.com"}));
  EXPECT_EQ(all[3], (Target{"lb.example.com", "lb.example.com", 7443, "lb.example.com"}));
}

TEST(Inventory, AnsibleAndNativeDescribingOneFleetResolveAlike) {
  const auto native = Inventory::parse(kNative, "n.yaml");
  const auto ansible = Inventory::parse(kAnsible, "a.yaml");
  for (const char* pattern :
       {"all", "web", "prod", "web*", "db1,web2", "prod,!web1", "lb.example.com", "w?b1"}) {
    auto a = select_ok(native, pattern);
    auto b = select_ok(ansible, pattern);
    const auto by_name = [](const Target& x, const Target& y) { return x.name < y.name; };
    std::sort(a.begin(), a.end(), by_name);
    std::sort(b.begin(), b.end(), by_name);
    EXPECT_EQ(a, b) << pattern;
  }
}

TEST(Inventory, AnsibleDeeperGroupVarsAndHostVarsWin) {
  const auto inv = Inventory::parse(R"(
all:
  vars: {opsagent_port: 1000}
  children:
    outer:
      vars: {opsagent_port: 2000}
      children:
        inner:
          vars: {opsagent_port: 3000}
          hosts:
            a:
            b: {opsagent_port: 4000}
)",
                                    "p.yaml");
  const auto t = select_ok(inv, "all");
  ASSERT_EQ(t.size(), 2U);
  EXPECT_EQ(t[0].port, 3000);
  EXPECT_EQ(t[1].port, 4000);
}

TEST(Inventory, AnsibleUngroupedAndRanges) {
  const auto inv = Inventory::parse(R"(
all:
  hosts:
    solo:
  children:
    web:
      hosts:
        web[01:03].example.com:
        db-[a:b]:
)",
                                    "r.yaml");
  EXPECT_EQ(names(select_ok(inv, "ungrouped")), std::vector<std::string>{"solo"});
  EXPECT_EQ(names(select_ok(inv, "web")),
            (std::vector<std::string>{"web01.example.com", "web02.example.com", "web03.example.com",
                                      "db-a", "db-b"}));
}

TEST(Inventory, AnsibleTopLevelGroupsWithoutAll) {
  const auto inv = Inventory::parse("webservers:\n  hosts:\n    w1:\n    w2:\n", "t.yaml");
  EXPECT_EQ(inv.format(), Inventory::Format::ansible);
  EXPECT_EQ(names(select_ok(inv, "webservers")), (std::vector<std::string>{"w1", "w2"}));
  EXPECT_EQ(names(select_ok(inv, "all")), (std::vector<std::string>{"w1", "w2"}));
}

TEST(Inventory, AnsibleHostKeyMayCarryAPort) {
  const auto inv =
      Inventory::parse("all:\n  hosts:\n    badwolf.example.com:5309:\n    other:\n", "k.yaml");
  const auto t = select_ok(inv, "all");
  ASSERT_EQ(t.size(), 2U);
  EXPECT_EQ(t[0],
            (Target{"badwolf.example.com", "badwolf.example.com", 5309, "badwolf.example.com"}));
  EXPECT_EQ(t[1].port, 9);
}

TEST(Inventory, ExpandsHostRanges) {
  EXPECT_EQ(expand_host_range("n[8:11]").value(),
            (std::vector<std::string>{"n8", "n9", "n10", "n11"}));
  EXPECT_EQ(expand_host_range("n[08:10]x").value(),
            (std::vector<std::string>{"n08x", "n09x", "n10x"}));
  EXPECT_EQ(expand_host_range("n[1:5:2]").value(), (std::vector<std::string>{"n1", "n3", "n5"}));
  EXPECT_EQ(expand_host_range("plain").value(), std::vector<std::string>{"plain"});
  EXPECT_FALSE(expand_host_range("n[5:1]").ok());
  EXPECT_FALSE(expand_host_range("n[1-5]").ok());
  EXPECT_FALSE(expand_host_range("n[1:5").ok());
}

TEST(Inventory, ErrorsNameFileLineAndColumn) {
  EXPECT_NE(error_of("hosts:\n  web1: {adress: 10.0.0.1}\n").find("inv.yaml:2:"),
            std::string::npos);
  EXPECT_NE(error_of("hosts:\n  web1: {adress: 10.0.0.1}\n").find("adress"), std::string::npos);
  EXPECT_NE(error_of("hosts:\n  web1:\ngroups:\n  web: [web1, web9]\n").find("inv.yaml:4:"),
            std::string::npos);
  EXPECT_NE(error_of("hosts:\n  web1: {port: 70000}\n").find("hosts.web1.port"), std::string::npos);
  EXPECT_NE(error_of("hosts:\n  a:\ngroups:\n  g1: [g2]\n  g2: [g1]\n").find("contains itself"),
            std::string::npos);
  EXPECT_NE(error_of("all:\n  hostz:\n    a:\n").find("inv.yaml:2:"), std::string::npos);
  EXPECT_NE(error_of("all:\n  hosts:\n    a: {ansible_port: ssh}\n").find("ansible_port"),
            std::string::npos);
  EXPECT_NE(error_of("hosts:\n  a:\n  a:\n").find("inv.yaml:3:"),
            std::string::npos);  // duplicate key
  EXPECT_NE(error_of("").find("empty"), std::string::npos);
  EXPECT_NE(error_of("hosts:\n  'web*':\n").find("must not contain"), std::string::npos);
}

TEST(Targets, LiteralHostsWithoutInventory) {
  auto sel = select_targets(nullptr, "10.0.0.1:7000", std::nullopt);
  ASSERT_TRUE(sel.ok());
  EXPECT_TRUE(sel->single_host);
  EXPECT_EQ(sel->targets.front(), (Target{"10.0.0.1:7000", "10.0.0.1", 7000, "10.0.0.1"}));

  sel = select_targets(nullptr, "a.example,[::1]:9,b", 7443);
  ASSERT_TRUE(sel.ok()) << sel.error().message;
  EXPECT_FALSE(sel->single_host);
  ASSERT_EQ(sel->targets.size(), 3U);
  EXPECT_EQ(sel->targets[1], (Target{"[::1]:9", "::1", 9, "::1"}));
  EXPECT_EQ(sel->targets[2].port, 7443);
}

TEST(Targets, SingleHostOnlyForOneHostName) {
  const auto inv = Inventory::parse(kNative, "n.yaml");
  EXPECT_TRUE(select_targets(&inv, "web1", std::nullopt)->single_host);
  EXPECT_TRUE(select_targets(&inv, "web1:9000", std::nullopt)->single_host);
  EXPECT_EQ(select_targets(&inv, "web1:9000", std::nullopt)->targets.front().port, 9000);
  const auto inv2 = Inventory::parse("hosts:\n  a: {port: 1}\ngroups:\n  one: [a]\n", "o.yaml");
  EXPECT_FALSE(select_targets(&inv2, "one", std::nullopt)->single_host);
  EXPECT_FALSE(select_targets(&inv2, "a*", std::nullopt)->single_host);
}

TEST(Targets, DuplicatesCollapseAndExclusionsApplyLast) {
  const auto inv = Inventory::parse(kNative, "n.yaml");
  EXPECT_EQ(names(select_ok(inv, "web1,web,web1")), (std::vector<std::string>{"web1", "web2"}));
  EXPECT_EQ(names(select_ok(inv, "!web1,prod")), (std::vector<std::string>{"web2", "db1"}));
}

TEST(Targets, ErrorsAreUsageErrors) {
  const auto inv = Inventory::parse(kNative, "n.yaml");
  for (const char* bad : {"", "web1,,web2", "nosuch", "zz*", "web1,!web1", "web1:0", "web1:x", "!",
                          "&", "~(", "~zz", "!web,!db1,!lb.example.com", "web:&db1"}) {
    const auto sel = select_targets(&inv, bad, std::nullopt);
    ASSERT_FALSE(sel.ok()) << bad;
    EXPECT_EQ(sel.error().code, ErrorCode::usage) << bad;
  }
  EXPECT_FALSE(select_targets(nullptr, "web*", 1).ok());
  EXPECT_FALSE(select_targets(nullptr, "all", 1).ok());
  EXPECT_FALSE(select_targets(nullptr, "!a.example", 1).ok()) << "'!' alone needs an inventory";
  EXPECT_FALSE(select_targets(nullptr, "~a", 1).ok());
  const auto no_port = select_targets(nullptr, "10.0.0.1", std::nullopt);
  ASSERT_FALSE(no_port.ok());
  EXPECT_NE(no_port.error().message.find("no port"), std::string::npos);
  // Looks like an address: allowed next to an inventory.
  EXPECT_TRUE(select_targets(&inv, "10.9.9.9:1", std::nullopt).ok());
}

}  // namespace
}  // namespace opsagent::client

namespace opsagent::client {
namespace {

// SECURITY-MATRIX I11: inventory text is printed on the operator's terminal (host names prefix
// every output line), so any name or printed value holding a control character, a bidi control
// or a decoded newline is refused when the inventory loads, with its file and line.
struct BadText {
  const char* what;
  const char* yaml;  // as written inside a double-quoted YAML scalar, or raw UTF-8
};
const BadText kBadTexts[] = {
    {"ESC as \\x1b", R"(\x1b[2J)"},
    {"ESC as \\e", R"(\e]52;c;ZXZpbA==\a)"},
    {"decoded newline", R"(a\nb)"},
    {"bare CR", R"(web9\rweb1)"},
    {"BEL", R"(x\a)"},
    {"DEL", R"(x\x7f)"},
    {"C1 CSI", R"(x\x9b31m)"},
    {"NUL", R"(x\0y)"},
    {"bidi RLO escape", R"(x\u202ey)"},
    {"bidi isolate", R"(x\u2066y\u2069)"},
    {"bidi RLO raw UTF-8", "x\xE2\x80\xAEy"},
};

struct Place {
  const char* what;
  const char* before;  // text before the bad scalar
  const char* after;   // text after it
  int line;            // where the error must point
};
const Place kPlaces[] = {
    {"native host name", "hosts:\n  \"web", "\": {address: 10.0.0.1}\n", 2},
    {"native address", "hosts:\n  web1: {address: \"10.0.0.1", "\"}\n", 2},
    {"native server_name", "hosts:\n  web1:\n    server_name: \"db", "\"\n", 3},
    {"native group name", "hosts:\n  web1:\ngroups:\n  \"g", "\": [web1]\n", 4},
    {"native group member", "hosts:\n  web1:\ngroups:\n  g: [\"web1", "\"]\n", 4},
    {"Ansible host name", "all:\n  hosts:\n    \"web", "\":\n", 3},
    {"Ansible top-level group", "\"g", "\":\n  hosts:\n    web1:\n", 1},
    {"Ansible child group", "all:\n  children:\n    \"g", "\":\n      hosts:\n        web1:\n", 3},
    {"Ansible ansible_host", "all:\n  hosts:\n    web1:\n      ansible_host: \"10.0.0.1", "\"\n",
     4},
    {"Ansible opsagent_server_name", "all:\n  hosts:\n    web1:\n      opsagent_server_name: \"db",
     "\"\n", 4},
    {"Ansible group var ansible_host", "all:\n  vars:\n    ansible_host: \"h",
     "\"\n  hosts:\n    web1:\n", 3},
};

TEST(Inventory, I11_NamesAndPrintedValuesWithControlsAreRefusedWithFileAndLine) {
  for (const auto& place : kPlaces) {
    for (const auto& bad : kBadTexts) {
      const std::string text = std::string(place.before) + bad.yaml + place.after;
      SCOPED_TRACE(std::string(place.what) + " / " + bad.what + ":\n" + text);
      try {
        (void)Inventory::parse(text, "inv.yaml");
        ADD_FAILURE() << "accepted";
      } catch (const config::ConfigError& e) {
        const std::string message = e.what();
        EXPECT_EQ(message.rfind("inv.yaml:" + std::to_string(place.line) + ":", 0), 0U) << message;
      }
    }
  }
}

TEST(Inventory, I11_RefusalShowsTheNameEscaped) {
  try {
    (void)Inventory::parse("hosts:\n  web1: {address: \"10.0.0.1\xE2\x80\xAE\"}\n", "inv.yaml");
    ADD_FAILURE() << "accepted";
  } catch (const config::ConfigError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(R"(address '10.0.0.1\u202E' must not contain control characters)"),
              std::string::npos)
        << message;
  }
}

TEST(Inventory, I11_PrintableUnicodeNamesStayAllowed) {
  const Inventory inv = Inventory::parse(
      "hosts:\n  caf\xC3\xA9-1: {address: 10.0.0.1, server_name: \"\xE6\x97\xA5.example\"}\n",
      "inv.yaml");
  ASSERT_EQ(inv.hosts().size(), 1U);
  EXPECT_EQ(inv.hosts()[0].name, "caf\xC3\xA9-1");
}

TEST(Targets, AnsiblePatternOperators) {
  const auto inv = Inventory::parse(kNative, "n.yaml");
  const auto n = [&](std::string_view pattern) { return names(select_ok(inv, pattern)); };
  using V = std::vector<std::string>;
  EXPECT_EQ(n("all"), (V{"web1", "web2", "db1", "lb.example.com"}));
  EXPECT_EQ(n("*"), n("all"));
  // Unions with ',' or ':'.
  EXPECT_EQ(n("web,db1"), (V{"web1", "web2", "db1"}));
  EXPECT_EQ(n("web:db1"), (V{"web1", "web2", "db1"}));
  // Exclusion, also alone (all but those), in any position.
  EXPECT_EQ(n("!web"), (V{"db1", "lb.example.com"}));
  EXPECT_EQ(n("!web:!db1"), (V{"lb.example.com"}));
  EXPECT_EQ(n("prod:!web2"), (V{"web1", "db1"}));
  // Intersection.
  EXPECT_EQ(n("prod:&web"), (V{"web1", "web2"}));
  EXPECT_EQ(n("all,&web,!web1"), (V{"web2"}));
  EXPECT_EQ(n("&prod"), (V{"web1", "web2", "db1"}));
  // Regular expressions over host and group names (searched, ECMAScript).
  EXPECT_EQ(n("~^web[0-9]$"), (V{"web1", "web2"}));
  EXPECT_EQ(n("~example"), (V{"lb.example.com"}));
  EXPECT_EQ(n("~^pro"), (V{"web1", "web2", "db1"}));
  EXPECT_EQ(n("all:!~^web"), (V{"db1", "lb.example.com"}));
  // host:port and IPv6 stay one term.
  EXPECT_EQ(select_ok(inv, "web1:9000").front().port, 9000);
  EXPECT_EQ(select_ok(inv, "10.0.0.9:9000").front().address, "10.0.0.9");
  EXPECT_FALSE(select_targets(&inv, "!web", std::nullopt)->single_host);
}

TEST(Targets, LimitIsAppliedAfterThePattern) {
  const auto inv = Inventory::parse(kNative, "n.yaml");
  const auto n = [&](std::string_view pattern, std::string_view limit) {
    auto sel = select_targets(&inv, pattern, std::uint16_t{9}, limit);
    EXPECT_TRUE(sel.ok()) << pattern << " / " << limit;
    return sel.ok() ? names(sel->targets) : std::vector<std::string>{};
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(n("all", "web"), (V{"web1", "web2"}));
  EXPECT_EQ(n("prod", "!web1"), (V{"web2", "db1"}));
  EXPECT_EQ(n("prod", "db1,lb.example.com"), (V{"db1"}));
  const auto none = select_targets(&inv, "web", std::nullopt, "db1");
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.error().message.find("--limit"), std::string::npos) << none.error().message;
}

TEST(Targets, InventoryDefaultPortAppliesToHostsGivenOnTheCommandLine) {
  const auto native = Inventory::parse(kNative, "n.yaml");
  EXPECT_EQ(select_targets(&native, "10.0.0.99", std::uint16_t{1})->targets.front().port, 7443);
  EXPECT_EQ(select_targets(&native, "10.0.0.99:5", std::nullopt)->targets.front().port, 5);
  const auto ansible = Inventory::parse(kAnsible, "a.yaml");
  EXPECT_EQ(select_targets(&ansible, "10.0.0.99", std::nullopt)->targets.front().port, 7443);
  const auto bare = Inventory::parse("hosts:\n  a: {port: 1}\n", "b.yaml");
  EXPECT_EQ(select_targets(&bare, "10.0.0.99", std::uint16_t{3})->targets.front().port, 3);
}

}  // namespace
}  // namespace opsagent::client

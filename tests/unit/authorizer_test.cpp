#include "agent/policy/authorizer.hpp"

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <sys/stat.h>
#include <vector>

#include <gtest/gtest.h>

#include "agent/policy/grants.hpp"

namespace opsagent::policy {
namespace {

namespace fs = std::filesystem;
using Args = std::vector<std::string>;

constexpr const char* kPolicy = R"(
identities:
  - match: {cn: alice}
    principal: alice
    roles: [operator]
  - match: {cn: admin}
    principal: admin
    roles: [operator, auditor]
  - match: {san_uri: "spiffe://opsagent.local/ci-bot"}
    principal: ci-bot
    roles: [reader]
  - match: {san_dns: bob.example}
    principal: bob
    roles: [reader]
  - match: {fingerprint: "ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89"}
    principal: carol
    roles: [reader]
  - match: {cn: nobody}
    principal: nobody
    roles: []
roles:
  operator:
    commands: [ping, whoami, lastlog, tail, comphash, hash, run]
    logs: [syslog, app]
    hash:
      algorithms: [sha256, sha512]
      paths: ["/etc/**", "/var/log/*.log", "/srv/motd"]
    run: [uptime, disk-usage, count, raw]
  auditor:
    commands: [ping]
    deny: [run]
  reader:
    commands: [ping, whoami, tail]
    logs: [app]
  hasher-a:
    commands: [hash]
    hash: {algorithms: [sha1], paths: []}
  hasher-b:
    commands: [hash]
    hash: {algorithms: [sha384], paths: ["/data/**"]}
  logs-only:
    commands: [ping]
    logs: [syslog]
  tailer:
    commands: [tail]
logs:
  syslog: /var/log/syslog
  app: /var/log/dpkg.log
tail: {max_lines: 1000}
commands:
  uptime: {argv: [/usr/bin/uptime]}
  disk-usage:
    argv: [/usr/bin/df, -h]
    args:
      - {name: mountpoint, pattern: '/[A-Za-z0-9._/-]*', optional: true}
  count:
    argv: [/usr/bin/head]
    args:
      - {name: lines, pattern: '\d+'}
      - {name: file, pattern: '[a-z.]+', optional: true}
  raw:
    argv: [/usr/bin/printf]
    args:
      - {name: text, pattern: '.*'}
    end_of_options: false
)";

class Authorizer : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string templ = (fs::temp_directory_path() / "opsagent-authz-XXXXXX").string();
    const fs::path dir = ::mkdtemp(templ.data());
    const fs::path file = dir / "policy.yaml";
    std::ofstream(file) << kPolicy;
    ::chmod(file.c_str(), 0600);
    policy_ = load_policy(file);
    fs::remove_all(dir);
  }
  static void TearDownTestSuite() { policy_.reset(); }

  static Principal principal(const std::string& name, std::vector<std::string> roles) {
    return Principal{name, std::move(roles), "test"};
  }
  static Decision decide(const Principal& who, std::string_view verb, const Args& args = {}) {
    return authorize(*policy_, who, verb, args);
  }
  static Decision as_alice(std::string_view verb, const Args& args = {}) {
    return decide(principal("alice", {"operator"}), verb, args);
  }

  static std::shared_ptr<const Policy> policy_;
};

std::shared_ptr<const Policy> Authorizer::policy_;

// ---- gate order: builtin, default deny, explicit deny ----

TEST_F(Authorizer, AllowsBuiltinsToEveryPrincipal) {
  for (const char* verb : {"help", "json", "exit", "quit"}) {
    const Decision d = decide(principal("nobody", {}), verb);
    EXPECT_TRUE(d.allowed) << verb;
    EXPECT_EQ(d.rule, "builtin");
  }
  EXPECT_EQ(protocol::find_verb("help")->grant, protocol::Grant::builtin);
  EXPECT_EQ(protocol::find_verb("HELP"), nullptr);
  EXPECT_EQ(protocol::find_verb("ping")->grant, protocol::Grant::grantable);
}

TEST_F(Authorizer, DeniesByDefault) {
  const Decision d = decide(principal("alice", {"reader"}), "hash", {"sha256", "/etc/passwd"});
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.rule, "default-deny");
  EXPECT_EQ(d.reason, "no role of alice allows 'hash'");
}

TEST_F(Authorizer, DeniesEverythingToAPrincipalWithoutRoles) {
  for (const char* verb : {"ping", "whoami", "lastlog", "tail", "comphash", "hash", "run"}) {
    const Decision d = decide(principal("nobody", {}), verb);
    EXPECT_FALSE(d.allowed) << verb;
    EXPECT_EQ(d.rule, "default-deny") << verb;
  }
}

TEST_F(Authorizer, DeniesUnknownVerbsAndCaseVariants) {
  for (const char* verb : {"PING", "Ping", "ping ", "reboot", "/bin/sh", "", "sh", "exec"}) {
    const Decision d = as_alice(verb);
    EXPECT_FALSE(d.allowed) << verb;
    EXPECT_EQ(d.rule, "default-deny") << verb;
  }
}

TEST_F(Authorizer, IgnoresRolesTheCurrentPolicyDoesNotDefine) {
  EXPECT_FALSE(decide(principal("x", {"no-such-role"}), "ping").allowed);
}

TEST_F(Authorizer, ExplicitDenyWinsRegardlessOfRoleOrder) {
  for (const auto& roles : {std::vector<std::string>{"operator", "auditor"},
                            std::vector<std::string>{"auditor", "operator"}}) {
    const Decision d = decide(principal("admin", roles), "run", {"uptime"});
    EXPECT_FALSE(d.allowed);
    EXPECT_EQ(d.rule, "roles.auditor.deny");
    EXPECT_NE(d.reason.find("denies 'run' to admin"), std::string::npos) << d.reason;
  }
  // Verbs the denying role does not mention stay allowed.
  EXPECT_TRUE(decide(principal("admin", {"auditor", "operator"}), "whoami").allowed);
}

TEST_F(Authorizer, NamesTheSameRuleWhateverTheRoleOrder) {
  const Decision a = decide(principal("x", {"reader", "operator"}), "ping");
  const Decision b = decide(principal("x", {"operator", "reader"}), "ping");
  EXPECT_EQ(a.rule, b.rule);
  EXPECT_EQ(a.rule, "roles.operator.commands");
}

TEST_F(Authorizer, AllowsSimpleVerbsNamingTheRole) {
  for (const char* verb : {"ping", "whoami", "lastlog"}) {
    const Decision d = as_alice(verb);
    EXPECT_TRUE(d.allowed) << verb;
    EXPECT_EQ(d.rule, "roles.operator.commands");
  }
}

TEST_F(Authorizer, DeniesWrongArityAsMalformed) {
  const std::vector<std::pair<std::string, Args>> cases = {
      {"ping", {"x"}},
      {"whoami", {"x"}},
      {"lastlog", {"20"}},
      {"tail", {}},
      {"tail", {"app", "1", "2"}},
      {"hash", {"sha256"}},
      {"hash", {"sha256", "/etc/passwd", "x"}},
      {"comphash", {}},
      {"comphash", {"/a", "/b"}},
      {"run", {}},
  };
  for (const auto& [verb, args] : cases) {
    const Decision d = as_alice(verb, args);
    EXPECT_FALSE(d.allowed) << verb << " " << args.size();
    EXPECT_NE(d.reason.find("malformed request"), std::string::npos) << d.reason;
  }
}

// ---- tail ----

TEST_F(Authorizer, AllowsTailOfAGrantedLogWithTheDefaultCount) {
  const Decision d = as_alice("tail", {"syslog"});
  ASSERT_TRUE(d.allowed) << d.reason;
  EXPECT_EQ(d.rule, "roles.operator.logs");
  EXPECT_EQ(d.log_path, fs::path("/var/log/syslog"));
  EXPECT_EQ(d.lines, 10);
}

TEST_F(Authorizer, AllowsTailWithACountUpToTheMaximum) {
  EXPECT_EQ(as_alice("tail", {"app", "1"}).lines, 1);
  EXPECT_EQ(as_alice("tail", {"app", "1000"}).lines, 1000);
  EXPECT_TRUE(as_alice("tail", {"app", "1000"}).allowed);
}

// SECURITY-MATRIX C4.
TEST_F(Authorizer, DeniesEveryAbusiveTailCount) {
  for (const char* n : {"0", "1001", "-1", "-n", "1e9", "0x10", " 10", "10 ", "10;", "10;rm", "+10",
                        "010", "99999999999", "4294967306", "", "1.0", "１０", "10\n"}) {
    const Decision d = as_alice("tail", {"app", n});
    EXPECT_FALSE(d.allowed) << '"' << n << '"';
    EXPECT_EQ(d.rule, "tail.max_lines") << n;
  }
}

TEST_F(Authorizer, DeniesTailOfALogNoRoleGrants) {
  const Decision d = decide(principal("ci-bot", {"reader"}), "tail", {"syslog"});
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.rule, "default-deny");
  EXPECT_FALSE(as_alice("tail", {"/var/log/syslog"}).allowed);
  EXPECT_FALSE(as_alice("tail", {"SYSLOG"}).allowed);
  EXPECT_FALSE(as_alice("tail", {"../syslog"}).allowed);
}

TEST_F(Authorizer, DeniesTailWhenTheRoleListingTheLogDoesNotAllowTail) {
  // logs-only lists syslog but not tail; tailer allows tail but lists no logs.
  const Decision d = decide(principal("x", {"logs-only", "tailer"}), "tail", {"syslog"});
  EXPECT_FALSE(d.allowed);
}

// ---- hash and comphash ----

TEST_F(Authorizer, AllowsHashUnderAMatchingPattern) {
  const Decision d = as_alice("hash", {"sha256", "/etc/ssh/sshd_config"});
  ASSERT_TRUE(d.allowed) << d.reason;
  EXPECT_EQ(d.rule, "roles.operator.hash.paths");
  EXPECT_EQ(d.algorithm, "sha256");
  ASSERT_TRUE(d.path.has_value());
  EXPECT_EQ(d.path->root, fs::path("/etc"));
  EXPECT_EQ(d.path->relative, fs::path("ssh/sshd_config"));
  EXPECT_EQ(d.path->pattern, "/etc/**");
}

TEST_F(Authorizer, GrantsALiteralPathBeneathItsDirectory) {
  const Decision d = as_alice("hash", {"sha512", "/srv/motd"});
  ASSERT_TRUE(d.allowed) << d.reason;
  EXPECT_EQ(d.path->root, fs::path("/srv"));
  EXPECT_EQ(d.path->relative, fs::path("motd"));
}

TEST_F(Authorizer, AllowsComphashAsSha1WithoutListingSha1) {
  const Decision d = as_alice("comphash", {"/var/log/dpkg.log"});
  ASSERT_TRUE(d.allowed) << d.reason;
  EXPECT_EQ(d.algorithm, "sha1");
  EXPECT_EQ(d.path->root, fs::path("/var/log"));
  EXPECT_EQ(d.path->relative, fs::path("dpkg.log"));
}

TEST_F(Authorizer, DeniesAnAlgorithmTheRoleDoesNotList) {
  EXPECT_FALSE(as_alice("hash", {"sha1", "/etc/passwd"}).allowed);
  EXPECT_FALSE(as_alice("hash", {"md5", "/etc/passwd"}).allowed);
  EXPECT_FALSE(as_alice("hash", {"SHA256", "/etc/passwd"}).allowed);
}

TEST_F(Authorizer, RequiresAlgorithmAndPathFromTheSameRole) {
  // hasher-a grants sha1 (no paths), hasher-b grants /data/** (sha384 only).
  const Principal p = principal("x", {"hasher-a", "hasher-b"});
  EXPECT_FALSE(decide(p, "hash", {"sha1", "/data/file"}).allowed);
  EXPECT_TRUE(decide(p, "hash", {"sha384", "/data/file"}).allowed);
}

// SECURITY-MATRIX C6.
TEST_F(Authorizer, DeniesPathTraversalAndLookalikes) {
  for (const std::string& path : std::vector<std::string>{"/etc/../root/.ssh/id_rsa",
                                                          "/var/log/../../etc/shadow",
                                                          "/var/log/./x.log",
                                                          "//etc/passwd",
                                                          "/etc//passwd",
                                                          "/etc/passwd/",
                                                          "/etc",
                                                          "/etc/",
                                                          "/",
                                                          "etc/passwd",
                                                          "",
                                                          "/var/log2/a.log",
                                                          "/var/log/sub/a.log",
                                                          "/var/log/a.log.1",
                                                          "/var/logs/a.log",
                                                          "/var/log/%2e%2e/%2e%2e/etc/shadow.log",
                                                          "/srv/motd2",
                                                          "/srv/other",
                                                          "/ETC/passwd",
                                                          std::string("/etc/pass\0wd", 12),
                                                          "/etc/" + std::string(4096, 'a')}) {
    const Decision d = as_alice("hash", {"sha256", path});
    EXPECT_FALSE(d.allowed) << '"' << path << '"';
    EXPECT_FALSE(d.path.has_value());
  }
  // "%2e%2e" is a literal name, so it may match a wildcard, but only beneath the root.
  const Decision literal = as_alice("hash", {"sha256", "/var/log/%2e%2e.log"});
  ASSERT_TRUE(literal.allowed);
  EXPECT_EQ(literal.path->relative, fs::path("%2e%2e.log"));
}

// ---- run ----

TEST_F(Authorizer, BuildsTheArgvOfANamedCommand) {
  const Decision d = as_alice("run", {"uptime"});
  ASSERT_TRUE(d.allowed) << d.reason;
  EXPECT_EQ(d.rule, "roles.operator.run");
  EXPECT_EQ(d.argv, (Args{"/usr/bin/uptime"}));
  ASSERT_NE(d.run, nullptr);
  EXPECT_EQ(d.run, &policy_->commands.at("uptime"));
}

TEST_F(Authorizer, InsertsEndOfOptionsBeforeClientArguments) {
  const Decision d = as_alice("run", {"disk-usage", "/home"});
  ASSERT_TRUE(d.allowed) << d.reason;
  EXPECT_EQ(d.argv, (Args{"/usr/bin/df", "-h", "--", "/home"}));
  EXPECT_EQ(as_alice("run", {"disk-usage"}).argv, (Args{"/usr/bin/df", "-h"}));
}

// SECURITY-MATRIX C3.
TEST_F(Authorizer, LeadingDashArgumentsReachArgvOnlyAfterEndOfOptions) {
  for (const char* arg : {"-f", "--follow=name", "--pid=1", "--version", "-o"}) {
    const Decision d = as_alice("run", {"raw", arg});
    // `raw` allows any text and has end_of_options: false, so it shows the option reaches argv;
    // disk-usage's pattern and "--" keep it an operand.
    ASSERT_TRUE(d.allowed);
    EXPECT_EQ(d.argv, (Args{"/usr/bin/printf", arg}));
    EXPECT_FALSE(as_alice("run", {"disk-usage", arg}).allowed) << arg;
  }
}

TEST_F(Authorizer, DoesNotLetTheClientChooseTheProgram) {
  EXPECT_FALSE(as_alice("run", {"/usr/bin/uptime"}).allowed);
  EXPECT_FALSE(as_alice("run", {"/bin/sh", "-c", "id"}).allowed);
  EXPECT_FALSE(as_alice("run", {"UPTIME"}).allowed);
  const Decision d = decide(principal("ci-bot", {"reader"}), "run", {"uptime"});
  EXPECT_FALSE(d.allowed);
}

// SECURITY-MATRIX C4: patterns are anchored at both ends.
TEST_F(Authorizer, MatchesArgumentPatternsAgainstTheWholeArgument) {
  EXPECT_TRUE(as_alice("run", {"count", "10"}).allowed);
  for (const char* bad : {"10;x", "x10", "10 ", " 10", "10\n", "-1", "1e9", "0x10", ""}) {
    const Decision d = as_alice("run", {"count", bad});
    EXPECT_FALSE(d.allowed) << '"' << bad << '"';
    EXPECT_EQ(d.rule, "commands.count.args");
  }
  const Decision d = as_alice("run", {"count", "10;x"});
  EXPECT_NE(d.reason.find("argument 1 (lines)"), std::string::npos) << d.reason;
  EXPECT_NE(d.reason.find("\\d+"), std::string::npos) << d.reason;
}

TEST_F(Authorizer, ChecksTheNumberOfRunArguments) {
  EXPECT_FALSE(as_alice("run", {"count"}).allowed);
  EXPECT_TRUE(as_alice("run", {"count", "5", "a.txt"}).allowed);
  const Decision d = as_alice("run", {"count", "5", "a.txt", "extra"});
  EXPECT_FALSE(d.allowed);
  EXPECT_NE(d.reason.find("takes 1 to 2 argument(s), got 3"), std::string::npos) << d.reason;
  EXPECT_FALSE(as_alice("run", {"uptime", "x"}).allowed);
}

TEST_F(Authorizer, RefusesOverlongArgumentsBeforeMatching) {
  EXPECT_TRUE(as_alice("run", {"raw", std::string(4096, 'x')}).allowed);
  const Decision d = as_alice("run", {"raw", std::string(4097, 'x')});
  EXPECT_FALSE(d.allowed);
  EXPECT_NE(d.reason.find("longer than 4096 bytes"), std::string::npos);
}

TEST_F(Authorizer, PassesShellMetacharactersLiterally) {
  const Decision d = as_alice("run", {"raw", "$(id); `id` | > x & *"});
  ASSERT_TRUE(d.allowed);
  EXPECT_EQ(d.argv.back(), "$(id); `id` | > x & *");
}

// ---- identity mapping ----

PeerIdentity with_cn(const std::string& cn) {
  PeerIdentity id;
  id.common_name = cn;
  return id;
}

TEST_F(Authorizer, MapsACommonNameExactly) {
  const auto p = map_identity(*policy_, with_cn("alice"));
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->name, "alice");
  EXPECT_EQ(p->roles, (std::vector<std::string>{"operator"}));
  EXPECT_EQ(p->rule, "identities[0]");
  for (const char* cn : {"Alice", "ALICE", "alice ", " alice", "alic", "alice2", "alice\n", "adm",
                         "admi", "administrator", ""}) {
    EXPECT_FALSE(map_identity(*policy_, with_cn(cn)).has_value()) << cn;
  }
  EXPECT_EQ(map_identity(*policy_, with_cn("admin"))->name, "admin");
}

TEST_F(Authorizer, DoesNotConfuseSanAndCommonName) {
  PeerIdentity id;
  id.san_dns = {"alice"};
  id.san_uri = {"alice"};
  EXPECT_FALSE(map_identity(*policy_, id).has_value());

  PeerIdentity bot;
  bot.common_name = "spiffe://opsagent.local/ci-bot";
  EXPECT_FALSE(map_identity(*policy_, bot).has_value());
  bot.san_uri = {"spiffe://opsagent.local/other", "spiffe://opsagent.local/ci-bot"};
  ASSERT_TRUE(map_identity(*policy_, bot).has_value());
  EXPECT_EQ(map_identity(*policy_, bot)->name, "ci-bot");

  PeerIdentity prefix;
  prefix.san_uri = {"spiffe://opsagent.local/ci-bot/extra"};
  EXPECT_FALSE(map_identity(*policy_, prefix).has_value());
  PeerIdentity dns;
  dns.san_dns = {"BOB.example"};
  EXPECT_FALSE(map_identity(*policy_, dns).has_value());
  dns.san_dns = {"bob.example"};
  EXPECT_EQ(map_identity(*policy_, dns)->name, "bob");
}

TEST_F(Authorizer, ComparesFingerprintsIgnoringHexCase) {
  PeerIdentity id;
  id.fingerprint_sha256 =
      "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:"
      "67:89";
  EXPECT_EQ(map_identity(*policy_, id)->name, "carol");
  id.fingerprint_sha256 =
      "ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:"
      "67:89";
  EXPECT_EQ(map_identity(*policy_, id)->name, "carol");
  id.fingerprint_sha256 =
      "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:"
      "67";
  EXPECT_FALSE(map_identity(*policy_, id).has_value());
}

TEST_F(Authorizer, UsesTheFirstMatchingIdentityRule) {
  PeerIdentity id;
  id.common_name = "alice";
  id.san_uri = {"spiffe://opsagent.local/ci-bot"};
  EXPECT_EQ(map_identity(*policy_, id)->rule, "identities[0]");
}

TEST_F(Authorizer, MapsNobodyWithoutACertificateValue) {
  EXPECT_FALSE(map_identity(*policy_, PeerIdentity{}).has_value());
}

// ---- help ----

std::vector<std::string> allowed_names(const Policy& policy, const Principal& principal) {
  std::vector<std::string> names;
  for (const auto* verb : allowed_verbs(policy, principal)) names.emplace_back(verb->name);
  return names;
}

TEST_F(Authorizer, ListsAllowedVerbsSortedWithoutDeniedOnes) {
  EXPECT_EQ(allowed_names(*policy_, principal("ci-bot", {"reader"})),
            (std::vector<std::string>{"exit", "help", "json", "ping", "quit", "tail", "whoami"}));
  const auto admin = allowed_names(*policy_, principal("admin", {"operator", "auditor"}));
  EXPECT_EQ(std::count(admin.begin(), admin.end(), "run"), 0);
  EXPECT_EQ(std::count(admin.begin(), admin.end(), "hash"), 1);
  EXPECT_TRUE(std::is_sorted(admin.begin(), admin.end()));
  EXPECT_EQ(allowed_names(*policy_, principal("nobody", {})),
            (std::vector<std::string>{"exit", "help", "json", "quit"}));
}

// ---- help run / tail / hash: listings agree with authorize() ----

TEST_F(Authorizer, ListsRunnableCommandsSortedWithTheirUsage) {
  std::vector<std::string> usages;
  for (const auto* cmd : runnable_commands(*policy_, principal("alice", {"operator"}))) {
    usages.push_back(run_usage(*cmd));
    EXPECT_TRUE(as_alice("run", {cmd->name}).rule != "default-deny") << cmd->name;
  }
  EXPECT_EQ(usages, (std::vector<std::string>{"count <lines> [file]", "disk-usage [mountpoint]",
                                              "raw <text>", "uptime"}));
  EXPECT_TRUE(runnable_commands(*policy_, principal("admin", {"operator", "auditor"})).empty())
      << "a role denying run removes every command";
  EXPECT_TRUE(runnable_commands(*policy_, principal("ci-bot", {"reader"})).empty());
}

TEST_F(Authorizer, ListsTailableLogsOnlyThroughRolesGrantingTail) {
  const auto logs = tailable_logs(*policy_, principal("alice", {"operator", "logs-only"}));
  ASSERT_EQ(logs.size(), 2U);
  EXPECT_EQ(logs[0].name, "app");
  EXPECT_EQ(logs[1].name, "syslog");
  EXPECT_EQ(logs[1].path, fs::path("/var/log/syslog"));
  // logs-only names syslog but does not grant tail; tailer grants tail but names no log.
  EXPECT_TRUE(tailable_logs(*policy_, principal("x", {"logs-only", "tailer"})).empty());
  EXPECT_FALSE(decide(principal("x", {"logs-only", "tailer"}), "tail", {"syslog"}).allowed);
}

TEST_F(Authorizer, ListsHashGrantsPerRoleWithBothHalves) {
  const auto grants =
      hash_grants(*policy_, principal("x", {"hasher-a", "hasher-b"}), protocol::Verb::hash);
  ASSERT_EQ(grants.size(), 1U) << "hasher-a grants an algorithm but no path";
  EXPECT_EQ(grants[0].role, "hasher-b");
  EXPECT_EQ(grants[0].algorithms, (std::vector<std::string>{"sha384"}));
  EXPECT_EQ(grants[0].paths, (std::vector<std::string>{"/data/**"}));
  const auto comphash =
      hash_grants(*policy_, principal("alice", {"operator"}), protocol::Verb::comphash);
  ASSERT_EQ(comphash.size(), 1U);
  EXPECT_EQ(comphash[0].algorithms, (std::vector<std::string>{"sha1"}));
  EXPECT_EQ(comphash[0].paths.size(), 3U);
}

// ---- re-mapping an open session after a reload ----

TEST_F(Authorizer, RemapsAnUnchangedIdentityAsTheSame) {
  PeerIdentity alice;
  alice.common_name = "alice";
  const auto current = map_identity(*policy_, alice);
  ASSERT_TRUE(current.has_value());
  EXPECT_EQ(remap_identity(*policy_, alice, *current).kind, Remapping::Kind::same);
}

TEST_F(Authorizer, RemapsChangedRolesAndNamesANewOrMissingPrincipalUnmapped) {
  PeerIdentity alice;
  alice.common_name = "alice";
  alice.subject = "CN=alice";
  const Remapping narrowed =
      remap_identity(*policy_, alice, Principal{"alice", {"admin"}, "identities[0]"});
  EXPECT_EQ(narrowed.kind, Remapping::Kind::roles_changed);
  EXPECT_EQ(narrowed.principal.roles, std::vector<std::string>{"operator"});

  const Remapping renamed = remap_identity(*policy_, alice, Principal{"bob", {}, "x"});
  EXPECT_EQ(renamed.kind, Remapping::Kind::unmapped);
  EXPECT_NE(renamed.reason.find("to principal alice, not bob"), std::string::npos)
      << renamed.reason;

  PeerIdentity stranger;
  stranger.common_name = "stranger";
  stranger.subject = "CN=stranger";
  const Remapping gone = remap_identity(*policy_, stranger, Principal{"stranger", {}, "x"});
  EXPECT_EQ(gone.kind, Remapping::Kind::unmapped);
  EXPECT_NE(gone.reason.find("no longer maps certificate CN=stranger"), std::string::npos)
      << gone.reason;
}

// ---- robustness ----

TEST_F(Authorizer, NeverThrowsAndIsDeterministicOnRandomInput) {
  std::mt19937 rng(12345);
  const std::vector<std::string> verbs = {"ping", "tail", "hash", "comphash",
                                          "run",  "help", "x",    ""};
  const auto random_string = [&rng]() {
    std::string s(rng() % 40, '\0');
    for (auto& c : s) c = static_cast<char>(rng() % 256);
    if (rng() % 3 == 0) s = "/" + s;
    return s;
  };
  const Principal who = principal("admin", {"operator", "reader", "hasher-b"});
  for (int i = 0; i < 20'000; ++i) {
    const std::string& verb = verbs[rng() % verbs.size()];
    Args args;
    const auto n = rng() % 4;
    for (unsigned k = 0; k < n; ++k) {
      switch (rng() % 4) {
        case 0:
          args.push_back(random_string());
          break;
        case 1:
          args.emplace_back("sha256");
          break;
        case 2:
          args.emplace_back("count");
          break;
        default:
          args.emplace_back("app");
          break;
      }
    }
    Decision first;
    ASSERT_NO_THROW(first = decide(who, verb, args));
    const Decision second = decide(who, verb, args);
    EXPECT_EQ(first.allowed, second.allowed);
    EXPECT_EQ(first.rule, second.rule);
    EXPECT_FALSE(first.rule.empty());
    EXPECT_EQ(first.reason.find('\n'), std::string::npos);
  }
}

}  // namespace
}  // namespace opsagent::policy

namespace opsagent::policy {
namespace {

// The shipped example is what users copy: it must not grant secrets or ".." (issue 8).
TEST(ExamplePolicy, GrantsNeitherShadowNorParentDirectories) {
  const auto example =
      load_policy(std::filesystem::path(OPSAGENT_TEST_DATA_DIR) / "../../config/policy.yaml");
  const Principal alice{"alice", {"operator"}, "identities[0]"};
  EXPECT_TRUE(authorize(*example, alice, "hash", {"sha256", "/etc/hostname"}).allowed);
  EXPECT_FALSE(authorize(*example, alice, "hash", {"sha256", "/etc/shadow"}).allowed);
  EXPECT_FALSE(
      authorize(*example, alice, "hash", {"sha256", "/etc/ssh/ssh_host_ed25519_key"}).allowed);
  EXPECT_TRUE(authorize(*example, alice, "run", {"list-dir", "/var/log"}).allowed);
  EXPECT_TRUE(authorize(*example, alice, "run", {"list-dir", "/"}).allowed);
  for (const char* path : {"/etc/..", "/var/../root", "/..", "/root/.ssh", "var"}) {
    EXPECT_FALSE(authorize(*example, alice, "run", {"list-dir", path}).allowed) << path;
    EXPECT_FALSE(authorize(*example, alice, "run", {"disk-usage", path}).allowed) << path;
  }
}

}  // namespace
}  // namespace opsagent::policy

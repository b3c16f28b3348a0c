#include "agent/policy/policy.hpp"

#include <filesystem>
#include <fstream>
#include <string>
#include <sys/stat.h>

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include "agent/config/config_error.hpp"
#include "agent/policy/authorizer.hpp"

namespace opsagent::policy {
namespace {

namespace fs = std::filesystem;
using config::ConfigError;
using namespace std::chrono_literals;

const fs::path kData = OPSAGENT_TEST_DATA_DIR;

std::string read_all(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot read " << file;
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Policies are loaded from a private copy with mode 0600, so checks on file modes do not depend
// on how the repository was checked out.
class PolicyDir {
 public:
  PolicyDir() {
    std::string templ = (fs::temp_directory_path() / "opsagent-policy-XXXXXX").string();
    path_ = ::mkdtemp(templ.data());
  }
  PolicyDir(const PolicyDir&) = delete;
  PolicyDir& operator=(const PolicyDir&) = delete;
  ~PolicyDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  [[nodiscard]] fs::path write(const std::string& text, mode_t mode = 0600) const {
    const fs::path file = path_ / "policy.yaml";
    std::ofstream(file, std::ios::binary | std::ios::trunc) << text;
    ::chmod(file.c_str(), mode);
    return file;
  }

 private:
  fs::path path_;
};

std::string fixture_error(const std::string& name) {
  const PolicyDir dir;
  try {
    load_policy(dir.write(read_all(kData / "policy" / name)));
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

std::string text_error(const std::string& text) {
  const PolicyDir dir;
  try {
    load_policy(dir.write(text));
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(Policy, LoadsAGoodPolicy) {
  const PolicyDir dir;
  const auto policy = load_policy(dir.write(read_all(kData / "policy" / "good.yaml")));
  ASSERT_EQ(policy->identities.size(), 4U);
  EXPECT_EQ(policy->identities[0].field, MatchField::common_name);
  EXPECT_EQ(policy->identities[0].value, "alice");
  EXPECT_EQ(policy->identities[0].principal, "alice");
  EXPECT_EQ(policy->identities[0].rule, "identities[0]");
  EXPECT_EQ(policy->identities[1].field, MatchField::san_uri);
  EXPECT_EQ(policy->identities[2].field, MatchField::fingerprint);
  EXPECT_EQ(policy->identities[2].value,
            "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:"
            "23:45:67:89");
  EXPECT_TRUE(policy->identities[3].roles.empty());

  const Role& op = policy->roles.at("operator");
  EXPECT_EQ(op.commands.size(), 7U);
  EXPECT_EQ(op.logs, (std::set<std::string>{"app", "syslog"}));
  EXPECT_EQ(op.hash.algorithms, (std::set<std::string>{"sha1", "sha256", "sha512"}));
  ASSERT_EQ(op.hash.paths.size(), 2U);
  EXPECT_EQ(op.hash.paths[1].root(), "/var/log");
  EXPECT_EQ(op.run, (std::set<std::string>{"disk-usage", "uptime"}));

  EXPECT_EQ(policy->logs.at("app"), fs::path("/var/log/dpkg.log"));
  EXPECT_EQ(policy->tail_max_lines, 500);

  const RunCommand& df = policy->commands.at("disk-usage");
  EXPECT_EQ(df.argv, (std::vector<std::string>{"/usr/bin/df", "-h"}));
  ASSERT_EQ(df.args.size(), 1U);
  EXPECT_TRUE(df.args[0].optional);
  EXPECT_TRUE(df.end_of_options);
  EXPECT_EQ(df.timeout, 10s);
  EXPECT_EQ(df.max_output, 1U << 20);
  EXPECT_EQ(df.description, "free space per file system");
  const RunCommand& up = policy->commands.at("uptime");
  EXPECT_EQ(up.description, "");
  EXPECT_EQ(up.timeout, 30s);
  EXPECT_TRUE(up.args.empty());
}

TEST(Policy, LoadsTheExamplePolicy) {
  const PolicyDir dir;
  const auto policy =
      load_policy(dir.write(read_all(kData / ".." / ".." / "config" / "policy.yaml"), 0644));
  EXPECT_EQ(policy->identities.size(), 2U);
  EXPECT_EQ(policy->roles.size(), 2U);
  EXPECT_EQ(policy->commands.size(), 3U);
  EXPECT_EQ(policy->commands.at("list-dir").args.size(), 1U);
  EXPECT_FALSE(policy->commands.at("list-dir").args[0].optional);
  EXPECT_EQ(policy->logs.size(), 2U);
}

TEST(Policy, VersionIsTheStartOfTheFilesSha256) {
  const PolicyDir dir;
  const std::string text = read_all(kData / "policy" / "good.yaml");
  const auto policy = load_policy(dir.write(text));
  unsigned char digest[32];
  unsigned int length = 0;
  ASSERT_EQ(EVP_Digest(text.data(), text.size(), digest, &length, EVP_sha256(), nullptr), 1);
  char hex[17];
  for (int i = 0; i < 8; ++i) std::snprintf(hex + 2 * i, 3, "%02x", digest[i]);
  EXPECT_EQ(policy->version, std::string(hex, 16));
  // A one-byte change gives another version.
  EXPECT_NE(load_policy(dir.write(text + "\n"))->version, policy->version);
}

TEST(Policy, RefusesAWorldWritableFile) {
  const PolicyDir dir;
  const fs::path file = dir.write(read_all(kData / "policy" / "good.yaml"), 0666);
  try {
    load_policy(file);
    FAIL() << "loaded a world-writable policy";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(file.string() + ": mode 0666"), std::string::npos)
        << e.what();
  }
}

TEST(Policy, RefusesAGroupWritableFile) {
  const PolicyDir dir;
  const fs::path file = dir.write(read_all(kData / "policy" / "good.yaml"), 0620);
  try {
    load_policy(file);
    FAIL() << "loaded a group-writable policy";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("mode 0620"), std::string::npos) << e.what();
  }
}

TEST(Policy, AcceptsAFileOthersMayOnlyRead) {
  const PolicyDir dir;
  EXPECT_NO_THROW(load_policy(dir.write(read_all(kData / "policy" / "good.yaml"), 0644)));
}

TEST(Policy, NamesAMissingFile) {
  try {
    load_policy("/nonexistent/policy.yaml");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/policy.yaml: cannot open"),
              std::string::npos);
  }
}

TEST(Policy, RefusesADescriptionLongerThanOneShortLine) {
  const std::string base =
      "identities: []\ncommands:\n  up:\n    argv: [/usr/bin/uptime]\n    description: ";
  EXPECT_EQ(text_error(base + std::string(200, 'x') + "\n"), "");
  EXPECT_NE(text_error(base + std::string(201, 'x') + "\n")
                .find("policy.yaml:5:18: commands.up.description: a description is one line of "
                      "at most 200 bytes"),
            std::string::npos)
      << text_error(base + std::string(201, 'x') + "\n");
  EXPECT_NE(text_error(base + "\"two\\nlines\"\n").find("policy.yaml:5:"), std::string::npos)
      << text_error(base + "\"two\\nlines\"\n");
}

TEST(Policy, Sha256IsTheWholeDigestOfTheFile) {
  const PolicyDir dir;
  const auto policy = load_policy(dir.write(read_all(kData / "policy" / "good.yaml")));
  ASSERT_EQ(policy->sha256.size(), 64U);
  EXPECT_EQ(policy->sha256.substr(0, 16), policy->version);
}

TEST(Policy, RejectsAnEmptyFile) {
  EXPECT_NE(fixture_error("empty.yaml").find("the policy is empty"), std::string::npos);
  EXPECT_NE(fixture_error("missing_identities.yaml").find("missing required key 'identities'"),
            std::string::npos);
}

TEST(Policy, RejectsAnUndefinedRole) {
  EXPECT_NE(fixture_error("undefined_role.yaml")
                .find("policy.yaml:4:13: identities[0].roles[0]: role 'operater' is not defined"),
            std::string::npos)
      << fixture_error("undefined_role.yaml");
}

TEST(Policy, RejectsAnUndefinedLog) {
  EXPECT_NE(fixture_error("undefined_log.yaml")
                .find("policy.yaml:5:20: roles.operator.logs[1]: log 'secrets' is not defined"),
            std::string::npos)
      << fixture_error("undefined_log.yaml");
}

TEST(Policy, RejectsAnUndefinedCommand) {
  EXPECT_NE(fixture_error("undefined_command.yaml")
                .find("roles.operator.run[0]: command 'reboot' is not defined"),
            std::string::npos);
}

TEST(Policy, RejectsARelativeProgram) {
  EXPECT_NE(
      fixture_error("relative_argv.yaml")
          .find("policy.yaml:3:19: commands.uptime.argv[0]: the program must be an absolute path"),
      std::string::npos)
      << fixture_error("relative_argv.yaml");
}

TEST(Policy, ReportsTheRegexError) {
  const std::string err = fixture_error("bad_regex.yaml");
  EXPECT_NE(err.find("commands.grep.args[0].pattern: invalid regular expression: "),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("missing ]"), std::string::npos) << err;
}

TEST(Policy, RejectsARequiredArgumentAfterAnOptionalOne) {
  EXPECT_NE(fixture_error("optional_before_required.yaml")
                .find("commands.cp.args[1]: required argument 'to' follows an optional one"),
            std::string::npos);
}

TEST(Policy, RejectsUnknownVerbs) {
  const std::string err = fixture_error("unknown_verb.yaml");
  EXPECT_NE(err.find("roles.operator.commands[1]: unknown command 'reboot' (known: comphash, hash, "
                     "lastlog, ping, run, tail, whoami)"),
            std::string::npos)
      << err;
}

TEST(Policy, RejectsBuiltinsInGrantsAndDenials) {
  EXPECT_NE(fixture_error("builtin_in_deny.yaml").find("'exit' is always available"),
            std::string::npos);
}

TEST(Policy, RejectsAVerbAllowedAndDeniedByTheSameRole) {
  EXPECT_NE(fixture_error("allow_and_deny_same_role.yaml")
                .find("roles.operator.deny[0]: 'run' is both allowed and denied by this role"),
            std::string::npos);
}

TEST(Policy, RejectsUnknownHashAlgorithms) {
  EXPECT_NE(fixture_error("unknown_algorithm.yaml")
                .find("roles.operator.hash.algorithms[1]: unsupported hash algorithm 'md5'"),
            std::string::npos);
}

TEST(Policy, RejectsAPatternWithoutALiteralRoot) {
  EXPECT_NE(
      fixture_error("wildcard_root_pattern.yaml")
          .find("roles.operator.hash.paths[0]: the first path component may not contain wildcards"),
      std::string::npos)
      << fixture_error("wildcard_root_pattern.yaml");
}

TEST(Policy, RejectsARelativeLogPath) {
  EXPECT_NE(fixture_error("relative_log.yaml").find("logs.app: log path must be absolute"),
            std::string::npos);
}

TEST(Policy, RejectsAMatchWithTwoFields) {
  EXPECT_NE(
      fixture_error("two_match_fields.yaml")
          .find("identities[0].match: expected exactly one of cn, san_dns, san_uri, fingerprint"),
      std::string::npos);
  EXPECT_NE(text_error("identities:\n  - match: {}\n    principal: a\n    roles: []\n")
                .find("expected exactly one of"),
            std::string::npos);
}

TEST(Policy, RejectsAMalformedFingerprint) {
  EXPECT_NE(fixture_error("bad_fingerprint.yaml")
                .find("identities[0].match.fingerprint: expected a "
                      "SHA-256 fingerprint"),
            std::string::npos);
}

TEST(Policy, RejectsOnePrincipalWithDifferentRoles) {
  EXPECT_NE(fixture_error("conflicting_principal.yaml")
                .find("identities[1]: principal 'alice' has different roles in identities[0]"),
            std::string::npos);
}

TEST(Policy, RejectsAnIdentityRuleThatCanNeverMatch) {
  EXPECT_NE(fixture_error("unreachable_identity.yaml").find("same match as identities[0]"),
            std::string::npos);
}

TEST(Policy, RejectsUnknownKeysListingTheAllowedOnes) {
  EXPECT_NE(
      fixture_error("unknown_key.yaml")
          .find("policy.yaml:5:5: roles.operator.alow: unknown key 'alow' (allowed: commands, "
                "deny, hash, logs, run)"),
      std::string::npos)
      << fixture_error("unknown_key.yaml");
}

TEST(Policy, RejectsYaml11Booleans) {
  EXPECT_NE(fixture_error("yaml11_bool.yaml")
                .find("commands.df.end_of_options: expected true or false, got \"no\""),
            std::string::npos);
}

TEST(Policy, RejectsQuotedNumbersAndDurations) {
  EXPECT_NE(fixture_error("quoted_number.yaml").find("tail.max_lines: expected an integer"),
            std::string::npos);
  EXPECT_NE(
      fixture_error("quoted_timeout.yaml").find("commands.uptime.timeout: expected a duration"),
      std::string::npos);
}

TEST(Policy, RejectsDuplicateKeys) {
  EXPECT_NE(
      fixture_error("duplicate_key.yaml")
          .find("policy.yaml:5:3: roles.reader: duplicate key 'reader' (first defined at line 3)"),
      std::string::npos)
      << fixture_error("duplicate_key.yaml");
}

TEST(Policy, RejectsAliases) {
  EXPECT_NE(fixture_error("alias.yaml").find("anchors and aliases are not allowed"),
            std::string::npos);
}

TEST(Policy, RejectsOddNames) {
  EXPECT_NE(text_error("identities: []\nroles:\n  \"a b\": {}\n").find("role name 'a b'"),
            std::string::npos);
  EXPECT_NE(text_error("identities:\n  - match: {cn: x}\n    principal: \"-x\"\n    roles: []\n")
                .find("principal '-x'"),
            std::string::npos);
}

// ---- identity rules that require the issuing CA ----

std::string fp(char digit) {
  std::string out;
  for (int i = 0; i < 32; ++i) out += std::string(i == 0 ? "" : ":") + digit + digit;
  return out;
}

std::string issuer_policy(const std::string& rules) {
  return "identities:\n" + rules + "roles:\n  operator:\n    commands: [ping]\n";
}

TEST(PolicyIssuer, MapsOnlyCertificatesFromTheRequiredCa) {
  const PolicyDir dir;
  const auto policy = load_policy(
      dir.write(issuer_policy("  - match: {cn: alice, ca_fingerprint: \"" + fp('a') +
                              "\"}\n"
                              "    principal: alice\n    roles: [operator]\n"
                              "  - match: {cn: alice, issuer: \"CN=Other CA,O=example\"}\n"
                              "    principal: alice-other\n    roles: []\n")));
  PeerIdentity id;
  id.common_name = "alice";
  id.issuer = "CN=Ops CA,O=example";
  EXPECT_FALSE(map_identity(*policy, id).has_value()) << "no CA in the chain";
  id.ca_fingerprints_sha256 = {fp('B'), fp('A')};  // the root pinned, compared case-insensitively
  ASSERT_TRUE(map_identity(*policy, id).has_value());
  EXPECT_EQ(map_identity(*policy, id)->name, "alice");
  id.ca_fingerprints_sha256 = {fp('B')};
  EXPECT_FALSE(map_identity(*policy, id).has_value()) << "another CA of the same bundle";
  id.issuer = "CN=Other CA,O=example";
  ASSERT_TRUE(map_identity(*policy, id).has_value());
  EXPECT_EQ(map_identity(*policy, id)->name, "alice-other");
  id.issuer = "CN=Other CA,O=example2";
  EXPECT_FALSE(map_identity(*policy, id).has_value()) << "the issuer name is compared whole";
}

TEST(PolicyIssuer, RefusesRulesThatCanNeverMatchOrSayNothing) {
  EXPECT_NE(text_error(issuer_policy("  - match: {cn: alice}\n    principal: a\n    roles: []\n"
                                     "  - match: {cn: alice, issuer: \"CN=x\"}\n"
                                     "    principal: b\n    roles: []\n"))
                .find("identities[1]: same match as identities[0]"),
            std::string::npos);
  // The other way round is a fallback, not a dead rule.
  EXPECT_EQ(text_error(issuer_policy("  - match: {cn: alice, issuer: \"CN=x\"}\n"
                                     "    principal: b\n    roles: []\n"
                                     "  - match: {cn: alice}\n    principal: a\n    roles: []\n")),
            "");
  EXPECT_NE(
      text_error(issuer_policy("  - match: {issuer: \"CN=x\"}\n    principal: a\n    roles: []\n"))
          .find("expected exactly one of cn, san_dns, san_uri, fingerprint"),
      std::string::npos);
  EXPECT_NE(
      text_error(
          issuer_policy(
              "  - match: {cn: a, ca_fingerprint: \"AB:CD\"}\n    principal: a\n    roles: []\n"))
          .find("identities[0].match.ca_fingerprint"),
      std::string::npos);
}

}  // namespace
}  // namespace opsagent::policy

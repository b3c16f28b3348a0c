#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "agent/config/agent_config.hpp"
#include "agent/config/config_error.hpp"
#include "agent/config/strict_yaml.hpp"
#include "agent/config/yaml_reader.hpp"
#include "agent/tls/tls_settings.hpp"

namespace opsagent::config {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const fs::path kData = OPSAGENT_TEST_DATA_DIR;

// A scratch directory holding dummy TLS files and a policy, so agent.yaml texts can refer to
// server.crt, server.key (0600), ca.crt and policy.yaml.
class ConfigDir {
 public:
  ConfigDir() {
    std::string templ = (fs::temp_directory_path() / "opsagent-config-XXXXXX").string();
    path_ = ::mkdtemp(templ.data());
    write("server.crt", "dummy certificate\n");
    write("server.key", "dummy key\n", 0600);
    write("ca.crt", "dummy CA\n");
    write("policy.yaml", "identities: []\n", 0600);
  }
  ConfigDir(const ConfigDir&) = delete;
  ConfigDir& operator=(const ConfigDir&) = delete;
  ~ConfigDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }

  fs::path write(const std::string& name, const std::string& text, mode_t mode = 0644) const {
    const fs::path file = path_ / name;
    std::ofstream(file, std::ios::binary | std::ios::trunc) << text;
    ::chmod(file.c_str(), mode);
    return file;
  }
  fs::path copy_fixture(const std::string& name) const {
    std::ifstream in(kData / "config" / name, std::ios::binary);
    EXPECT_TRUE(in.good()) << "missing fixture " << name;
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return write("agent.yaml", text);
  }
  [[nodiscard]] const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

constexpr const char* kTlsAndRest =
    "tls: {certificate: server.crt, private_key: server.key, client_ca: ca.crt}\n"
    "audit: {path: audit.jsonl}\n"
    "policy: policy.yaml\n";

// The error of loading `text` as agent.yaml ("" when it loads).
std::string load_error(const ConfigDir& dir, const std::string& text) {
  try {
    load_agent_config(dir.write("agent.yaml", text));
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

std::string fixture_error(const std::string& name) {
  const ConfigDir dir;
  try {
    load_agent_config(dir.copy_fixture(name));
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

YamlNode yaml(const std::string& text) { return parse_yaml(text, "t.yaml"); }

const YamlNode& value_of(const YamlNode& root) { return root.entries.at(0).second; }

std::string reader_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

const NodeContext kCtx{"agent.yaml", "limits.max_clients"};

// ---- ConfigReader: typed access to the tree ----

TEST(ConfigReader, ReadsPlainDecimalIntegers) {
  EXPECT_EQ(as_int(value_of(yaml("a: 42")), kCtx, 1, 100), 42);
  EXPECT_EQ(as_int(value_of(yaml("a: -5")), kCtx, -10, 100), -5);
  EXPECT_EQ(as_int(value_of(yaml("a: 0")), kCtx, 0, 0), 0);
  EXPECT_EQ(as_int(value_of(yaml("a: -9223372036854775808")), kCtx, INT64_MIN, 0), INT64_MIN);
  EXPECT_EQ(as_int(value_of(yaml("a: 9223372036854775807")), kCtx, 0, INT64_MAX), INT64_MAX);
}

TEST(ConfigReader, ExplainsAnIntegerErrorWithFileLineKeyAndValue) {
  const YamlNode root = yaml("x: 1\na: abc\n");
  const std::string err = reader_error([&] { as_int(root.entries[1].second, kCtx, 1, 100000); });
  EXPECT_EQ(err,
            "agent.yaml:2:4: limits.max_clients: expected an integer between 1 and 100000, "
            "got \"abc\"");
}

TEST(ConfigReader, RejectsEverythingButPlainDecimalIntegers) {
  for (const char* text :
       {"a: \"10\"", "a: '10'", "a: 0x10", "a: +5", "a: 1e3", "a: 10.0", "a: 010", "a: ' 10'",
        "a: 10;", "a: -0", "a: 1_000", "a: [1]", "a:", "a: 99999999999999999999",
        "a: 9223372036854775808", "a: -9223372036854775809", "a: true", "a: .inf"}) {
    EXPECT_NE(reader_error([&] { as_int(value_of(yaml(text)), kCtx, INT64_MIN, INT64_MAX); }), "")
        << text;
  }
}

TEST(ConfigReader, ChecksIntegerRange) {
  EXPECT_NE(reader_error([] { as_int(value_of(yaml("a: 0")), kCtx, 1, 10); }), "");
  EXPECT_NE(reader_error([] { as_int(value_of(yaml("a: 11")), kCtx, 1, 10); }), "");
}

TEST(ConfigReader, AcceptsOnlyTrueAndFalseAsBooleans) {
  EXPECT_TRUE(as_bool(value_of(yaml("a: true")), kCtx));
  EXPECT_FALSE(as_bool(value_of(yaml("a: false")), kCtx));
  for (const char* text : {"a: yes", "a: no", "a: on", "a: off", "a: y", "a: n", "a: True",
                           "a: FALSE", "a: \"true\"", "a: 1", "a: 0", "a:"}) {
    const std::string err = reader_error([&] { as_bool(value_of(yaml(text)), kCtx); });
    EXPECT_NE(err.find("expected true or false"), std::string::npos) << text << ": " << err;
  }
}

TEST(ConfigReader, ReadsDurationsWithMandatoryUnits) {
  EXPECT_EQ(as_duration(value_of(yaml("a: 250ms")), kCtx, 0ms, 24h), 250ms);
  EXPECT_EQ(as_duration(value_of(yaml("a: 10s")), kCtx, 0ms, 24h), 10s);
  EXPECT_EQ(as_duration(value_of(yaml("a: 5m")), kCtx, 0ms, 24h), 5min);
  EXPECT_EQ(as_duration(value_of(yaml("a: 1h")), kCtx, 0ms, 24h), 1h);
  for (const char* text : {"a: 10", "a: \"10s\"", "a: 10 s", "a: 1.5s", "a: -1s", "a: 10S", "a: s",
                           "a: 10sec", "a: 99999999999999999999h", "a: 25h"}) {
    EXPECT_NE(reader_error([&] { as_duration(value_of(yaml(text)), kCtx, 0ms, 24h); }), "") << text;
  }
  EXPECT_NE(reader_error([] { as_duration(value_of(yaml("a: 50ms")), kCtx, 100ms, 1s); }), "");
}

TEST(ConfigReader, ReadsSizesInBytesOrBinaryUnits) {
  EXPECT_EQ(as_size(value_of(yaml("a: 512")), kCtx, 0, 1ULL << 40), 512U);
  EXPECT_EQ(as_size(value_of(yaml("a: 64KiB")), kCtx, 0, 1ULL << 40), 64U * 1024);
  EXPECT_EQ(as_size(value_of(yaml("a: 8MiB")), kCtx, 0, 1ULL << 40), 8U << 20);
  EXPECT_EQ(as_size(value_of(yaml("a: 1GiB")), kCtx, 0, 1ULL << 40), 1ULL << 30);
  for (const char* text : {"a: 1KB", "a: 1k", "a: \"512\"", "a: 1.5MiB", "a: -1", "a: KiB",
                           "a: 99999999999999999999GiB", "a: 17179869184GiB"}) {
    EXPECT_NE(reader_error([&] { as_size(value_of(yaml(text)), kCtx, 0, 1ULL << 40); }), "")
        << text;
  }
  EXPECT_NE(reader_error([] { as_size(value_of(yaml("a: 2MiB")), kCtx, 0, 1U << 20); }), "");
}

TEST(ConfigReader, RejectsDuplicateListEntries) {
  const std::string err = reader_error([] {
    as_string_list(value_of(yaml("a: [x, y, x]")), {"f", "roles.r.logs"});
  });
  EXPECT_NE(err.find("roles.r.logs[2]: duplicate entry \"x\""), std::string::npos) << err;
}

TEST(ConfigReader, ResolvesRelativePathsAgainstTheBaseDirectory) {
  EXPECT_EQ(as_path(value_of(yaml("a: x/y")), kCtx, "/etc/opsagent"),
            fs::path("/etc/opsagent/x/y"));
  EXPECT_EQ(as_path(value_of(yaml("a: /abs")), kCtx, "/etc/opsagent"), fs::path("/abs"));
}

TEST(ConfigReader, ListsAllowedKeysWhenAKeyIsUnknown) {
  const YamlNode root = yaml("allow: [a]\nalow: [b]\n");
  MapReader map(root, {"policy.yaml", "roles.ops"});
  map.find("allow");
  map.find("deny");
  const std::string err = reader_error([&] { map.finish(); });
  EXPECT_EQ(err, "policy.yaml:2:1: roles.ops.alow: unknown key 'alow' (allowed: allow, deny)");
}

TEST(ConfigReader, NamesTheMissingRequiredKey) {
  const YamlNode root = yaml("a: 1\n");
  MapReader map(root, {"agent.yaml", "tls"});
  const std::string err = reader_error([&] { map.require("certificate"); });
  EXPECT_EQ(err, "agent.yaml:1:1: tls: missing required key 'certificate'");
}

TEST(ConfigReader, TreatsNullAsAnEmptyMapButRejectsScalars) {
  const YamlNode null_node;
  MapReader empty(null_node, {"f", "x"});
  EXPECT_EQ(empty.find("a"), nullptr);
  EXPECT_THROW(MapReader(value_of(yaml("a: 1")), NodeContext{"f", "a"}), ConfigError);
}

// ---- Config: agent.yaml ----

TEST(Config, LoadsAMinimalFileWithDefaults) {
  const ConfigDir dir;
  const AgentConfig cfg = load_agent_config(dir.copy_fixture("good.yaml"));
  ASSERT_EQ(cfg.listen.size(), 2U);
  EXPECT_EQ(cfg.listen[0].host, "127.0.0.1");
  EXPECT_EQ(cfg.listen[0].port, 9999);
  EXPECT_EQ(cfg.listen[1].host, "::1");
  EXPECT_EQ(cfg.tls.certificate, dir.path() / "server.crt");
  EXPECT_EQ(cfg.tls.private_key, dir.path() / "server.key");
  EXPECT_EQ(cfg.tls.client_ca, dir.path() / "ca.crt");
  EXPECT_TRUE(cfg.tls.crl.empty());
  EXPECT_FALSE(cfg.tls.allow_tls12);
  EXPECT_EQ(cfg.tls.verify_depth, 4);
  EXPECT_EQ(cfg.tls.groups, (std::vector<std::string>{"X25519", "P-256"}));
  EXPECT_EQ(cfg.timeouts.handshake, 10s);
  EXPECT_EQ(cfg.timeouts.idle, 5min);
  EXPECT_EQ(cfg.limits.max_clients, 64);
  EXPECT_EQ(cfg.limits.max_line_bytes, 8192U);
  EXPECT_EQ(cfg.lastlog.path, fs::path("/var/log/syslog"));
  EXPECT_EQ(cfg.exec.umask, 077U);
  EXPECT_EQ(cfg.log_level, "info");
  EXPECT_EQ(cfg.audit_path, dir.path() / "audit.jsonl");
  EXPECT_EQ(cfg.policy_path, dir.path() / "policy.yaml");
}

TEST(Config, LoadsTheExampleConfiguration) {
  // The example refers to ../certs/dev and ../var; rebuild that layout around a copy.
  const ConfigDir root;
  fs::create_directories(root.path() / "config");
  fs::create_directories(root.path() / "certs" / "dev");
  root.write("certs/dev/server.crt", "dummy\n");
  root.write("certs/dev/server.key", "dummy\n", 0600);
  root.write("certs/dev/ca.crt", "dummy\n");
  const fs::path source = fs::path(OPSAGENT_TEST_DATA_DIR) / ".." / ".." / "config";
  for (const char* name : {"agent.yaml", "policy.yaml"}) {
    std::ifstream in(source / name, std::ios::binary);
    ASSERT_TRUE(in.good()) << name;
    root.write(std::string("config/") + name,
               std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()),
               0644);
  }
  const AgentConfig cfg = load_agent_config(root.path() / "config" / "agent.yaml");
  ASSERT_EQ(cfg.listen.size(), 2U);
  EXPECT_EQ(cfg.listen[1].host, "::1");
  EXPECT_EQ(cfg.tls.private_key, root.path() / "config" / "../certs/dev/server.key");
  EXPECT_EQ(cfg.audit_path, root.path() / "config" / "../var/audit.jsonl");
  EXPECT_EQ(cfg.policy_path, root.path() / "config" / "policy.yaml");
  EXPECT_EQ(cfg.limits.max_line_bytes, 8192U);
  EXPECT_EQ(cfg.exec.environment.size(), 2U);
  EXPECT_EQ(cfg.timeouts.kill_grace, 2s);
  EXPECT_EQ(cfg.timeouts.write_stall, 30s);
}

TEST(Config, ReadsEveryOptionalSection) {
  const ConfigDir dir;
  dir.write("crl.pem", "dummy\n");
  const AgentConfig cfg = load_agent_config(dir.write("agent.yaml", R"(
listen: ["0.0.0.0:0"]
tls:
  certificate: server.crt
  private_key: server.key
  client_ca: ca.crt
  crl: crl.pem
  min_version: 1.2
  verify_depth: 2
timeouts: {handshake: 500ms, idle: 1h, kill_grace: 0s, drain: 250ms, write_stall: 2m}
limits: {max_clients: 10, max_clients_per_identity: 10, max_handshakes: 5, max_line_bytes: 1KiB,
         max_pipelined: 0, io_threads: 4, hash_threads: 3, max_children: 7}
lastlog: {path: /var/log/messages, lines: 50, journal_fallback: false}
exec: {environment: ["PATH=/bin", "A_1="], working_directory: /tmp, umask: "0027"}
logging: {level: debug}
audit: {path: /var/log/opsagent/audit.jsonl}
policy: policy.yaml
)"));
  EXPECT_EQ(cfg.listen[0].port, 0);
  EXPECT_EQ(cfg.tls.crl, dir.path() / "crl.pem");
  EXPECT_TRUE(cfg.tls.allow_tls12);
  EXPECT_EQ(cfg.tls.verify_depth, 2);
  EXPECT_EQ(cfg.timeouts.handshake, 500ms);
  EXPECT_EQ(cfg.timeouts.kill_grace, 0ms);
  EXPECT_EQ(cfg.timeouts.write_stall, 2min);
  EXPECT_EQ(cfg.limits.max_line_bytes, 1024U);
  EXPECT_EQ(cfg.limits.max_pipelined, 0);
  EXPECT_EQ(cfg.limits.max_children, 7);
  EXPECT_EQ(cfg.lastlog.lines, 50);
  EXPECT_FALSE(cfg.lastlog.journal_fallback);
  EXPECT_EQ(cfg.exec.environment, (std::vector<std::string>{"PATH=/bin", "A_1="}));
  EXPECT_EQ(cfg.exec.umask, 027U);
  EXPECT_EQ(cfg.log_level, "debug");
  EXPECT_EQ(cfg.audit_path, fs::path("/var/log/opsagent/audit.jsonl"));
}

// `tls: {...}` with `groups: <groups>`, then the rest of a minimal file.
std::string with_groups(const std::string& groups) {
  return "listen: [\"127.0.0.1:0\"]\n"
         "tls: {certificate: server.crt, private_key: server.key, client_ca: ca.crt,\n"
         "      groups: " +
         groups +
         "}\n"
         "audit: {path: audit.jsonl}\n"
         "policy: policy.yaml\n";
}

TEST(Config, ReadsTlsGroupsInOrderUnderTheirCanonicalNames) {
  const ConfigDir dir;
  const AgentConfig cfg =
      load_agent_config(dir.write("agent.yaml", with_groups("[secp384r1, x25519, prime256v1]")));
  EXPECT_EQ(cfg.tls.groups, (std::vector<std::string>{"P-384", "X25519", "P-256"}));
  EXPECT_EQ(load_agent_config(dir.write("agent.yaml", with_groups("[P-384]"))).tls.groups,
            std::vector<std::string>{"P-384"});
}

// A key that loads but no longer does anything is named, with its place, as a warning.
TEST(Config, WarnsThatTicketKeyRotationHasNoEffect) {
  const ConfigDir dir;
  EXPECT_TRUE(load_agent_config(dir.write("agent.yaml", with_groups("[P-256]"))).warnings.empty());
  const AgentConfig cfg =
      load_agent_config(dir.write("agent.yaml", with_groups("[P-256], ticket_key_rotation: 1h")));
  ASSERT_EQ(cfg.warnings.size(), 1U);
  EXPECT_NE(cfg.warnings[0].find("agent.yaml:3:45: tls.ticket_key_rotation: has no effect"),
            std::string::npos)
      << cfg.warnings[0];
}

// What agent.yaml accepts is exactly what the TLS layer offers (tls::kEcdheGroups).
TEST(Config, AcceptsEveryGroupTheTlsLayerSupports) {
  const ConfigDir dir;
  for (const char* group : tls::kEcdheGroups) {
    const std::string list = std::string("[") + group + "]";
    EXPECT_EQ(load_agent_config(dir.write("agent.yaml", with_groups(list))).tls.groups,
              std::vector<std::string>{group});
  }
  EXPECT_EQ(std::size(tls::kEcdheGroups), 3U) << "a group was added: add it to canonical_group()";
}

TEST(Config, RefusesFiniteFieldUnknownDuplicateAndEmptyTlsGroups) {
  const ConfigDir dir;
  // Line 3 is "      groups: [...]": the list opens at column 15.
  for (const char* group :
       {"ffdhe2048", "ffdhe3072", "ffdhe4096", "ffdhe6144", "ffdhe8192", "FFDHE2048"}) {
    const std::string err = load_error(dir, with_groups(std::string("[") + group + "]"));
    EXPECT_NE(err.find("agent.yaml:3:16: tls.groups[0]: finite-field group " + std::string(group) +
                       " is not allowed"),
              std::string::npos)
        << err;
  }
  EXPECT_NE(load_error(dir, with_groups("[X25519, P-521]"))
                .find("agent.yaml:3:24: tls.groups[1]: unknown or unsupported key exchange group "
                      "'P-521'; allowed: X25519, P-256, P-384"),
            std::string::npos);
  EXPECT_NE(load_error(dir, with_groups("[X448]")).find("tls.groups[0]: unknown"),
            std::string::npos);
  EXPECT_NE(load_error(dir, with_groups("[P-256, secp256r1]"))
                .find("tls.groups[1]: group P-256 is listed twice (also at line 3)"),
            std::string::npos);
  EXPECT_NE(load_error(dir, with_groups("[]")).find("tls.groups: expected a non-empty list"),
            std::string::npos);
  EXPECT_NE(load_error(dir, with_groups("X25519")).find("tls.groups: expected a non-empty list"),
            std::string::npos);
}

TEST(Config, ParsesListenAddresses) {
  EXPECT_EQ(parse_listen_address("127.0.0.1:9999").host, "127.0.0.1");
  EXPECT_EQ(parse_listen_address("[::1]:0").port, 0);
  EXPECT_EQ(parse_listen_address("[0:0::1]:65535").host, "::1");
  for (const char* bad :
       {"localhost:9999", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1",
        "127.0.0.1:+80", "::1:9999", "[::1:9999", "[::1]", "[fe80::1%eth0]:1", "0x7f.1:80",
        "127.1:80", "1.2.3.4:99999999", " 127.0.0.1:80", "127.0.0.1:80 ", ""}) {
    EXPECT_THROW(parse_listen_address(bad), std::invalid_argument) << bad;
  }
}

TEST(Config, RejectsDuplicateListenAddresses) {
  const ConfigDir dir;
  const std::string err =
      load_error(dir, std::string("listen: [\"[::1]:1\", \"[0::1]:1\"]\n") + kTlsAndRest);
  EXPECT_NE(err.find("listen[1]: duplicate address"), std::string::npos) << err;
}

TEST(Config, RejectsAnEmptyListenList) {
  const ConfigDir dir;
  EXPECT_NE(load_error(dir, std::string("listen: []\n") + kTlsAndRest).find("listen:"),
            std::string::npos);
}

TEST(Config, RejectsHostNamesInListen) {
  const ConfigDir dir;
  const std::string err = load_error(dir, std::string("listen: [\"localhost:1\"]\n") + kTlsAndRest);
  EXPECT_NE(err.find("agent.yaml:1:10: listen[0]: "), std::string::npos) << err;
  EXPECT_NE(err.find("not a numeric IPv4 address"), std::string::npos) << err;
}

TEST(Config, RejectsAPrivateKeyOthersCanRead) {
  const ConfigDir dir;
  for (const mode_t mode : {0640, 0604, 0660, 0700 | 0001}) {
    ::chmod((dir.path() / "server.key").c_str(), mode);
    const std::string err =
        load_error(dir, std::string("listen: [\"127.0.0.1:1\"]\n") + kTlsAndRest);
    EXPECT_NE(err.find("tls.private_key"), std::string::npos) << err;
    EXPECT_NE(err.find("server.key has mode"), std::string::npos) << err;
    EXPECT_NE(err.find("must not be accessible by group or others"), std::string::npos) << err;
  }
  ::chmod((dir.path() / "server.key").c_str(), 0400);
  EXPECT_EQ(load_error(dir, std::string("listen: [\"127.0.0.1:1\"]\n") + kTlsAndRest), "");
}

TEST(Config, NamesLineAndKeyOfAMissingCertificate) {
  const std::string err = fixture_error("missing_certificate.yaml");
  EXPECT_NE(err.find("agent.yaml:3:16: tls.certificate: cannot open "), std::string::npos) << err;
  EXPECT_NE(err.find("no-such.crt"), std::string::npos) << err;
}

TEST(Config, RequiresTheKeyCaCrlAndPolicyFilesToExist) {
  const ConfigDir dir;
  const std::string listen = "listen: [\"127.0.0.1:1\"]\n";
  EXPECT_NE(
      load_error(dir, listen +
                          "tls: {certificate: server.crt, private_key: nokey, client_ca: ca.crt}\n"
                          "audit: {path: a}\npolicy: policy.yaml\n")
          .find("tls.private_key: cannot open"),
      std::string::npos);
  EXPECT_NE(
      load_error(dir, listen +
                          "tls: {certificate: server.crt, private_key: server.key, client_ca: x}\n"
                          "audit: {path: a}\npolicy: policy.yaml\n")
          .find("tls.client_ca: cannot open"),
      std::string::npos);
  EXPECT_NE(
      load_error(
          dir,
          listen +
              "tls: {certificate: server.crt, private_key: server.key, client_ca: ca.crt, crl: x}\n"
              "audit: {path: a}\npolicy: policy.yaml\n")
          .find("tls.crl: cannot open"),
      std::string::npos);
  EXPECT_NE(
      load_error(dir,
                 listen +
                     "tls: {certificate: server.crt, private_key: server.key, client_ca: ca.crt}\n"
                     "audit: {path: a}\npolicy: nopolicy.yaml\n")
          .find("policy: cannot open"),
      std::string::npos);
  EXPECT_NE(
      load_error(dir, listen + "tls: {certificate: ., private_key: server.key, client_ca: ca.crt}\n"
                               "audit: {path: a}\npolicy: policy.yaml\n")
          .find("not a regular file"),
      std::string::npos);
}

TEST(Config, ReadsTheAuditChainKeyAndSyncPolicy) {
  const ConfigDir dir;
  dir.write("chain.key", "0123456789abcdef", 0600);
  const std::string head =
      "listen: [\"127.0.0.1:1\"]\n"
      "tls: {certificate: server.crt, private_key: server.key, client_ca: ca.crt}\n"
      "policy: policy.yaml\n";
  const AgentConfig cfg = load_agent_config(dir.write(
      "agent.yaml", head + "audit: {path: a, chain_key_file: chain.key, sync: every_record, "
                           "sync_interval_ms: 250}\n"));
  EXPECT_EQ(cfg.audit_chain_key, "0123456789abcdef");
  EXPECT_EQ(cfg.audit_sync, "every_record");
  EXPECT_EQ(cfg.audit_sync_interval_ms, 250);
  const AgentConfig defaults =
      load_agent_config(dir.write("agent.yaml", head + "audit: {path: a}\n"));
  EXPECT_TRUE(defaults.audit_chain_key.empty());
  EXPECT_EQ(defaults.audit_sync, "interval");
  EXPECT_EQ(defaults.audit_sync_interval_ms, 1000);
  EXPECT_EQ(restart_only_change(cfg, defaults), "audit.chain_key_file");

  const auto error_with = [&](const std::string& audit) {
    return load_error(dir, head + "audit: " + audit + "\n");
  };
  std::string err = error_with("{path: a, sync: always}");
  EXPECT_NE(err.find("audit.sync"), std::string::npos) << err;
  err = error_with("{path: a, sync_interval_ms: 0}");
  EXPECT_NE(err.find("audit.sync_interval_ms"), std::string::npos) << err;
  err = error_with("{path: a, chain_key_file: nokey}");
  EXPECT_NE(err.find("audit.chain_key_file"), std::string::npos) << err;
  dir.write("loose.key", "k", 0640);
  err = error_with("{path: a, chain_key_file: loose.key}");
  EXPECT_NE(err.find("audit.chain_key_file"), std::string::npos) << err;
  EXPECT_NE(err.find("loose.key: the key file has mode 0640"), std::string::npos) << err;
  dir.write("empty.key", "", 0600);
  err = error_with("{path: a, chain_key_file: empty.key}");
  EXPECT_NE(err.find("empty.key: the key file is empty"), std::string::npos) << err;
  dir.write("big.key", std::string(4097, 'k'), 0600);
  err = error_with("{path: a, chain_key_file: big.key}");
  EXPECT_NE(err.find("larger than 4096 bytes"), std::string::npos) << err;
}

TEST(Config, ReadsAuditShippingToJournaldAndSyslog) {
  const ConfigDir dir;
  const std::string head =
      "listen: [\"127.0.0.1:1\"]\n"
      "tls: {certificate: server.crt, private_key: server.key, client_ca: ca.crt}\n"
      "policy: policy.yaml\n";
  const AgentConfig defaults =
      load_agent_config(dir.write("agent.yaml", head + "audit: {path: a}\n"));
  EXPECT_FALSE(defaults.audit_journald.enabled);
  EXPECT_EQ(defaults.audit_journald.socket, "/run/systemd/journal/socket");
  EXPECT_FALSE(defaults.audit_syslog.enabled);
  EXPECT_EQ(defaults.audit_syslog.socket, "/dev/log");
  EXPECT_EQ(defaults.audit_syslog.facility, "authpriv");
  EXPECT_EQ(defaults.audit_syslog.facility_code, 10);
  EXPECT_EQ(defaults.audit_syslog.sd_id, "opsagent@32473");

  const AgentConfig cfg = load_agent_config(dir.write(
      "agent.yaml", head + "audit:\n"
                           "  path: a\n"
                           "  journald: {enabled: true, socket: j.sock}\n"
                           "  syslog: {enabled: true, socket: /run/s.sock, facility: local3, "
                           "sd_id: opsagent@1.2.3}\n"));
  EXPECT_TRUE(cfg.audit_journald.enabled);
  EXPECT_EQ(cfg.audit_journald.socket, fs::absolute(dir.path()) / "j.sock");
  EXPECT_TRUE(cfg.audit_syslog.enabled);
  EXPECT_EQ(cfg.audit_syslog.socket, "/run/s.sock");
  EXPECT_EQ(cfg.audit_syslog.facility_code, 19);
  EXPECT_EQ(cfg.audit_syslog.sd_id, "opsagent@1.2.3");
  EXPECT_EQ(restart_only_change(cfg, defaults), "audit.journald");

  // Errors name the file, the line and the key.
  const auto error_with = [&](const std::string& lines) {
    return load_error(dir, head + "audit:\n  path: a\n" + lines);
  };
  const std::string file = (dir.path() / "agent.yaml").string();
  std::string err = error_with("  syslog: {enabled: true, facility: security}\n");
  EXPECT_NE(err.find(file + ":6:"), std::string::npos) << err;
  EXPECT_NE(err.find("audit.syslog.facility: unknown syslog facility 'security'"),
            std::string::npos)
      << err;
  err = error_with("  journald: {enabled: true, sokcet: /x}\n");
  EXPECT_NE(err.find(file + ":6:"), std::string::npos) << err;
  EXPECT_NE(err.find("sokcet"), std::string::npos) << err;
  EXPECT_NE(err.find("audit.journald"), std::string::npos) << err;
  err = error_with("  syslog: {enabled: yes}\n");
  EXPECT_NE(err.find("audit.syslog.enabled"), std::string::npos) << err;
  err = error_with("  syslog: {sd_id: opsagent}\n");
  EXPECT_NE(err.find("audit.syslog.sd_id"), std::string::npos) << err;
  err = error_with("  syslog: {sd_id: \"ops agent@1\"}\n");
  EXPECT_NE(err.find("audit.syslog.sd_id"), std::string::npos) << err;
  err = error_with("  journald: {socket: /" + std::string(120, 'x') + "}\n");
  EXPECT_NE(err.find("audit.journald.socket: socket path is 121 bytes long"), std::string::npos)
      << err;
  err = error_with("  forward: {enabled: true}\n");
  EXPECT_NE(err.find(file + ":6:"), std::string::npos) << err;
  EXPECT_NE(err.find("forward"), std::string::npos) << err;
}

TEST(Config, NamesEveryMissingRequiredKey) {
  const ConfigDir dir;
  EXPECT_NE(load_error(dir, "tls: {}\n").find("missing required key 'listen'"), std::string::npos);
  EXPECT_NE(load_error(dir, "listen: [\"127.0.0.1:1\"]\n").find("missing required key 'tls'"),
            std::string::npos);
  EXPECT_NE(load_error(dir,
                       "listen: [\"127.0.0.1:1\"]\ntls: {certificate: server.crt, private_key: "
                       "server.key, client_ca: ca.crt}\npolicy: policy.yaml\n")
                .find("missing required key 'audit'"),
            std::string::npos);
}

TEST(Config, RejectsAnEmptyFile) {
  const std::string err = fixture_error("empty.yaml");
  EXPECT_NE(err.find("missing required key 'listen'"), std::string::npos) << err;
}

TEST(Config, RejectsTabIndentationWithPosition) {
  const std::string err = fixture_error("tabs.yaml");
  EXPECT_NE(err.find("agent.yaml:3:1: tab character in indentation"), std::string::npos) << err;
}

TEST(Config, RejectsAnUnclosedQuoteWithPosition) {
  const std::string err = fixture_error("unclosed_quote.yaml");
  EXPECT_NE(err.find("agent.yaml:2:9: unclosed quoted string"), std::string::npos) << err;
}

TEST(Config, RejectsExplicitTags) {
  EXPECT_NE(fixture_error("tag.yaml").find("agent.yaml:3:16: explicit tags are not allowed"),
            std::string::npos)
      << fixture_error("tag.yaml");
}

TEST(Config, RejectsBinaryJunk) {
  EXPECT_NE(fixture_error("binary_junk.yaml").find("agent.yaml:1:1: invalid UTF-8"),
            std::string::npos);
  EXPECT_NE(fixture_error("junk_without_nul.yaml").find("agent.yaml:1:1: invalid UTF-8"),
            std::string::npos);
}

TEST(Config, RejectsADuplicateKeyThatWouldSwapThePolicy) {
  const std::string err = fixture_error("duplicate_key.yaml");
  EXPECT_NE(err.find("agent.yaml:8:1: policy: duplicate key 'policy' (first defined at line 6)"),
            std::string::npos)
      << err;
}

TEST(Config, RejectsUnknownKeysListingTheAllowedOnes) {
  const std::string err = fixture_error("unknown_key.yaml");
  EXPECT_NE(err.find("agent.yaml:6:3: tls.verfy_depth: unknown key 'verfy_depth' (allowed: "
                     "certificate, client_ca, crl, groups, min_version, private_key, "
                     "session_cache_size, session_tickets, ticket_key_rotation, ticket_lifetime, "
                     "verify_depth)"),
            std::string::npos)
      << err;
}

TEST(Config, RejectsYaml11Booleans) {
  const std::string err = fixture_error("yaml11_bool.yaml");
  EXPECT_NE(
      err.find("agent.yaml:4:21: lastlog.journal_fallback: expected true or false, got \"yes\""),
      std::string::npos)
      << err;
}

TEST(Config, RejectsAQuotedNumber) {
  const std::string err = fixture_error("quoted_number.yaml");
  EXPECT_NE(err.find("agent.yaml:4:16: limits.max_clients: expected an integer between 1 and "
                     "100000, got quoted \"10\""),
            std::string::npos)
      << err;
}

TEST(Config, RejectsANonNumber) {
  const std::string err = fixture_error("not_a_number.yaml");
  EXPECT_NE(err.find("agent.yaml:4:16: limits.max_clients: expected an integer between 1 and "
                     "100000, got \"abc\""),
            std::string::npos)
      << err;
}

TEST(Config, RejectsADurationWithoutUnit) {
  EXPECT_NE(
      fixture_error("duration_without_unit.yaml").find("timeouts.handshake: expected a duration"),
      std::string::npos);
}

TEST(Config, RejectsAnchors) {
  EXPECT_NE(fixture_error("anchors.yaml").find("anchors and aliases are not allowed"),
            std::string::npos);
}

TEST(Config, RejectsMorePerIdentityClientsThanClients) {
  const std::string err = fixture_error("per_identity_above_max.yaml");
  EXPECT_NE(err.find("limits.max_clients_per_identity: max_clients_per_identity (8) is larger than "
                     "max_clients (4)"),
            std::string::npos)
      << err;
}

TEST(Config, RejectsOutOfRangeValues) {
  const ConfigDir dir;
  const std::string head = "listen: [\"127.0.0.1:1\"]\n";
  const std::string files = "audit: {path: a}\npolicy: policy.yaml\n";
  const std::string tls =
      "tls: {certificate: server.crt, private_key: server.key, client_ca: ca.crt";
  EXPECT_NE(load_error(dir, head + tls + ", verify_depth: 11}\n" + files).find("tls.verify_depth"),
            std::string::npos);
  EXPECT_NE(
      load_error(dir, head + tls + ", min_version: \"1.1\"}\n" + files).find("tls.min_version"),
      std::string::npos);
  EXPECT_NE(load_error(dir, head + tls + "}\nlimits: {max_handshakes: 0}\n" + files)
                .find("limits.max_handshakes"),
            std::string::npos);
  EXPECT_NE(load_error(dir, head + tls + "}\nlimits: {max_line_bytes: 2MiB}\n" + files)
                .find("limits.max_line_bytes"),
            std::string::npos);
  EXPECT_NE(load_error(dir, head + tls + "}\ntimeouts: {handshake: 0ms}\n" + files)
                .find("timeouts.handshake"),
            std::string::npos);
  EXPECT_NE(
      load_error(dir, head + tls + "}\nlogging: {level: verbose}\n" + files).find("logging.level"),
      std::string::npos);
}

// SECURITY-MATRIX I5: one principal never gets every blocking-work thread; the old key name
// is still read, and giving both names is an error.
TEST(Config, FileOpsPerIdentityStaysBelowTheBlockingThreads) {
  const ConfigDir dir;
  const std::string base =
      "listen: [\"127.0.0.1:1\"]\naudit: {path: a}\npolicy: policy.yaml\n"
      "tls: {certificate: server.crt, private_key: server.key, client_ca: ca.crt}\n";
  const auto limits = [&](const std::string& l) { return base + "limits: " + l + "\n"; };
  EXPECT_NE(load_error(dir, limits("{hash_threads: 1}"))
                .find("limits.hash_threads: max_file_ops_per_identity (2) must be less than "
                      "hash_threads (1)"),
            std::string::npos);
  EXPECT_NE(load_error(dir, limits("{max_file_ops_per_identity: 4}"))
                .find("limits.max_file_ops_per_identity: max_file_ops_per_identity (4) must be "
                      "less than blocking_threads (4)"),
            std::string::npos);
  EXPECT_NE(load_error(dir, limits("{blocking_threads: 2, max_file_ops_per_identity: 2}"))
                .find("max_file_ops_per_identity (2) must be less than blocking_threads (2)"),
            std::string::npos);
  EXPECT_NE(load_error(dir, limits("{blocking_threads: 3, hash_threads: 3}"))
                .find("limits.blocking_threads: blocking_threads and hash_threads (its old name) "
                      "are both given"),
            std::string::npos);
  EXPECT_EQ(load_agent_config(dir.write("agent.yaml", limits("{hash_threads: 5}")))
                .limits.blocking_threads,
            5);
  EXPECT_NE(load_error(dir, limits("{max_file_ops_per_identity: 1, max_digests_per_identity: 1}"))
                .find("limits.max_file_ops_per_identity: max_file_ops_per_identity and "
                      "max_digests_per_identity (its old name) are both given"),
            std::string::npos);
  const auto old_name =
      load_agent_config(dir.write("agent.yaml", limits("{max_digests_per_identity: 3}")));
  EXPECT_EQ(old_name.limits.max_file_ops_per_identity, 3);
  const auto defaults = load_agent_config(dir.write("agent.yaml", base));
  EXPECT_LT(defaults.limits.max_file_ops_per_identity, defaults.limits.blocking_threads);
}

TEST(Config, ValidatesTheChildEnvironment) {
  const ConfigDir dir;
  const std::string head = std::string("listen: [\"127.0.0.1:1\"]\n") + kTlsAndRest;
  EXPECT_NE(load_error(dir, head + "exec: {environment: [\"PATH=/bin\", \"PATH=/usr/bin\"]}\n")
                .find("exec.environment[1]: variable PATH is set twice"),
            std::string::npos);
  for (const char* bad : {"NOEQUALS", "=x", "1A=x", "A-B=x", "A B=x"}) {
    EXPECT_NE(load_error(dir, head + "exec: {environment: [\"" + bad + "\"]}\n")
                  .find("exec.environment[0]: expected NAME=value"),
              std::string::npos)
        << bad;
  }
}

TEST(Config, ValidatesUmaskAndWorkingDirectory) {
  const ConfigDir dir;
  const std::string head = std::string("listen: [\"127.0.0.1:1\"]\n") + kTlsAndRest;
  for (const char* bad : {"\"0778\"", "\"1777\"", "\"abc\"", "\"00777\"", "\"-1\""}) {
    EXPECT_NE(load_error(dir, head + "exec: {umask: " + bad + "}\n").find("exec.umask"),
              std::string::npos)
        << bad;
  }
  EXPECT_NE(load_error(dir, head + "exec: {working_directory: /no/such/dir}\n")
                .find("exec.working_directory"),
            std::string::npos);
}

TEST(Config, ValidatesGuardUserAndProcessLimit) {
  const ConfigDir dir;
  const std::string head = std::string("listen: [\"127.0.0.1:1\"]\n") + kTlsAndRest;
  EXPECT_NE(load_error(dir, head + "exec: {guard: /no/such/guard}\n")
                .find("exec.guard: /no/such/guard is not an executable program"),
            std::string::npos);
  EXPECT_NE(load_error(dir, head + "exec: {user: no-such-user-here}\n")
                .find("exec.user: no such user: no-such-user-here"),
            std::string::npos);
  for (const char* bad : {"0", "-1", "abc", "1000001"}) {
    EXPECT_NE(
        load_error(dir, head + "exec: {max_processes: " + bad + "}\n").find("exec.max_processes"),
        std::string::npos)
        << bad;
  }
}

TEST(Config, RefusesAConfigFileOthersCanWrite) {
  const ConfigDir dir;
  const fs::path file = dir.copy_fixture("good.yaml");
  ::chmod(file.c_str(), 0666);
  try {
    load_agent_config(file);
    FAIL() << "loaded a world-writable config";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("mode 0666"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(file.string()), std::string::npos) << e.what();
  }
}

TEST(Config, NamesAMissingConfigFile) {
  const ConfigDir dir;
  try {
    load_agent_config(dir.path() / "nope.yaml");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("nope.yaml: cannot open"), std::string::npos) << e.what();
  }
}

TEST(Config, ResolvesRunAsUserAndGroupAtLoad) {
  const ConfigDir dir;
  const fs::path file =
      dir.write("agent.yaml", std::string("listen: [\"127.0.0.1:0\"]\n") + kTlsAndRest +
                                  "run_as: {user: nobody, group: nogroup}\n");
  if (::geteuid() != 0) GTEST_SKIP() << "switching users needs root";
  const AgentConfig cfg = load_agent_config(file);
  EXPECT_EQ(cfg.run_as.user, "nobody");
  EXPECT_EQ(cfg.run_as.uid, 65534);
  EXPECT_EQ(cfg.run_as.gid, 65534);
  EXPECT_FALSE(cfg.run_as.allow_root);
}

TEST(Config, NamesAnUnknownRunAsUserOrGroupWithItsLine) {
  const ConfigDir dir;
  const std::string head = std::string("listen: [\"127.0.0.1:0\"]\n") + kTlsAndRest;
  std::string e = load_error(dir, head + "run_as:\n  user: no-such-user-xyz\n");
  EXPECT_NE(e.find("agent.yaml:6:9: run_as.user: no such user: no-such-user-xyz"),
            std::string::npos)
      << e;
  e = load_error(dir, head + "run_as:\n  user: nobody\n  group: no-such-group-xyz\n");
  if (::geteuid() == 0) {
    EXPECT_NE(e.find("agent.yaml:7:10: run_as.group: no such group: no-such-group-xyz"),
              std::string::npos)
        << e;
  }
  e = load_error(dir, head + "run_as: {user: root}\n");
  EXPECT_NE(e.find("run_as.user: root is root"), std::string::npos) << e;
  e = load_error(dir, head + "run_as: {allow_root: yes}\n");
  EXPECT_NE(e.find("run_as.allow_root"), std::string::npos) << e;
}

TEST(Config, RefusesAnExecUserTheDroppedAgentCouldNotBecome) {
  if (::geteuid() != 0) GTEST_SKIP() << "switching users needs root";
  const ConfigDir dir;
  const std::string e = load_error(dir, std::string("listen: [\"127.0.0.1:0\"]\n") + kTlsAndRest +
                                            "exec: {user: daemon}\nrun_as: {user: nobody}\n");
  EXPECT_NE(e.find("run_as.user: exec.user (daemon) differs from run_as.user (nobody)"),
            std::string::npos)
      << e;
}

TEST(Config, RunAsChangesNeedARestart) {
  AgentConfig a;
  AgentConfig b;
  b.run_as.uid = 65534;
  EXPECT_EQ(restart_only_change(a, b), "run_as.user");
  b = a;
  b.run_as.gid = 4;
  EXPECT_EQ(restart_only_change(a, b), "run_as.group");
  b = a;
  b.run_as.allow_root = true;
  EXPECT_EQ(restart_only_change(a, b), "");
}

}  // namespace
}  // namespace opsagent::config

// opsctl settings: flags over environment over config file; strict config file; exit codes.

#include "agent/client/client_config.hpp"

#include <fstream>
#include <map>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "agent/client/host_result.hpp"
#include "agent/config/config_error.hpp"

namespace opsagent::client {
namespace {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

class ClientConfig : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/opsctl-cfg-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir = tmpl;
    env_vars["HOME"] = dir.string();
  }
  void TearDown() override { fs::remove_all(dir); }

  EnvLookup env() {
    return [this](std::string_view name) -> std::optional<std::string> {
      const auto it = env_vars.find(std::string(name));
      if (it == env_vars.end()) return std::nullopt;
      return it->second;
    };
  }
  fs::path write(const fs::path& rel, const std::string& text) {
    const fs::path p = dir / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p;
  }
  std::string error_of(const ClientFlags& flags) {
    try {
      resolve_client_settings(flags, env());
    } catch (const config::ConfigError& e) {
      return e.what();
    }
    return "";
  }

  fs::path dir;
  std::map<std::string, std::string> env_vars;
};

TEST_F(ClientConfig, DefaultFileUnderHomeIsReadWithPathsRelativeToIt) {
  write(".config/opsctl/config.yaml",
        "certificate: alice.crt\nprivate_key: ~/keys/alice.key\nca: /etc/ca.crt\nport: 7443\n"
        "inventory: fleet.yaml\nconcurrency: 8\ntimeouts: {connect: 2s, handshake: 3s, command: "
        "0s}\n");
  const auto s = resolve_client_settings({}, env());
  EXPECT_EQ(s.tls.certificate, dir / ".config/opsctl/alice.crt");
  EXPECT_EQ(s.tls.private_key, dir / "keys/alice.key");
  EXPECT_EQ(s.tls.ca, "/etc/ca.crt");
  EXPECT_EQ(s.inventory, dir / ".config/opsctl/fleet.yaml");
  EXPECT_EQ(s.port, 7443);
  EXPECT_EQ(s.concurrency, 8U);
  EXPECT_EQ(s.timeouts.connect, 2s);
  EXPECT_EQ(s.timeouts.handshake, 3s);
  EXPECT_EQ(s.timeouts.command, 0s);
  EXPECT_NO_THROW(require_tls_files(s));
}

TEST_F(ClientConfig, FlagsBeatEnvironmentBeatsFile) {
  write(".config/opsctl/config.yaml",
        "certificate: /file.crt\nprivate_key: /file.key\nca: /file-ca.crt\nport: 1\n");
  env_vars["OPSCTL_CERT"] = "/env.crt";
  env_vars["OPSCTL_PORT"] = "2";
  ClientFlags flags;
  flags.certificate = "/flag.crt";
  auto s = resolve_client_settings(flags, env());
  EXPECT_EQ(s.tls.certificate, "/flag.crt");
  EXPECT_EQ(s.tls.private_key, "/file.key");
  EXPECT_EQ(s.port, 2);
  flags.port = 3;
  s = resolve_client_settings(flags, env());
  EXPECT_EQ(s.port, 3);
  flags.certificate.reset();
  EXPECT_EQ(resolve_client_settings(flags, env()).tls.certificate, "/env.crt");
}

TEST_F(ClientConfig, OpsctlConfigVariableNamesTheFileAndMustExist) {
  const auto p = write("elsewhere.yaml", "ca: ca.pem\n");
  env_vars["OPSCTL_CONFIG"] = p.string();
  EXPECT_EQ(resolve_client_settings({}, env()).tls.ca, dir / "ca.pem");
  env_vars["OPSCTL_CONFIG"] = (dir / "missing.yaml").string();
  EXPECT_NE(error_of({}).find("missing.yaml"), std::string::npos);
}

TEST_F(ClientConfig, NoConfigFileIsFineUntilTlsFilesAreNeeded) {
  const auto s = resolve_client_settings({}, env());
  EXPECT_TRUE(s.config_file.empty());
  try {
    require_tls_files(s);
    FAIL() << "expected an error";
  } catch (const config::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("--cert"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("OPSCTL_CERT"), std::string::npos);
  }
}

TEST_F(ClientConfig, ConcurrencyDefaultsTo256WhenNothingSetsIt) {
  EXPECT_EQ(resolve_client_settings({}, env()).concurrency, 256U);
}

TEST_F(ClientConfig, UnreadableTlsFilesAreNamedWithTheReason) {
  ClientFlags flags;
  flags.certificate = write("alice.crt", "x");
  flags.private_key = write("alice.key", "x");
  flags.ca = dir / "missing-ca.crt";
  const auto s = resolve_client_settings(flags, env());
  try {
    check_tls_files_readable(s);
    FAIL() << "expected an error";
  } catch (const config::ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), (dir / "missing-ca.crt").string() +
                                         ": cannot read the CA bundle: No such file or directory");
  }
  flags.ca = flags.certificate;
  EXPECT_NO_THROW(check_tls_files_readable(resolve_client_settings(flags, env())));
}

TEST_F(ClientConfig, ConfigErrorsNameFileLineAndKey) {
  write(".config/opsctl/config.yaml", "ca: x\ntimeouts:\n  conect: 5s\n");
  const std::string e = error_of({});
  EXPECT_NE(e.find("config.yaml:3:"), std::string::npos) << e;
  EXPECT_NE(e.find("conect"), std::string::npos) << e;
  write(".config/opsctl/config.yaml", "port: \"7443\"\n");
  EXPECT_NE(error_of({}).find("config.yaml:1:"), std::string::npos);
  env_vars.erase("HOME");
  env_vars["OPSCTL_PORT"] = "http";
  EXPECT_NE(error_of({}).find("OPSCTL_PORT"), std::string::npos);
}

TEST_F(ClientConfig, DurationFlags) {
  EXPECT_EQ(parse_duration_flag("--timeout", "250ms", true), 250ms);
  EXPECT_EQ(parse_duration_flag("--timeout", "0", true), 0ms);
  EXPECT_THROW(parse_duration_flag("--connect-timeout", "0", false), config::ConfigError);
  EXPECT_THROW(parse_duration_flag("--timeout", "10", true), config::ConfigError);
}

TEST_F(ClientConfig, PrivateKeyReadableByOthersIsRefused) {
  const auto key = write("k.pem", "x");
  ::chmod(key.c_str(), 0600);
  EXPECT_NO_THROW(check_private_key_mode(key));
  ::chmod(key.c_str(), 0640);
  EXPECT_THROW(check_private_key_mode(key), config::ConfigError);
}

HostResult result(HostStatus s, std::string code = "", std::optional<int> exit = std::nullopt,
                  std::optional<int> signal = std::nullopt) {
  HostResult r;
  r.status = s;
  r.code = std::move(code);
  r.exit_code = exit;
  r.signal = signal;
  return r;
}

TEST(ExitStatus, SingleHostPassesTheRemoteStatusThrough) {
  EXPECT_EQ(single_host_exit_status(result(HostStatus::ok, "", 0)), 0);
  EXPECT_EQ(single_host_exit_status(result(HostStatus::ok)), 0);
  EXPECT_EQ(single_host_exit_status(result(HostStatus::failed, "failed", 3)), 3);
  EXPECT_EQ(single_host_exit_status(result(HostStatus::failed, "failed", std::nullopt, 9)), 137);
  EXPECT_EQ(single_host_exit_status(result(HostStatus::denied, "denied")), 65);
  EXPECT_EQ(single_host_exit_status(result(HostStatus::error, "unknown")), 66);
  EXPECT_EQ(single_host_exit_status(result(HostStatus::error, "usage")), 66);
  EXPECT_EQ(single_host_exit_status(result(HostStatus::tls_error, "tls")), 67);
  EXPECT_EQ(single_host_exit_status(result(HostStatus::unreachable, "connect")), 68);
  EXPECT_EQ(single_host_exit_status(result(HostStatus::timeout, "timeout", std::nullopt, 15)), 69);
  EXPECT_EQ(single_host_exit_status(result(HostStatus::error, "busy")), 70);
  EXPECT_EQ(single_host_exit_status(result(HostStatus::error, "protocol")), 70);
}

TEST(ExitStatus, FanOutReportsTheWorstClass) {
  using V = std::vector<HostResult>;
  EXPECT_EQ(fan_out_exit_status(V{result(HostStatus::ok), result(HostStatus::ok)}), 0);
  EXPECT_EQ(fan_out_exit_status(V{result(HostStatus::ok), result(HostStatus::failed, "failed", 2)}),
            1);
  EXPECT_EQ(fan_out_exit_status(
                V{result(HostStatus::failed, "failed", 2), result(HostStatus::unreachable)}),
            68);
  EXPECT_EQ(fan_out_exit_status(V{result(HostStatus::unreachable), result(HostStatus::timeout)}),
            69);
  EXPECT_EQ(
      fan_out_exit_status(V{result(HostStatus::timeout), result(HostStatus::error, "internal")}),
      70);
  EXPECT_EQ(fan_out_exit_status(
                V{result(HostStatus::error, "internal"), result(HostStatus::error, "unknown")}),
            66);
  EXPECT_EQ(
      fan_out_exit_status(V{result(HostStatus::error, "unknown"), result(HostStatus::denied)}), 65);
  EXPECT_EQ(fan_out_exit_status(V{result(HostStatus::denied), result(HostStatus::tls_error)}), 67);
}

}  // namespace
}  // namespace opsagent::client

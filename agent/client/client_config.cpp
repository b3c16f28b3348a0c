#include "agent/client/client_config.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include "agent/common/environment.hpp"
#include "agent/common/errno_text.hpp"
#include "agent/common/trusted_file.hpp"
#include "agent/config/config_error.hpp"
#include "agent/config/strict_yaml.hpp"
#include "agent/config/yaml_reader.hpp"

namespace opsagent::client {
namespace fs = std::filesystem;
using config::ConfigError;
using config::MapReader;
using config::NodeContext;
using config::YamlNode;
using std::chrono::milliseconds;

namespace {

constexpr milliseconds kMaxTimeout = std::chrono::hours(24);
constexpr std::int64_t kMaxConcurrency = 4096;

struct FileSettings {
  std::optional<fs::path> certificate;
  std::optional<fs::path> private_key;
  std::optional<fs::path> ca;
  std::optional<fs::path> inventory;
  std::optional<std::uint16_t> port;
  std::optional<std::size_t> concurrency;
  std::optional<bool> resume;
  std::optional<milliseconds> connect;
  std::optional<milliseconds> handshake;
  std::optional<milliseconds> command;
};

fs::path expand_home(const std::string& text, const EnvLookup& env) {
  if (text == "~" || text.rfind("~/", 0) == 0) {
    const auto home = env("HOME");
    if (!home) throw ConfigError(fmt::format("{}: '~' used but HOME is not set", text));
    return fs::path(*home) / text.substr(text.size() > 1 ? 2 : 1);
  }
  return text;
}

fs::path file_path(const YamlNode& n, const NodeContext& ctx, const fs::path& base,
                   const EnvLookup& env) {
  const fs::path p = expand_home(config::as_string(n, ctx), env);
  return p.is_absolute() ? p : base / p;
}

FileSettings read_config_file(const fs::path& path, const EnvLookup& env) {
  const YamlNode root = config::load_yaml_file(path);
  const fs::path base = path.parent_path();
  FileSettings s;
  MapReader r(root, NodeContext{path.string(), ""});
  if (const YamlNode* n = r.find("certificate")) {
    s.certificate = file_path(*n, r.ctx("certificate"), base, env);
  }
  if (const YamlNode* n = r.find("private_key")) {
    s.private_key = file_path(*n, r.ctx("private_key"), base, env);
  }
  if (const YamlNode* n = r.find("ca")) s.ca = file_path(*n, r.ctx("ca"), base, env);
  if (const YamlNode* n = r.find("inventory")) {
    s.inventory = file_path(*n, r.ctx("inventory"), base, env);
  }
  if (const YamlNode* n = r.find("port")) {
    s.port = static_cast<std::uint16_t>(config::as_int(*n, r.ctx("port"), 1, 65535));
  }
  if (const YamlNode* n = r.find("concurrency")) {
    s.concurrency =
        static_cast<std::size_t>(config::as_int(*n, r.ctx("concurrency"), 1, kMaxConcurrency));
  }
  if (const YamlNode* n = r.find("resume")) s.resume = config::as_bool(*n, r.ctx("resume"));
  if (const YamlNode* t = r.find("timeouts")) {
    MapReader tr(*t, r.ctx("timeouts"));
    if (const YamlNode* n = tr.find("connect")) {
      s.connect = config::as_duration(*n, tr.ctx("connect"), milliseconds(1), kMaxTimeout);
    }
    if (const YamlNode* n = tr.find("handshake")) {
      s.handshake = config::as_duration(*n, tr.ctx("handshake"), milliseconds(1), kMaxTimeout);
    }
    if (const YamlNode* n = tr.find("command")) {
      s.command = config::as_duration(*n, tr.ctx("command"), milliseconds(0), kMaxTimeout);
    }
    tr.finish();
  }
  r.finish();
  return s;
}

template <typename T>
std::optional<T> first_of(const std::optional<T>& a, const std::optional<T>& b,
                          const std::optional<T>& c) {
  if (a) return a;
  if (b) return b;
  return c;
}

std::optional<fs::path> env_path(const EnvLookup& env, std::string_view name) {
  const auto v = env(name);
  if (!v) return std::nullopt;
  return fs::path(*v);
}

}  // namespace

std::optional<std::string> process_env(std::string_view name) {
  const std::string key(name);
  const char* v = common::env_var(key.c_str());
  if (v == nullptr || *v == '\0') return std::nullopt;
  return std::string(v);
}

fs::path config_file_path(const ClientFlags& flags, const EnvLookup& env, bool& required) {
  required = true;
  if (flags.config) return *flags.config;
  if (const auto p = env("OPSCTL_CONFIG")) return *p;
  required = false;
  fs::path candidate;
  if (const auto xdg = env("XDG_CONFIG_HOME")) {
    candidate = fs::path(*xdg) / "opsctl" / "config.yaml";
  } else if (const auto home = env("HOME")) {
    candidate = fs::path(*home) / ".config" / "opsctl" / "config.yaml";
  } else {
    return {};
  }
  std::error_code ec;
  return fs::exists(candidate, ec) ? candidate : fs::path();
}

ClientSettings resolve_client_settings(const ClientFlags& flags, const EnvLookup& env) {
  bool required = false;
  const fs::path config_path = config_file_path(flags, env, required);
  FileSettings file;
  if (!config_path.empty()) file = read_config_file(config_path, env);

  std::optional<std::uint16_t> env_port;
  if (const auto p = env("OPSCTL_PORT")) {
    YamlNode node;
    node.kind = YamlNode::Kind::scalar;
    node.scalar = *p;
    env_port =
        static_cast<std::uint16_t>(config::as_int(node, NodeContext{"OPSCTL_PORT", ""}, 1, 65535));
  }

  ClientSettings s;
  s.config_file = config_path;
  s.tls.certificate = first_of(flags.certificate, env_path(env, "OPSCTL_CERT"), file.certificate)
                          .value_or(fs::path());
  s.tls.private_key = first_of(flags.private_key, env_path(env, "OPSCTL_KEY"), file.private_key)
                          .value_or(fs::path());
  s.tls.ca = first_of(flags.ca, env_path(env, "OPSCTL_CA"), file.ca).value_or(fs::path());
  s.inventory = first_of(flags.inventory, env_path(env, "OPSCTL_INVENTORY"), file.inventory)
                    .value_or(fs::path());
  s.port = first_of(flags.port, env_port, file.port);
  s.concurrency = first_of(flags.concurrency, std::optional<std::size_t>(), file.concurrency)
                      .value_or(kDefaultConcurrency);
  s.resume = first_of(flags.resume, std::optional<bool>(), file.resume).value_or(true);
  const Timeouts defaults;
  s.timeouts.connect = first_of(flags.connect_timeout, std::optional<milliseconds>(), file.connect)
                           .value_or(defaults.connect);
  s.timeouts.handshake =
      first_of(flags.handshake_timeout, std::optional<milliseconds>(), file.handshake)
          .value_or(defaults.handshake);
  s.timeouts.command = first_of(flags.command_timeout, std::optional<milliseconds>(), file.command)
                           .value_or(defaults.command);
  return s;
}

void require_tls_files(const ClientSettings& s) {
  const std::string where =
      s.config_file.empty() ? "~/.config/opsctl/config.yaml" : s.config_file.string();
  const auto need = [&](const fs::path& p, std::string_view what, std::string_view flag,
                        std::string_view var, std::string_view key) {
    if (p.empty()) {
      throw ConfigError(
          fmt::format("no {}: use {}, ${} or `{}:` in {}", what, flag, var, key, where));
    }
  };
  need(s.tls.certificate, "client certificate", "--cert", "OPSCTL_CERT", "certificate");
  need(s.tls.private_key, "client private key", "--key", "OPSCTL_KEY", "private_key");
  need(s.tls.ca, "CA bundle for the agents' certificates", "--ca", "OPSCTL_CA", "ca");
}

void check_tls_files_readable(const ClientSettings& s) {
  // Name the file and the reason here, before OpenSSL reports it as an error stack.
  const auto readable = [](const fs::path& p, std::string_view what) {
    if (::access(p.c_str(), R_OK) != 0) {
      throw ConfigError(
          fmt::format("{}: cannot read the {}: {}", p.string(), what, common::errno_text(errno)));
    }
  };
  readable(s.tls.certificate, "client certificate");
  readable(s.tls.private_key, "client private key");
  readable(s.tls.ca, "CA bundle");
}

void check_private_key_mode(const fs::path& key) {
  struct stat st {};
  if (::stat(key.c_str(), &st) != 0) return;  // make_client_context reports a missing file
  if (auto s = opsagent::check_private_key_mode(key, st); !s) throw ConfigError(s.error().message);
}

milliseconds parse_duration_flag(std::string_view flag, std::string_view text, bool allow_zero) {
  if (allow_zero && text == "0") return milliseconds(0);
  YamlNode node;
  node.kind = YamlNode::Kind::scalar;
  node.scalar = std::string(text);
  return config::as_duration(node, NodeContext{std::string(flag), ""},
                             milliseconds(allow_zero ? 0 : 1), kMaxTimeout);
}

}  // namespace opsagent::client

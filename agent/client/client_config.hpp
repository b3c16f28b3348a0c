#pragma once
// Where opsctl's certificate, key, CA and defaults come from: flags, then environment variables,
// then the client config file, then built-in defaults. Pure apart from reading the file.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "agent/client/target.hpp"
#include "agent/tls/tls_context.hpp"

namespace opsagent::client {

/// Hosts in flight at once unless a flag or the config file says otherwise (docs/opsctl.md,
/// "Scale": measured with scripts/bench-fleet.sh).
inline constexpr std::size_t kDefaultConcurrency = 256;

/// Values given on the command line (unset: not given).
struct ClientFlags {
  std::optional<std::filesystem::path> config;                 ///< --config
  std::optional<std::filesystem::path> certificate;            ///< --cert
  std::optional<std::filesystem::path> private_key;            ///< --key
  std::optional<std::filesystem::path> ca;                     ///< --ca
  std::optional<std::filesystem::path> inventory;              ///< --inventory / -i
  std::optional<std::uint16_t> port;                           ///< --port
  std::optional<std::size_t> concurrency;                      ///< --concurrency / -j
  std::optional<std::chrono::milliseconds> connect_timeout;    ///< --connect-timeout
  std::optional<std::chrono::milliseconds> handshake_timeout;  ///< --handshake-timeout
  std::optional<std::chrono::milliseconds> command_timeout;    ///< --timeout
  std::optional<bool> resume;                                  ///< --no-resume: false
};

/// Everything opsctl needs before it connects.
struct ClientSettings {
  tls::ClientTlsFiles tls;            ///< empty paths: not configured (see require_tls_files)
  std::optional<std::uint16_t> port;  ///< default agent port for hosts that name none
  std::filesystem::path inventory;    ///< empty: none
  Timeouts timeouts;
  std::size_t concurrency = kDefaultConcurrency;
  bool resume = true;                 ///< resume TLS sessions (SessionCache, in memory and on disk)
  std::filesystem::path config_file;  ///< the file that was read (empty: none)
};

/// Environment lookup seam (tests pass a map; opsctl passes getenv).
using EnvLookup = std::function<std::optional<std::string>(std::string_view name)>;
/// getenv(), treating empty values as unset.
std::optional<std::string> process_env(std::string_view name);

/// The config file to read: --config, else $OPSCTL_CONFIG (both must exist), else
/// $XDG_CONFIG_HOME/opsctl/config.yaml or ~/.config/opsctl/config.yaml when it exists.
/// Empty when there is none. `required` is set when a missing file is an error.
std::filesystem::path config_file_path(const ClientFlags& flags, const EnvLookup& env,
                                       bool& required);

/// Resolves the settings. Environment: OPSCTL_CERT, OPSCTL_KEY, OPSCTL_CA, OPSCTL_INVENTORY,
/// OPSCTL_PORT. Config file keys: certificate, private_key, ca, inventory, port, concurrency,
/// resume, timeouts {connect, handshake, command}; relative paths are relative to the file, `~/` is
/// $HOME. Throws config::ConfigError (file:line:col). Does not open the TLS files.
ClientSettings resolve_client_settings(const ClientFlags& flags, const EnvLookup& env);

/// Throws config::ConfigError ("no client certificate: use --cert, $OPSCTL_CERT or
/// `certificate:` in FILE") when the certificate, key or CA is not configured.
void require_tls_files(const ClientSettings& settings);

/// Throws config::ConfigError ("FILE: cannot read the client certificate: No such file or
/// directory") when the certificate, key or CA file cannot be read.
void check_tls_files_readable(const ClientSettings& settings);

/// Refuses a private key that group or others may read (like ssh and opsagent): ConfigError.
void check_private_key_mode(const std::filesystem::path& key);

/// Parses a duration flag value ("250ms", "10s", "5m", "1h"; "0" only when `allow_zero`).
/// Throws config::ConfigError naming `flag`.
std::chrono::milliseconds parse_duration_flag(std::string_view flag, std::string_view text,
                                              bool allow_zero);

}  // namespace opsagent::client

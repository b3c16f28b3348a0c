#pragma once
// agent.yaml -> validated, immutable AgentConfig. See docs/configuration.md for every key.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace opsagent::config {

using std::chrono::milliseconds;

/// One address to listen on. `host` is a numeric IPv4 or IPv6 literal; port 0 = pick a free one.
struct ListenAddress {
  std::string host;
  std::uint16_t port = 9999;
  friend bool operator==(const ListenAddress&, const ListenAddress&) = default;
};

struct TlsSettings {
  std::filesystem::path certificate;  ///< server certificate chain (PEM)
  std::filesystem::path private_key;  ///< server key (PEM); must not be group/world readable
  std::filesystem::path client_ca;    ///< CA bundle that client certificates must chain to
  std::filesystem::path crl;          ///< optional CRL file (PEM); empty = no CRL checking
  bool allow_tls12 = false;           ///< "min_version: 1.2"; default is TLS 1.3 only
  int verify_depth = 4;               ///< max intermediate CAs in a client chain
  /// Key exchange groups offered, in preference order, with OpenSSL's names: a non-empty
  /// subset of tls::kEcdheGroups. Finite-field groups are never allowed (DHEat).
  std::vector<std::string> groups{"X25519", "P-256"};
  bool session_tickets = true;              ///< TLS 1.3 resumption of sessions kept in memory
  milliseconds ticket_lifetime{7'200'000};  ///< how long a client may resume with a ticket
  int session_cache_size = 4096;            ///< the most resumable sessions kept
  /// Read and checked, no longer used: tickets are session ids, there are no keys to rotate
  /// (kept so that existing files still load; docs/configuration.md).
  milliseconds ticket_key_rotation{3'600'000};
};

struct Timeouts {
  milliseconds handshake{10'000};  ///< TCP accept -> verified identity
  milliseconds idle{300'000};      ///< no complete line while no command runs
  milliseconds kill_grace{2'000};  ///< SIGTERM -> SIGKILL
  milliseconds drain{1'000};       ///< after a child exits, how long to wait for its pipes to close
  milliseconds write_stall{
      30'000};  ///< a reply write that makes no progress this long drops the client
};

struct Limits {
  int max_clients = 64;               ///< authenticated sessions (the seed's clients_max)
  int max_clients_per_identity = 8;   ///< per principal
  int max_handshakes = 64;            ///< connections not yet authenticated
  std::size_t max_line_bytes = 8192;  ///< one command line, without its LF
  int max_pipelined = 16;             ///< complete lines queued behind the running command
  int io_threads = 2;                 ///< threads running the network event loop
  int blocking_threads = 4;  ///< threads for hashing and other blocking file work (hash_threads)
  int max_children = 16;     ///< concurrent subprocesses, agent-wide
  /// Concurrent hash/comphash/tail/lastlog work per principal (YAML alias: the old name
  /// max_digests_per_identity). Always less than blocking_threads, so one principal never holds
  /// every blocking-work thread.
  int max_file_ops_per_identity = 2;
  std::uint64_t max_hash_bytes = 16ULL << 30;  ///< files larger than this are not hashed
};

struct LastlogSettings {
  std::filesystem::path path = "/var/log/syslog";  ///< the system log `lastlog` tails
  int lines = 10;
  bool journal_fallback = true;  ///< read the journal (journalctl) when `path` does not exist
};

struct ExecSettings {
  std::vector<std::string> environment{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"};
  std::filesystem::path working_directory = "/";
  mode_t umask = 077;
  /// opsagent-guard, the parent of every command (agent/guard/guard_main.cpp). Empty: the
  /// agent's own directory, resolved at start-up.
  std::filesystem::path guard;
  /// RLIMIT_NPROC of commands (0: not set). Counts every process of the commands' user, and is
  /// not enforced for root: pair it with `user`.
  std::int64_t max_processes = 0;
  std::string user;       ///< run commands as this user (agent must be root); empty: as the agent
  std::int64_t uid = -1;  ///< resolved from `user`, or -1
  std::int64_t gid = -1;
};

/// Who the agent becomes once it has bound its listeners and opened its files (server/privileges).
struct RunAs {
  std::string user;         ///< drop to this user (agent started as root); empty: no drop
  std::string group;        ///< primary group; empty: the user's own
  std::int64_t uid = -1;    ///< resolved from `user` at load, or -1
  std::int64_t gid = -1;    ///< resolved from `group` (or the user's group), or -1
  bool allow_root = false;  ///< commands may run as root (no drop, no exec.user)
};

/// The Prometheus endpoint (docs/configuration.md#metrics). Off unless `listen` is set.
struct MetricsSettings {
  std::optional<ListenAddress> listen;  ///< where GET /metrics is served; nullopt: off
  bool tls = false;  ///< mutual TLS with the agent's certificate and client CA; required when
                     ///< `listen` is not a loopback address
};

/// audit.journald: copies of audit records to the journal (docs/audit.md#shipping).
struct AuditJournald {
  bool enabled = false;
  std::filesystem::path socket = "/run/systemd/journal/socket";
  friend bool operator==(const AuditJournald&, const AuditJournald&) = default;
};

/// audit.syslog: copies of audit records as RFC 5424 messages (docs/audit.md#shipping).
struct AuditSyslog {
  bool enabled = false;
  std::filesystem::path socket = "/dev/log";
  std::string facility = "authpriv";
  int facility_code = 10;                ///< resolved from `facility`
  std::string sd_id = "opsagent@32473";  ///< SD-ID of the structured data element
  friend bool operator==(const AuditSyslog&, const AuditSyslog&) = default;
};

struct AgentConfig {
  std::filesystem::path source;       ///< the file this came from
  std::vector<ListenAddress> listen;  ///< at least one
  TlsSettings tls;
  Timeouts timeouts;
  Limits limits;
  LastlogSettings lastlog;
  ExecSettings exec;
  RunAs run_as;
  MetricsSettings metrics;
  std::string log_level = "info";    ///< operational log: trace|debug|info|warn|error
  std::filesystem::path audit_path;  ///< JSON-lines audit log (required)
  std::string audit_host;            ///< audit.host: `host` of every record; empty: host name
  bool audit_builtins = true;        ///< audit.builtins: all (true) or denied
  std::filesystem::path audit_chain_key_file;  ///< audit.chain_key_file; empty: unkeyed chain
  std::string audit_chain_key;          ///< its bytes, read at load (HMAC-SHA-256 key of the chain)
  std::string audit_sync = "interval";  ///< audit.sync: none, interval or every_record
  int audit_sync_interval_ms = 1000;    ///< audit.sync_interval_ms (audit.sync: interval)
  AuditJournald audit_journald;         ///< audit.journald
  AuditSyslog audit_syslog;             ///< audit.syslog
  std::filesystem::path policy_path;    ///< policy.yaml
  /// Keys that load but do nothing any more, "file:line:col: path: why": logged as warnings at
  /// start-up and at each reload.
  std::vector<std::string> warnings;
};

/// Loads and validates agent.yaml. Relative paths are resolved against the file's directory.
/// Throws ConfigError naming file, line and key for every problem (unknown keys included).
AgentConfig load_agent_config(const std::filesystem::path& file);

/// Sets exec.guard, when the file left it empty, to opsagent-guard beside the running binary.
/// Throws ConfigError ("FILE: exec.guard: ...") when that is not an executable program.
void resolve_guard(AgentConfig& config);

/// The first key whose change needs a restart (listen, limits.io_threads, limits.blocking_threads,
/// exec.umask, audit.path, audit.journald, audit.syslog, run_as.user, run_as.group, metrics), or
/// empty when `next` may replace `current` in a running agent.
std::string restart_only_change(const AgentConfig& current, const AgentConfig& next);

/// Parses "127.0.0.1:9999", "[::1]:9999" (numeric hosts only). Throws std::invalid_argument.
ListenAddress parse_listen_address(std::string_view text);

}  // namespace opsagent::config

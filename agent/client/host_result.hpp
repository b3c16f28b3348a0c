#pragma once
// The outcome of one command on one host, and how outcomes become opsctl exit statuses.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/protocol/reply_parser.hpp"

namespace opsagent::client {

/// How one host ended; the spelling of to_string() is the "status" of the JSON result.
enum class HostStatus {
  ok,           ///< the agent answered OK
  failed,       ///< the command ran and exited non-zero or was killed by a signal (ERR failed)
  denied,       ///< the policy refused the command or the certificate (ERR denied)
  unreachable,  ///< no TCP connection: resolution failed, refused, unreachable, connect timeout
  timeout,    ///< handshake, greeting or command took too long (here or on the agent: ERR timeout)
  tls_error,  ///< TLS failed: certificate not trusted, wrong host name, client certificate refused
  error,  ///< any other agent error (unknown, usage, busy, limit, notfound, internal) or protocol
          ///< violation
  cancelled,    ///< opsctl was interrupted while the host ran; its connection was closed
  not_started,  ///< opsctl stopped (interrupted, or --max-fail) before it reached the host
};

/// "ok", "failed", "denied", "unreachable", "timeout", "tls_error", "error", "cancelled",
/// "not_started".
std::string_view to_string(HostStatus status) noexcept;

/// What happened on one host.
struct HostResult {
  HostStatus status = HostStatus::error;
  std::optional<int> exit_code;  ///< remote exit status, when the command exited
  std::optional<int> signal;     ///< remote signal, when the command was killed
  std::string
      code;  ///< agent ERR code ("denied"), or opsctl's own: connect, tls, timeout, protocol
  std::string message;  ///< one line for humans
  /// For OK replies: the final line after "OK " (message and fields as sent), e.g.
  /// "sha256 0f1e... bytes=5 path=/etc/hostname". Commands other than `run` answer here.
  std::string reply_text;
  std::chrono::milliseconds duration{0};  ///< connect to final line
  int attempts = 1;  ///< connection attempts (more than 1 with --retry after failures)
};

/// The result a final reply line stands for (ok/error lines only).
HostResult result_from_final_line(const protocol::ReplyLine& line);

/// True when the result carries an answer in its final line that output should show as a
/// stdout line (an OK reply that is not a command's exit, e.g. `ping`, `hash`, `whoami`).
bool shows_reply_text(const HostResult& result);

/// opsctl exit statuses (docs/opsctl.md). Remote exit statuses 0-255 pass through in single-host
/// mode.
namespace exit_status {
inline constexpr int kOk = 0;
inline constexpr int kFailed = 1;   ///< fan-out: some host's command failed
inline constexpr int kUsage = 64;   ///< bad opsctl arguments or target pattern
inline constexpr int kDenied = 65;  ///< the agent's policy denied the command or certificate
inline constexpr int kRejected =
    66;  ///< the agent does not know the command or its arguments (unknown, usage)
inline constexpr int kTls = 67;          ///< TLS failure, including host-name mismatch
inline constexpr int kUnreachable = 68;  ///< cannot connect
inline constexpr int kTimeout = 69;      ///< handshake, command or agent-side timeout
inline constexpr int kAgentError =
    70;  ///< other agent errors (busy, limit, notfound, internal), protocol errors
inline constexpr int kOutput = 74;  ///< opsctl could not write its output (disk full)
inline constexpr int kConfig =
    78;  ///< opsctl configuration, inventory or certificate files unusable
/// Interrupted by signal N (SIGINT: 130, SIGTERM: 143), as a shell reports it.
constexpr int interrupted(int signal) noexcept { return 128 + signal; }
}  // namespace exit_status

/// Exit status for one host: the remote exit status when the command ran (128+N for signal N),
/// otherwise the class code above.
int single_host_exit_status(const HostResult& result);

/// Exit status for a fan-out: 0 when every host is ok, otherwise the class code of the worst
/// host in this order: TLS (67) > denied (65) > rejected (66) > agent error (70) > timeout (69)
/// > unreachable (68) > failed (1). Cancelled and not started hosts have no class of their own.
int fan_out_exit_status(const std::vector<HostResult>& results);

}  // namespace opsagent::client

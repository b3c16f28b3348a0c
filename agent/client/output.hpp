#pragma once
// How results reach the operator: raw (one host), host-prefixed and aligned, grouped per host,
// or JSON lines; the summary; and a progress line on a terminal. Writes to FILE*s it is given.
// No byte from the network or an inventory reaches them unescaped (SECURITY-MATRIX I11) unless
// the operator asked for raw bytes.

#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/client/host_result.hpp"
#include "agent/client/target.hpp"
#include "agent/protocol/reply_formatter.hpp"

namespace opsagent::client {

/// Output modes (-o; table also --table).
enum class OutputMode { raw, prefix, grouped, json, table };

/// How human output is arranged and painted (docs/opsctl.md "Output").
struct ReportOptions {
  /// Raw mode writes the command's data lines exactly as received (--raw-bytes).
  bool raw_bytes = false;
  /// Hosts in name order (digit runs compared as numbers), written once every host is done
  /// (--sort). Not for JSON.
  bool sort = false;
  /// Grouped mode: hosts with identical output and result under one header (--collapse),
  /// written once every host is done.
  bool collapse = false;
  /// No per-host output at all, only the summary (--quiet).
  bool quiet = false;
  bool colour_out = false;  ///< SGR colours on the stdout stream
  bool colour_err = false;  ///< SGR colours on the stderr stream
};

/// Receives what the fan-out produces, host by host (index into the target list).
/// Called on the fan-out's one thread only.
class Reporter {
 public:
  virtual ~Reporter() = default;
  /// One data line from host `host`, as it arrives.
  virtual void line(std::size_t host, protocol::Channel channel, std::string_view text) = 0;
  /// The host is done.
  virtual void result(std::size_t host, const HostResult& result) = 0;
  /// The fan-out is over (also after an interruption): views that wait for every host
  /// (--sort, --collapse, the table) write now. Called once, after the progress line is gone.
  virtual void finish() {}
  /// Writes out what the reporter buffered (lines are written in chunks, not one by one,
  /// unless a progress line is shown). Called when the fan-out waits for the network.
  virtual void flush() {}
};

/// "[12/64 hosts done, 2 failed, 1 unreachable]" redrawn in place on stderr; does nothing when
/// disabled (stderr is not a terminal). Reporters clear it before they write and redraw it
/// afterwards.
class ProgressLine {
 public:
  ProgressLine(std::FILE* err, bool enabled, std::size_t total)
      : err_(err), enabled_(enabled), total_(total) {}
  /// Erases the line if it is shown.
  void clear();
  /// Counts a finished host and redraws. Unreachable hosts are counted apart from failures.
  void host_done(HostStatus status);
  /// Redraws (rate-limited unless `force`).
  void draw(bool force);
  [[nodiscard]] bool enabled() const noexcept { return enabled_; }

 private:
  std::FILE* err_;
  bool enabled_;
  std::size_t total_;
  std::size_t done_ = 0;
  std::size_t failures_ = 0;
  std::size_t unreachable_ = 0;
  bool shown_ = false;
  std::chrono::steady_clock::time_point last_draw_{};
};

/// Streams and files the reporter writes to.
struct OutputStreams {
  std::FILE* out = stdout;
  std::FILE* err = stderr;
};

/// A reporter for `mode` over `targets` (names are used for prefixes and JSON "host").
/// Everything that came from the network or an inventory is escaped with
/// protocol::sanitize_line (human modes) or written as ASCII-only JSON (json mode), except
/// that with `raw_bytes` the raw mode writes the command's data lines exactly as received.
std::unique_ptr<Reporter> make_reporter(OutputMode mode, const std::vector<Target>& targets,
                                        OutputStreams streams, ProgressLine& progress,
                                        const ReportOptions& options);
/// Same with default options but `raw_bytes`.
std::unique_ptr<Reporter> make_reporter(OutputMode mode, const std::vector<Target>& targets,
                                        OutputStreams streams, ProgressLine& progress,
                                        bool raw_bytes = false);

/// The fan-out summary (host names escaped), e.g. "opsctl: 21 hosts in 1.3s: 15 ok, 1 failed, 3
/// unreachable" and one line per kind of failure naming its hosts. After an interruption by
/// `signal` (non-zero) it starts with "opsctl: interrupted by SIGINT: 5 done, 3 cancelled, 13
/// not started".
/// How a fan-out went, beyond the hosts' results (for the summaries).
struct RunFacts {
  int signal = 0;                       ///< the signal that interrupted it, 0 if none
  std::size_t serial = 0;               ///< --serial batch size (0: none)
  std::size_t batches = 0;              ///< batches started
  std::optional<std::size_t> max_fail;  ///< --max-fail, as a host count
  bool stopped_by_max_fail = false;     ///< --max-fail left hosts not started
};

std::string format_summary(const std::vector<Target>& targets,
                           const std::vector<HostResult>& results,
                           std::chrono::milliseconds elapsed, const RunFacts& facts = {});

/// The JSON `summary` record of a fan-out (one line, no LF, ASCII-only): `counts` per status,
/// `not_ok` (status -> host names, every status but ok), elapsed time, `interrupted` (the
/// signal's name or null), and with --serial / --max-fail `serial`, `batches`, `max_fail` and
/// `max_fail_stopped`.
std::string json_summary(const std::vector<Target>& targets, const std::vector<HostResult>& results,
                         std::chrono::milliseconds elapsed, const RunFacts& facts = {});

/// The errno of the first write to standard output that failed (0: none failed). opsctl's
/// exit status says so: output that was lost must not pass for success.
int stdout_write_error() noexcept;

/// "SIGINT", "SIGTERM" or "signal N".
std::string signal_name(int signal);

/// The one-line stderr message for a host that did not succeed (name and message escaped), e.g.
/// "opsctl: web1: denied: no role of alice allows 'run'". Empty for ok results and for
/// commands that just exited non-zero (their exit status says it).
std::string failure_message(const Target& target, const HostResult& result);

/// JSON result object line (without LF) for host `name`; ASCII-only (\uNNNN escapes).
std::string json_result(std::string_view name, const HostResult& result);

}  // namespace opsagent::client

#pragma once
// Runs a spawned child to completion on the caller's strand: streams its stdout and stderr as
// lines arrive, with back-pressure (a pipe is not read again until the previous lines were
// delivered), enforces the time and output limits, and always ends with the child reaped and
// its process group killed. Every way out is a signal to the group; no Asio cancellation games.

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "agent/common/line_batch.hpp"
#include "agent/exec/child_process.hpp"

namespace opsagent::exec {

enum class OutputStream { out, err };

/// Receives a child's output. Called only from the run's strand, one call at a time.
class OutputSink {
 public:
  virtual ~OutputSink() = default;
  /// Delivers complete lines (without LF) of one stream, in order. Completing the await is the
  /// back-pressure; return false when the receiver is gone (the child is then killed).
  virtual boost::asio::awaitable<bool> deliver(OutputStream stream, LineBatch lines) = 0;
};

struct RunLimits {
  std::chrono::milliseconds timeout{30'000};    ///< SIGTERM after this
  std::chrono::milliseconds kill_grace{2'000};  ///< then SIGKILL after this
  std::chrono::milliseconds drain{1'000};       ///< wait for pipes to close after the child exits
  std::uint64_t max_output = 1U << 20;          ///< stdout+stderr bytes before the group is killed
  std::size_t max_line = std::size_t{16} * 1024;  ///< longer lines are split
};

enum class RunEnd {
  exited,         ///< the child exited on its own (any status)
  timed_out,      ///< killed after RunLimits::timeout
  output_limit,   ///< killed after RunLimits::max_output
  receiver_gone,  ///< the sink refused more output
  cancelled,      ///< RunControl::cancel() was called (e.g. the client disconnected)
};

struct RunOutcome {
  RunEnd end = RunEnd::exited;
  ExitStatus status;
  std::uint64_t output_bytes = 0;  ///< bytes read from the child (delivered or not)
  std::chrono::milliseconds duration{0};
};

/// Lets the owner stop a run from another coroutine on the same strand.
class RunControl {
 public:
  /// SIGKILLs the child's process group; the run then completes with RunEnd::cancelled.
  void cancel() noexcept;
  [[nodiscard]] bool cancelled() const noexcept { return cancelled_; }

 private:
  friend boost::asio::awaitable<RunOutcome> run_process(ChildProcess /*child*/,
                                                        RunLimits /*limits*/, OutputSink& /*sink*/,
                                                        RunControl& /*control*/);
  ChildProcess* child_ = nullptr;
  bool cancelled_ = false;
};

/// Runs `child` to completion on the current coroutine's executor (a strand). Never throws for
/// anything the child does.
boost::asio::awaitable<RunOutcome> run_process(ChildProcess child, RunLimits limits,
                                               OutputSink& sink, RunControl& control);

}  // namespace opsagent::exec

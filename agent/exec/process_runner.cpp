#include "agent/exec/process_runner.hpp"

#include <algorithm>
#include <csignal>
#include <cstring>
#include <memory>
#include <optional>
#include <tuple>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/readable_pipe.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace opsagent::exec {
namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;
using boost::system::error_code;

namespace {

constexpr auto kUse = asio::as_tuple(asio::use_awaitable);
// A pipe is read into 16 KiB; once a read fills that (a command that writes a lot), into 64 KiB,
// the whole of a default pipe: a quarter of the reads, wake-ups and hand-offs per MiB.
constexpr std::size_t kFirstReadChunk = std::size_t{16} * 1024;
constexpr std::size_t kBulkReadChunk = std::size_t{64} * 1024;
// Chunks waiting between the pipes and the sink, besides the one each side holds: one keeps the
// reading and the sending overlapped, and a command whose client does not read holds little
// (MatrixE.E3: 64 KiB chunks with 8 waiting took 3x the memory of 16 KiB ones).
constexpr std::size_t kChannelCapacity = 1;

struct Event {
  enum class Kind { lines, eof } kind = Kind::lines;
  OutputStream stream = OutputStream::out;
  LineBatch lines;
  std::size_t bytes = 0;
};

using EventChannel = asio::experimental::channel<void(error_code, Event)>;

// State shared by the coroutines of one run; they all live on the same strand.
struct RunState {
  ChildProcess& child;
  RunLimits limits;
  EventChannel events;
  asio::steady_timer watchdog;
  asio::steady_timer drain;
  std::optional<RunEnd> kill_reason;
  ExitStatus status;
  bool exited = false;
  bool finished = false;

  RunState(ChildProcess& c, RunLimits l, const asio::any_io_executor& ex)
      : child(c), limits(l), events(ex, kChannelCapacity), watchdog(ex), drain(ex) {}

  void kill(RunEnd reason, int sig) {
    if (!kill_reason) kill_reason = reason;
    child.signal_group(sig);
  }
};

// Splits what the pipe gives into lines; the unfinished tail waits for more (bounded). Whole
// lines are copied once, into the batch's one buffer.
void split_lines(std::string& partial, std::string_view data, std::size_t max_line,
                 LineBatch& lines) {
  lines.reserve(data.size());
  while (!data.empty()) {
    const std::size_t room = max_line - partial.size();  // > 0: a full partial is cut at once
    const std::size_t scan = std::min(data.size(), room);
    const void* lf = std::memchr(data.data(), '\n', scan);
    if (lf != nullptr) {
      const auto n = static_cast<std::size_t>(static_cast<const char*>(lf) - data.data());
      if (partial.empty()) {
        lines.push(data.substr(0, n));
      } else {
        partial.append(data.substr(0, n));
        lines.push(partial);
        partial.clear();
      }
      data.remove_prefix(n + 1);
    } else if (scan == room) {  // max_line bytes without an LF: cut here
      partial.append(data.substr(0, scan));
      lines.push(partial);
      partial.clear();
      data.remove_prefix(scan);
    } else {
      partial.append(data);
      data = {};
    }
  }
}

asio::awaitable<void> pump(RunState& st, asio::readable_pipe& pipe, OutputStream stream) {
  std::string partial;
  std::size_t size = kFirstReadChunk;
  auto buf = std::make_unique_for_overwrite<char[]>(size);
  while (true) {
    auto read = co_await pipe.async_read_some(asio::buffer(buf.get(), size), kUse);
    auto ec = std::get<0>(read);
    auto n = std::get<1>(read);
    Event ev{Event::Kind::lines, stream, {}, n};
    if (n > 0) split_lines(partial, std::string_view(buf.get(), n), st.limits.max_line, ev.lines);
    if (n == size && size < kBulkReadChunk) {  // the lines were copied out of buf
      size = kBulkReadChunk;
      buf = std::make_unique_for_overwrite<char[]>(size);
    }
    if (ec) {
      if (!partial.empty()) ev.lines.push(partial);
      ev.kind = Event::Kind::eof;
    }
    if (!ev.lines.empty() || ev.kind == Event::Kind::eof || n > 0) {
      const bool eof = ev.kind == Event::Kind::eof;
      auto sent = co_await st.events.async_send(error_code{}, std::move(ev), kUse);
      auto send_ec = std::get<0>(sent);
      if (send_ec || eof) co_return;
    }
  }
}

// Waits for the child to exit (pidfd readable), reaps it, then gives its pipes a bounded time to
// close: a grandchild that keeps stdout open must not hold the reply forever.
asio::awaitable<void> watch_exit(RunState& st, asio::posix::stream_descriptor& pidfd,
                                 asio::readable_pipe& out, asio::readable_pipe& err) {
  asio::steady_timer poll(pidfd.get_executor());
  while (true) {
    error_code ec;
    if (pidfd.is_open()) {
      std::tie(ec) = co_await pidfd.async_wait(asio::posix::stream_descriptor::wait_read, kUse);
    } else {
      ec = asio::error::bad_descriptor;
    }
    auto status = st.child.try_reap();
    if (status.ok()) {
      st.status = status.value();
      break;
    }
    if (ec && ec != asio::error::interrupted) {
      // The pidfd cannot be waited on (should not happen): fall back to polling every 10 ms.
      pidfd.close(ec);
      poll.expires_after(std::chrono::milliseconds(10));
      co_await poll.async_wait(kUse);
    }
  }
  st.exited = true;
  st.watchdog.cancel();
  if (st.finished) co_return;
  st.drain.expires_after(st.limits.drain);
  auto drained = co_await st.drain.async_wait(kUse);
  auto ec = std::get<0>(drained);
  if (!ec && !st.finished) {
    st.child.signal_group(SIGKILL);  // descendants still holding the pipes
    error_code ignored;
    out.close(ignored);
    err.close(ignored);
  }
}

asio::awaitable<void> watch_time(RunState& st) {
  st.watchdog.expires_after(st.limits.timeout);
  const auto first = co_await st.watchdog.async_wait(kUse);
  if (std::get<0>(first) || st.exited) co_return;
  st.kill(RunEnd::timed_out, SIGTERM);
  st.watchdog.expires_after(st.limits.kill_grace);
  const auto second = co_await st.watchdog.async_wait(kUse);
  if (std::get<0>(second) || st.exited) co_return;
  st.child.signal_group(SIGKILL);
}

asio::awaitable<void> consume(RunState& st, OutputSink& sink, RunOutcome& outcome) {
  int open_streams = 2;
  bool deliver = true;
  while (open_streams > 0) {
    auto received = co_await st.events.async_receive(kUse);
    auto ec = std::get<0>(received);
    auto ev = std::get<1>(std::move(received));
    if (ec) break;
    outcome.output_bytes += ev.bytes;
    if (deliver && outcome.output_bytes > st.limits.max_output) {
      st.kill(RunEnd::output_limit, SIGKILL);
      deliver = false;
    }
    if (deliver && !ev.lines.empty()) {
      LineBatch lines = std::move(ev.lines);
      const bool delivered = co_await sink.deliver(ev.stream, std::move(lines));
      if (!delivered) {
        st.kill(RunEnd::receiver_gone, SIGKILL);
        deliver = false;
      }
    }
    if (ev.kind == Event::Kind::eof) --open_streams;
  }
  st.finished = true;  // pipes are closed: the exit watcher need not drain
  st.drain.cancel();
}

}  // namespace

void RunControl::cancel() noexcept {
  cancelled_ = true;
  if (child_ != nullptr) child_->signal_group(SIGKILL);
}

asio::awaitable<RunOutcome> run_process(ChildProcess child, RunLimits limits, OutputSink& sink,
                                        RunControl& control) {
  const auto started = std::chrono::steady_clock::now();
  auto ex = co_await asio::this_coro::executor;
  RunOutcome outcome;

  asio::readable_pipe out(ex, child.take_stdout().release());
  asio::readable_pipe err(ex, child.take_stderr().release());
  asio::posix::stream_descriptor pidfd(ex);
  if (const int fd = ::dup(child.pidfd()); fd >= 0) pidfd.assign(fd);
  RunState st(child, limits, ex);

  control.child_ = &child;
  if (control.cancelled()) child.signal_group(SIGKILL);

  // Both pipes at EOF ends consumption; the child's exit ends the watchers. Each part finishes
  // on its own because every stop is a signal to the group (then EOF) or a closed pipe.
  co_await ((consume(st, sink, outcome) && pump(st, out, OutputStream::out) &&
             pump(st, err, OutputStream::err)) &&
            (watch_exit(st, pidfd, out, err) && watch_time(st)));
  st.finished = true;

  control.child_ = nullptr;
  outcome.status = st.status;
  outcome.duration = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started);
  if (control.cancelled()) {
    outcome.end = RunEnd::cancelled;
  } else if (st.kill_reason) {
    outcome.end = *st.kill_reason;
  }
  co_return outcome;
}

}  // namespace opsagent::exec

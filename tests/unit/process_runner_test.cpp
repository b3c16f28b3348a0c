// The process runner without the agent: a real child, a recording sink, every way a run ends.

#include "agent/exec/process_runner.hpp"

#include <chrono>
#include <csignal>
#include <future>
#include <stdexcept>
#include <string>
#include <sys/stat.h>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <gtest/gtest.h>

namespace opsagent::exec {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

mode_t current_umask() {
  const mode_t mask = ::umask(077);
  ::umask(mask);
  return mask;
}

class RecordingSink : public OutputSink {
 public:
  asio::awaitable<bool> deliver(OutputStream stream, LineBatch lines) override {
    auto& to = stream == OutputStream::out ? out : err;
    for (std::size_t i = 0; i < lines.size(); ++i) to.emplace_back(lines[i]);
    ++deliveries;
    co_return accept;
  }
  std::vector<std::string> out;
  std::vector<std::string> err;
  int deliveries = 0;
  bool accept = true;
};

asio::awaitable<RunOutcome> run(std::vector<std::string> argv, RunLimits limits,
                                RecordingSink& sink, RunControl& control) {
  SpawnSpec spec;
  spec.argv = std::move(argv);
  spec.umask = current_umask();
  auto child = spawn(spec);
  if (!child) throw std::runtime_error("spawn failed: " + child.error().message);
  co_return co_await run_process(std::move(child.value()), limits, sink, control);
}

// Cancels `control` once the sink has seen output, as a session does when its client leaves.
asio::awaitable<void> cancel_after_output(RecordingSink& sink, RunControl& control) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  while (sink.deliveries == 0) {
    timer.expires_after(5ms);
    co_await timer.async_wait(asio::use_awaitable);
  }
  control.cancel();
}

class ProcessRunner : public ::testing::Test {
 protected:
  RunOutcome run_to_end(std::vector<std::string> argv, RunLimits limits = {}) {
    auto done =
        asio::co_spawn(strand_, run(std::move(argv), limits, sink_, control_), asio::use_future);
    io_.run_for(60s);
    EXPECT_EQ(done.wait_for(0s), std::future_status::ready) << "the run did not end";
    return done.get();
  }

  asio::io_context io_;
  asio::strand<asio::io_context::executor_type> strand_ = asio::make_strand(io_);
  RecordingSink sink_;
  RunControl control_;
};

TEST_F(ProcessRunner, StreamsEachStreamsLinesInOrder) {
  const RunOutcome r = run_to_end({"/bin/sh", "-c", "echo a; echo b >&2; echo c"});
  EXPECT_EQ(r.end, RunEnd::exited);
  EXPECT_EQ(r.status.code, 0);
  EXPECT_EQ(sink_.out, (std::vector<std::string>{"a", "c"}));
  EXPECT_EQ(sink_.err, (std::vector<std::string>{"b"}));
  EXPECT_EQ(r.output_bytes, 6U);
}

TEST_F(ProcessRunner, ReportsTheExitStatus) {
  const RunOutcome r = run_to_end({"/bin/sh", "-c", "exit 3"});
  EXPECT_EQ(r.end, RunEnd::exited);
  EXPECT_EQ(r.status.code, 3);
}

TEST_F(ProcessRunner, DeliversAFinalLineWithoutNewline) {
  run_to_end({"/usr/bin/printf", "one\\ntwo"});
  EXPECT_EQ(sink_.out, (std::vector<std::string>{"one", "two"}));
}

TEST_F(ProcessRunner, SplitsLinesLongerThanTheLimit) {
  RunLimits limits;
  limits.max_line = 1000;
  run_to_end({"/bin/sh", "-c", "head -c 4500 /dev/zero | tr '\\0' x"}, limits);
  std::size_t total = 0;
  for (const auto& line : sink_.out) {
    EXPECT_LE(line.size(), 1000U);
    total += line.size();
  }
  EXPECT_EQ(total, 4500U);
}

TEST_F(ProcessRunner, KillsTheChildAfterItsTimeout) {
  RunLimits limits;
  limits.timeout = 200ms;
  const RunOutcome r = run_to_end({"/bin/sleep", "30"}, limits);
  EXPECT_EQ(r.end, RunEnd::timed_out);
  EXPECT_EQ(r.status.signal, SIGTERM);
}

TEST_F(ProcessRunner, KillsTheChildAtTheOutputLimit) {
  RunLimits limits;
  limits.max_output = 64 * 1024;
  const RunOutcome r = run_to_end({"/usr/bin/yes"}, limits);
  EXPECT_EQ(r.end, RunEnd::output_limit);
  EXPECT_NE(r.status.signal, 0);
}

TEST_F(ProcessRunner, KillsTheChildWhenTheReceiverIsGone) {
  sink_.accept = false;
  const RunOutcome r = run_to_end({"/usr/bin/yes"});
  EXPECT_EQ(r.end, RunEnd::receiver_gone);
  EXPECT_EQ(sink_.deliveries, 1);
}

TEST_F(ProcessRunner, EndsACancelledRunWithTheChildKilled) {
  asio::co_spawn(strand_, cancel_after_output(sink_, control_), asio::detached);
  const RunOutcome r = run_to_end({"/bin/sh", "-c", "echo started; exec sleep 30"});
  EXPECT_EQ(r.end, RunEnd::cancelled);
  EXPECT_EQ(r.status.signal, SIGKILL);
  EXPECT_TRUE(control_.cancelled());
}

}  // namespace
}  // namespace opsagent::exec

// opsctl's reporters (SECURITY-MATRIX I11): whatever the agent sends and whatever the names
// hold, human output is escaped by protocol::sanitize_line and JSON output is ASCII; only the
// raw mode with raw_bytes passes data lines through.

#include "agent/client/output.hpp"

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace opsagent::client {
namespace {

const std::string kHostile =
    "a\x1b]52;c;eA==\a b\rc \xC2\x9B"
    "31m \xE2\x80\xAE"
    "d \x7f \xff";

// A temporary FILE* whose contents can be read back.
class Capture {
 public:
  Capture() : file_(std::tmpfile()) {}
  ~Capture() {
    if (file_ != nullptr) std::fclose(file_);
  }
  Capture(const Capture&) = delete;
  Capture& operator=(const Capture&) = delete;
  [[nodiscard]] std::FILE* file() const { return file_; }
  [[nodiscard]] std::string text() const {
    std::fflush(file_);
    std::rewind(file_);
    std::string out;
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, file_)) > 0;) out.append(buf, n);
    return out;
  }

 private:
  std::FILE* file_;
};

// True when every byte is printable ASCII, LF, TAB or part of a character that is neither a C1
// nor a bidi control (enough for this test's input).
bool terminal_safe(const std::string& s) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto b = static_cast<unsigned char>(s[i]);
    if ((b < 0x20 && b != '\n' && b != '\t') || b == 0x7f || b == 0xff) return false;
    if (b == 0xC2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) <= 0x9F) return false;
    if (s.compare(i, 3, "\xE2\x80\xAE") == 0) return false;
  }
  return true;
}

HostResult hostile_result(HostStatus status) {
  HostResult r;
  r.status = status;
  if (status == HostStatus::ok) {
    r.reply_text = kHostile;  // an answer in the final line, e.g. ping
  } else {
    r.code = "denied";
    r.message = kHostile;
  }
  return r;
}

struct Report {
  std::string out;
  std::string err;
};

Report report(OutputMode mode, bool raw_bytes, HostStatus status) {
  const std::vector<Target> targets = {{"web\x1b[2J" + std::string("1"), "10.0.0.1", 7443, ""}};
  Capture out;
  Capture err;
  ProgressLine progress(err.file(), false, targets.size());
  auto reporter =
      make_reporter(mode, targets, OutputStreams{out.file(), err.file()}, progress, raw_bytes);
  reporter->line(0, protocol::Channel::out, kHostile);
  reporter->line(0, protocol::Channel::err, kHostile);
  const HostResult r = hostile_result(status);
  reporter->result(0, r);
  Report run{out.text(), err.text()};
  run.err += failure_message(targets[0], r) + "\n";
  run.err += format_summary(targets, {r}, std::chrono::milliseconds(5));
  return run;
}

TEST(Output, I11_HumanModesEscapeDataNamesMessagesAndAnswers) {
  for (const OutputMode mode : {OutputMode::raw, OutputMode::prefix, OutputMode::grouped}) {
    for (const HostStatus status : {HostStatus::ok, HostStatus::denied}) {
      const Report run = report(mode, false, status);
      SCOPED_TRACE(static_cast<int>(mode));
      EXPECT_TRUE(terminal_safe(run.out)) << run.out;
      EXPECT_TRUE(terminal_safe(run.err)) << run.err;
      EXPECT_NE(run.out.find(R"(a\x1B]52;c;eA==\x07 b\x0Dc \u009B31m \u202Ed \x7F )"),
                std::string::npos)
          << run.out;
    }
  }
}

TEST(Output, I11_JsonIsAsciiAndKeepsTheValues) {
  for (const HostStatus status : {HostStatus::ok, HostStatus::denied}) {
    const Report run = report(OutputMode::json, false, status);
    for (const char c : run.out) ASSERT_LT(static_cast<unsigned char>(c), 0x80) << run.out;
    EXPECT_NE(run.out.find(R"(\u202e)"), std::string::npos) << run.out;
    EXPECT_NE(run.out.find(R"(\u001b)"), std::string::npos) << run.out;
    const auto first = nlohmann::json::parse(run.out.substr(0, run.out.find('\n')));
    EXPECT_EQ(first["host"], "web\x1b[2J1");
    EXPECT_EQ(first["line"].get<std::string>().substr(0, 5), "a\x1b]52");
  }
}

TEST(Output, I11_RawBytesPassesOnlyDataLines) {
  const Report ok = report(OutputMode::raw, true, HostStatus::ok);
  // Both data lines exactly as received; the answer of the final line escaped.
  EXPECT_EQ(ok.out.find(kHostile + "\n"), 0U) << ok.out;
  EXPECT_EQ(ok.out.find(kHostile + "\n", 1), std::string::npos) << ok.out;
  EXPECT_EQ(ok.err.find(kHostile + "\n"), 0U) << ok.err;
  const Report denied = report(OutputMode::raw, true, HostStatus::denied);
  EXPECT_TRUE(terminal_safe(denied.err.substr(kHostile.size() + 1))) << denied.err;
}

TEST(Output, ProgressLineCountsUnreachableHostsApartFromFailures) {
  Capture err;
  ProgressLine progress(err.file(), true, 4);
  progress.host_done(HostStatus::unreachable);
  progress.host_done(HostStatus::denied);
  const std::string text = err.text();
  EXPECT_NE(text.find("[2/4 hosts done, 1 failed, 1 unreachable]"), std::string::npos) << text;
  EXPECT_EQ(text.find("2 failed"), std::string::npos) << text;
}

TEST(Output, SummaryAfterAnInterruptionSaysDoneCancelledAndNotStarted) {
  const std::vector<Target> targets = {
      {"a", "10.0.0.1", 1, ""}, {"b", "10.0.0.2", 1, ""}, {"c", "10.0.0.3", 1, ""}};
  std::vector<HostResult> results(3);
  results[0].status = HostStatus::ok;
  results[1].status = HostStatus::cancelled;
  results[2].status = HostStatus::not_started;
  RunFacts facts;
  facts.signal = 2;
  const std::string text = format_summary(targets, results, std::chrono::milliseconds(1200), facts);
  EXPECT_EQ(text,
            "opsctl: interrupted by SIGINT: 1 done, 1 cancelled, 1 not started\n"
            "opsctl: 3 hosts in 1.2s: 1 ok, 1 cancelled, 1 not started\n"
            "opsctl:   cancelled: b\n"
            "opsctl:   not started: c\n");
  const auto j = nlohmann::json::parse(json_summary(targets, results, {}, facts));
  EXPECT_EQ(j["type"], "summary");
  EXPECT_EQ(j["interrupted"], "SIGINT");
  EXPECT_EQ(j["counts"]["cancelled"], 1);
  EXPECT_EQ(j["not_ok"]["not_started"], nlohmann::json({"c"}));
}

}  // namespace
}  // namespace opsagent::client

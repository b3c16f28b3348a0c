#include "agent/client/output.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <csignal>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "agent/client/collected_output.hpp"
#include "agent/client/reporter_base.hpp"
#include "agent/protocol/reply_formatter.hpp"

namespace opsagent::client {
namespace {

constexpr std::size_t kMaxNamesListed = 20;
constexpr auto kProgressInterval = std::chrono::milliseconds(100);
constexpr std::array kSummaryOrder = {
    HostStatus::ok,          HostStatus::failed,    HostStatus::denied,
    HostStatus::unreachable, HostStatus::timeout,   HostStatus::tls_error,
    HostStatus::error,       HostStatus::cancelled, HostStatus::not_started};

// How the summary names a status ("not started" reads better than the JSON spelling).
std::string_view summary_word(HostStatus s) {
  return s == HostStatus::not_started ? std::string_view("not started") : to_string(s);
}

// ASCII-only JSON: controls, DEL, C1 and bidi characters (and every other non-ASCII
// character) become \uNNNN escapes, invalid UTF-8 becomes \ufffd. jq decodes them; a terminal
// never sees them.
std::string dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
}

using detail::describe_result;
using detail::ReporterBase;
using detail::shown;

// One host, as if the command had run locally. With `raw_bytes` the command's lines are
// written exactly as received; the final line's answer is escaped either way.
class RawReporter final : public ReporterBase {
 public:
  RawReporter(const std::vector<Target>& targets, OutputStreams streams, ProgressLine& progress,
              const ReportOptions& options)
      : ReporterBase(targets, streams, progress, options), raw_bytes_(options.raw_bytes) {}
  void line(std::size_t /*host*/, protocol::Channel channel, std::string_view text) override {
    line_.clear();  // keeps its capacity: a streamed line allocates nothing here
    if (raw_bytes_) {
      line_.append(text);
    } else {
      protocol::sanitize_append(line_, text);
    }
    line_.push_back('\n');
    emit(stream(channel), line_);
  }
  void result(std::size_t /*host*/, const HostResult& r) override {
    if (shows_reply_text(r)) emit(streams_.out, shown(r.reply_text) + "\n");
    done(r);
  }

 private:
  bool raw_bytes_;
  std::string line_;
};

// "web1   | line" on stdout, "web1   ! line" on stderr, "web1   # denied: ..." for failures.
class PrefixReporter final : public ReporterBase {
 public:
  using ReporterBase::ReporterBase;
  void line(std::size_t host, protocol::Channel channel, std::string_view text) override {
    emit(stream(channel), prefix_line(host, channel, text));
  }
  void result(std::size_t host, const HostResult& r) override {
    if (shows_reply_text(r)) line(host, protocol::Channel::out, r.reply_text);
    if (r.status != HostStatus::ok && !silent(r)) emit(streams_.err, prefix_failure(host, r));
    done(r);
  }
};

// Each host's lines together, in the order hosts finish; stderr lines marked "! ".
class GroupedReporter final : public ReporterBase {
 public:
  using ReporterBase::ReporterBase;
  void line(std::size_t host, protocol::Channel channel, std::string_view text) override {
    buffered_[host].emplace_back(channel, shown(text));
  }
  void result(std::size_t host, const HostResult& r) override {
    if (silent(r)) {
      buffered_.erase(host);
      done(r);
      return;
    }
    if (shows_reply_text(r)) line(host, protocol::Channel::out, r.reply_text);
    progress_.clear();
    put(streams_.out, grouped_header(name(host), describe_result(r), r));
    for (const auto& [channel, text] : buffered_[host]) {
      put(stream(channel), grouped_line(channel, text));
    }
    buffered_.erase(host);
    done(r);
  }

 private:
  std::map<std::size_t, std::vector<std::pair<protocol::Channel, std::string>>> buffered_;
};

// Nothing per host (--quiet): the summary says it all.
class QuietReporter final : public ReporterBase {
 public:
  using ReporterBase::ReporterBase;
  void line(std::size_t /*host*/, protocol::Channel /*channel*/,
            std::string_view /*text*/) override {}
  void result(std::size_t /*host*/, const HostResult& r) override { done(r); }
};

// One JSON object per line on stdout, for jq.
class JsonReporter final : public ReporterBase {
 public:
  using ReporterBase::ReporterBase;
  void line(std::size_t host, protocol::Channel channel, std::string_view text) override {
    const nlohmann::json j = {{"host", json_name(host)},
                              {"type", "line"},
                              {"stream", channel == protocol::Channel::out ? "stdout" : "stderr"},
                              {"line", std::string(text)}};
    emit(streams_.out, dump(j) + "\n");
  }
  void result(std::size_t host, const HostResult& r) override {
    emit(streams_.out, json_result(json_name(host), r) + "\n");
    done(r);
  }
};

}  // namespace

namespace {
std::atomic<int> g_stdout_error{0};  // NOLINT(cppcoreguidelines-avoid-non-const-global-variables)

// Remembers the first failed write to stdout (what the exit status reports); stderr's failures
// have nowhere to be reported.
void note_failure(std::FILE* f, bool ok) noexcept {
  if (ok || f != stdout) return;
  int expected = 0;
  g_stdout_error.compare_exchange_strong(expected, errno != 0 ? errno : EIO);
}

// The progress line is drawn on a terminal (stderr), at once; a failure there has nowhere to be
// reported.
void write_progress(std::FILE* f, std::string_view text) {
  (void)std::fwrite(text.data(), 1, text.size(), f);
  (void)std::fflush(f);
}
}  // namespace

int stdout_write_error() noexcept { return g_stdout_error.load(); }

void ProgressLine::clear() {
  if (!enabled_ || !shown_) return;
  write_progress(err_, "\r\x1b[K");
  shown_ = false;
}

void ProgressLine::host_done(HostStatus status) {
  ++done_;
  if (status == HostStatus::unreachable) {
    ++unreachable_;
  } else if (status != HostStatus::ok && status != HostStatus::cancelled &&
             status != HostStatus::not_started) {
    ++failures_;
  }
  draw(true);
}

void ProgressLine::draw(bool force) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  if (!force && now - last_draw_ < kProgressInterval) return;
  if (done_ >= total_) {
    clear();
    return;
  }
  last_draw_ = now;
  std::string text = fmt::format("\r\x1b[K[{}/{} hosts done, {} failed", done_, total_, failures_);
  if (unreachable_ > 0) text += fmt::format(", {} unreachable", unreachable_);
  text += ']';
  write_progress(err_, text);
  shown_ = true;
}

std::unique_ptr<Reporter> make_reporter(OutputMode mode, const std::vector<Target>& targets,
                                        OutputStreams streams, ProgressLine& progress,
                                        const ReportOptions& options) {
  if (options.quiet) return std::make_unique<QuietReporter>(targets, streams, progress, options);
  if (mode == OutputMode::table || (options.collapse && mode == OutputMode::grouped) ||
      (options.sort && (mode == OutputMode::prefix || mode == OutputMode::grouped))) {
    return make_collected_reporter(mode, targets, streams, progress, options);
  }
  switch (mode) {
    case OutputMode::raw:
      return std::make_unique<RawReporter>(targets, streams, progress, options);
    case OutputMode::prefix:
      return std::make_unique<PrefixReporter>(targets, streams, progress, options);
    case OutputMode::grouped:
      return std::make_unique<GroupedReporter>(targets, streams, progress, options);
    case OutputMode::json:
      return std::make_unique<JsonReporter>(targets, streams, progress, options);
    case OutputMode::table:
      break;
  }
  return std::make_unique<PrefixReporter>(targets, streams, progress, options);
}

std::unique_ptr<Reporter> make_reporter(OutputMode mode, const std::vector<Target>& targets,
                                        OutputStreams streams, ProgressLine& progress,
                                        bool raw_bytes) {
  ReportOptions options;
  options.raw_bytes = raw_bytes;
  return make_reporter(mode, targets, streams, progress, options);
}

std::string json_result(std::string_view name, const HostResult& r) {
  nlohmann::json j = {{"host", std::string(name)},
                      {"type", "result"},
                      {"status", std::string(to_string(r.status))}};
  if (r.exit_code) j["exit"] = *r.exit_code;
  if (r.signal) j["signal"] = *r.signal;
  if (!r.code.empty()) j["code"] = r.code;
  j["message"] = r.message;
  if (shows_reply_text(r)) j["reply"] = r.reply_text;
  j["duration_ms"] = r.duration.count();
  if (r.attempts > 1) j["attempts"] = r.attempts;
  return dump(j);
}

std::string signal_name(int signal) {
  if (signal == SIGINT) return "SIGINT";
  if (signal == SIGTERM) return "SIGTERM";
  return fmt::format("signal {}", signal);
}

std::string format_summary(const std::vector<Target>& targets,
                           const std::vector<HostResult>& results,
                           std::chrono::milliseconds elapsed, const RunFacts& facts) {
  const int signal = facts.signal;
  std::map<HostStatus, std::vector<std::string>> by_status;
  for (std::size_t i = 0; i < results.size() && i < targets.size(); ++i) {
    by_status[results[i].status].push_back(shown(targets[i].name));
  }
  std::string out;
  if (signal != 0) {
    const std::size_t cancelled = by_status[HostStatus::cancelled].size();
    const std::size_t not_started = by_status[HostStatus::not_started].size();
    out += fmt::format("opsctl: interrupted by {}: {} done, {} cancelled, {} not started\n",
                       signal_name(signal), results.size() - cancelled - not_started, cancelled,
                       not_started);
  }
  if (facts.stopped_by_max_fail) {
    out += fmt::format("opsctl: stopped: more than {} hosts failed (--max-fail), {} not started\n",
                       facts.max_fail.value_or(0), by_status[HostStatus::not_started].size());
  }
  if (facts.serial != 0) {
    out += fmt::format("opsctl: {} batch{} of up to {} hosts (--serial)\n", facts.batches,
                       facts.batches == 1 ? "" : "es", facts.serial);
  }
  std::string counts;
  for (const HostStatus s : kSummaryOrder) {
    const std::size_t n = by_status[s].size();
    if (n == 0 && s != HostStatus::ok) continue;
    counts += fmt::format("{}{} {}", counts.empty() ? "" : ", ", n, summary_word(s));
  }
  out += fmt::format("opsctl: {} host{} in {:.1f}s: {}\n", results.size(),
                     results.size() == 1 ? "" : "s", static_cast<double>(elapsed.count()) / 1000.0,
                     counts);
  for (const HostStatus s : kSummaryOrder) {
    const auto& names = by_status[s];
    if (s == HostStatus::ok || names.empty()) continue;
    std::string list;
    for (std::size_t i = 0; i < names.size() && i < kMaxNamesListed; ++i) {
      list += (i == 0 ? "" : " ") + names[i];
    }
    if (names.size() > kMaxNamesListed) {
      list += fmt::format(" (and {} more)", names.size() - kMaxNamesListed);
    }
    out += fmt::format("opsctl:   {}: {}\n", summary_word(s), list);
  }
  return out;
}

std::string json_summary(const std::vector<Target>& targets, const std::vector<HostResult>& results,
                         std::chrono::milliseconds elapsed, const RunFacts& facts) {
  nlohmann::json counts = nlohmann::json::object();
  nlohmann::json hosts = nlohmann::json::object();
  for (const HostStatus s : kSummaryOrder) counts[std::string(to_string(s))] = 0;
  for (std::size_t i = 0; i < results.size() && i < targets.size(); ++i) {
    const std::string status(to_string(results[i].status));
    counts[status] = counts[status].get<std::size_t>() + 1;
    if (results[i].status != HostStatus::ok) hosts[status].push_back(targets[i].name);
  }
  nlohmann::json j = {
      {"type", "summary"}, {"hosts", results.size()},        {"counts", counts},
      {"not_ok", hosts},   {"duration_ms", elapsed.count()}, {"interrupted", nullptr}};
  if (facts.signal != 0) j["interrupted"] = signal_name(facts.signal);
  if (facts.serial != 0) {
    j["serial"] = facts.serial;
    j["batches"] = facts.batches;
  }
  if (facts.max_fail) {
    j["max_fail"] = *facts.max_fail;
    j["max_fail_stopped"] = facts.stopped_by_max_fail;
  }
  return dump(j);
}

std::string failure_message(const Target& target, const HostResult& r) {
  if (r.status == HostStatus::ok) return {};
  if (r.status == HostStatus::failed && !r.signal) return {};
  return fmt::format("opsctl: {}: {}: {}", shown(target.name), to_string(r.status),
                     shown(r.message));
}

namespace detail {

std::string shown(std::string_view text) { return protocol::sanitize_line(text); }

std::string describe_result(const HostResult& r, bool with_duration) {
  std::string s(to_string(r.status));
  if (r.exit_code) s += fmt::format(", exit {}", *r.exit_code);
  if (r.signal) s += fmt::format(", signal {}", *r.signal);
  if (with_duration) s += fmt::format(", {} ms", r.duration.count());
  return s;
}

ReporterBase::ReporterBase(const std::vector<Target>& targets, OutputStreams streams,
                           ProgressLine& progress, const ReportOptions& options)
    : targets_(targets),
      streams_(streams),
      progress_(progress),
      out_palette_(options.colour_out),
      err_palette_(options.colour_err) {
  constexpr std::size_t kMaxPrefixWidth = 40;
  names_.reserve(targets.size());
  for (const auto& t : targets) {
    names_.push_back(shown(t.name));
    width_ = std::max(width_, std::min(names_.back().size(), kMaxPrefixWidth));
  }
}

void ReporterBase::emit(std::FILE* f, std::string_view text) {
  progress_.clear();
  put(f, text);
  if (progress_.enabled()) {
    note_failure(f, std::fflush(f) == 0);  // before the progress line is drawn again
    progress_.draw(false);
  }
}

void ReporterBase::put(std::FILE* f, std::string_view text) {
  if (last_ != nullptr && last_ != f) note_failure(last_, std::fflush(last_) == 0);
  last_ = f;
  note_failure(f, std::fwrite(text.data(), 1, text.size(), f) == text.size());
}

void ReporterBase::flush() {
  note_failure(streams_.out, std::fflush(streams_.out) == 0);
  note_failure(streams_.err, std::fflush(streams_.err) == 0);
  last_ = nullptr;
}

namespace {
std::string padding(std::size_t width, std::string_view name) {
  return std::string(width > name.size() ? width - name.size() : 0, ' ');
}
}  // namespace

std::string ReporterBase::prefix_line(std::size_t host, protocol::Channel channel,
                                      std::string_view text) const {
  const bool out = channel == protocol::Channel::out;
  const Palette& p = palette(channel);
  return fmt::format("{}{} {} {}\n", p.paint(Paint::host, name(host)), padding(width_, name(host)),
                     out ? std::string("|") : p.paint(Paint::stderr_mark, "!"), shown(text));
}

std::string ReporterBase::prefix_failure(std::size_t host, const HostResult& r) const {
  return fmt::format(
      "{}{} # {}: {}\n", err_palette_.paint(Paint::host, name(host)), padding(width_, name(host)),
      err_palette_.paint(status_paint(r.status), to_string(r.status)), shown(r.message));
}

std::string ReporterBase::grouped_line(protocol::Channel channel, std::string_view text) const {
  if (channel == protocol::Channel::out) return fmt::format("{}\n", text);
  return fmt::format("{} {}\n", err_palette_.paint(Paint::stderr_mark, "!"), text);
}

std::string ReporterBase::grouped_header(std::string_view names, std::string_view description,
                                         const HostResult& r) const {
  std::string block = out_palette_.paint(Paint::header, "===") + " " +
                      out_palette_.paint(Paint::host, names) + " (" +
                      out_palette_.paint(status_paint(r.status), description) + ")";
  if (r.status != HostStatus::ok && !r.message.empty()) block += ": " + shown(r.message);
  block += '\n';
  return block;
}

}  // namespace detail

}  // namespace opsagent::client

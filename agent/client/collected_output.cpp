#include "agent/client/collected_output.hpp"

#include <algorithm>
#include <map>
#include <numeric>
#include <optional>

#include <fmt/format.h>

#include "agent/client/reporter_base.hpp"

namespace opsagent::client {
namespace {

using detail::describe_result;
using detail::shown;

using Lines = std::vector<std::pair<protocol::Channel, std::string>>;

// Characters a terminal shows for escaped (valid UTF-8) text: one per non-continuation byte.
std::size_t columns(std::string_view text) {
  return static_cast<std::size_t>(std::count_if(text.begin(), text.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  }));
}

std::string duration_text(std::chrono::milliseconds d) {
  if (d.count() < 1000) return fmt::format("{}ms", d.count());
  return fmt::format("{:.1f}s", static_cast<double>(d.count()) / 1000.0);
}

std::string exit_text(const HostResult& r) {
  if (r.exit_code) return std::to_string(*r.exit_code);
  if (r.signal) return fmt::format("sig {}", *r.signal);
  return "-";
}

class CollectedReporter final : public detail::ReporterBase {
 public:
  CollectedReporter(OutputMode mode, const std::vector<Target>& targets, OutputStreams streams,
                    ProgressLine& progress, const ReportOptions& options)
      : ReporterBase(targets, streams, progress, options),
        mode_(mode),
        sort_(options.sort),
        collapse_(options.collapse && mode == OutputMode::grouped),
        lines_(mode == OutputMode::table ? 0 : targets.size()),
        results_(targets.size()) {}

  void line(std::size_t host, protocol::Channel channel, std::string_view text) override {
    if (mode_ != OutputMode::table) lines_[host].emplace_back(channel, shown(text));
  }
  void result(std::size_t host, const HostResult& r) override {
    if (mode_ != OutputMode::table && shows_reply_text(r)) {
      line(host, protocol::Channel::out, r.reply_text);
    }
    results_[host] = r;
    results_[host]->reply_text.clear();  // shown as a line already; the table does not show it
    done(r);
  }
  void finish() override {
    progress_.clear();
    const std::vector<std::size_t> order = host_order();
    if (mode_ == OutputMode::table) {
      write_table(order);
    } else if (collapse_) {
      write_collapsed(order);
    } else {
      for (const std::size_t host : order) write_host(host);
    }
    flush();
  }

 private:
  // Hosts that have a result, in target order or (--sort) name order.
  [[nodiscard]] std::vector<std::size_t> host_order() const {
    std::vector<std::size_t> order;
    for (std::size_t i = 0; i < results_.size(); ++i) {
      if (results_[i]) order.push_back(i);
    }
    if (sort_) {
      std::stable_sort(order.begin(), order.end(), [this](std::size_t a, std::size_t b) {
        return natural_less(targets_[a].name, targets_[b].name);
      });
    }
    return order;
  }

  void write_host(std::size_t host) {
    const HostResult& r = *results_[host];
    if (silent(r)) return;
    if (mode_ == OutputMode::prefix) {
      for (const auto& [channel, text] : lines_[host]) {
        put(stream(channel), prefix_line(host, channel, text));
      }
      if (r.status != HostStatus::ok) put(streams_.err, prefix_failure(host, r));
      return;
    }
    put(streams_.out, grouped_header(name(host), describe_result(r), r));
    write_lines(lines_[host]);
  }

  void write_lines(const Lines& lines) {
    for (const auto& [channel, text] : lines) put(stream(channel), grouped_line(channel, text));
  }

  // Hosts whose lines and result read the same, under one header naming them all; groups in
  // the order of their first host.
  void write_collapsed(const std::vector<std::size_t>& order) {
    std::map<std::string, std::size_t> group_of;  // key -> index into groups
    std::vector<std::vector<std::size_t>> groups;
    for (const std::size_t host : order) {
      const HostResult& r = *results_[host];
      if (silent(r)) continue;
      // Each stream's lines in order, stdout's then stderr's: how the two interleave is not
      // part of the output (they are separate pipes, read as they fill), so it varies by host.
      std::string key = describe_result(r, false) + '\n' + r.message + '\n';
      for (const auto wanted : {protocol::Channel::out, protocol::Channel::err}) {
        for (const auto& [channel, text] : lines_[host]) {
          if (channel != wanted) continue;
          key += channel == protocol::Channel::out ? 'o' : 'e';
          key += text;
          key += '\n';
        }
      }
      const auto [at, added] = group_of.emplace(std::move(key), groups.size());
      if (added) groups.emplace_back();
      groups[at->second].push_back(host);
    }
    for (const auto& hosts : groups) {
      std::string names;
      for (const std::size_t host : hosts) {
        if (!names.empty()) names += ',';
        names += name(host);
      }
      const HostResult& r = *results_[hosts.front()];
      const std::string description = fmt::format(
          "{} host{}, {}", hosts.size(), hosts.size() == 1 ? "" : "s", describe_result(r, false));
      put(streams_.out, grouped_header(names, description, r));
      write_lines(lines_[hosts.front()]);
    }
  }

  // HOST STATUS EXIT DURATION MESSAGE, aligned; the message only for hosts that were not ok.
  void write_table(const std::vector<std::size_t>& order) {
    std::size_t host_width = 4;
    std::size_t status_width = 6;
    std::size_t exit_width = 4;
    for (const std::size_t host : order) {
      host_width = std::max(host_width, columns(name(host)));
      status_width = std::max(status_width, to_string(results_[host]->status).size());
      exit_width = std::max(exit_width, exit_text(*results_[host]).size());
    }
    const Palette& p = out_palette_;
    std::string text =
        p.paint(Paint::header,
                fmt::format("{:<{}}  {:<{}}  {:>{}}  {:>8}  {}", "HOST", host_width, "STATUS",
                            status_width, "EXIT", exit_width, "DURATION", "MESSAGE"));
    text += '\n';
    for (const std::size_t host : order) {
      const HostResult& r = *results_[host];
      const std::string status(to_string(r.status));
      text += p.paint(Paint::host, name(host)) +
              std::string(host_width - columns(name(host)) + 2, ' ') +
              p.paint(status_paint(r.status), status) +
              std::string(status_width - status.size() + 2, ' ') +
              fmt::format("{:>{}}  {:>8}", exit_text(r), exit_width, duration_text(r.duration));
      if (r.status != HostStatus::ok && !r.message.empty()) text += "  " + shown(r.message);
      text += '\n';
    }
    put(streams_.out, text);
  }

  OutputMode mode_;
  bool sort_;
  bool collapse_;
  std::vector<Lines> lines_;
  std::vector<std::optional<HostResult>> results_;
};

}  // namespace

bool natural_less(std::string_view a, std::string_view b) noexcept {
  const auto digit = [](char c) { return c >= '0' && c <= '9'; };
  std::size_t i = 0;
  std::size_t j = 0;
  while (i < a.size() && j < b.size()) {
    if (digit(a[i]) && digit(b[j])) {
      std::size_t ie = i;
      std::size_t je = j;
      while (ie < a.size() && digit(a[ie])) ++ie;
      while (je < b.size() && digit(b[je])) ++je;
      // Compare the numbers without leading zeros: longer is larger, else digit by digit.
      std::size_t ia = i;
      std::size_t jb = j;
      while (ia + 1 < ie && a[ia] == '0') ++ia;
      while (jb + 1 < je && b[jb] == '0') ++jb;
      if (ie - ia != je - jb) return ie - ia < je - jb;
      const int c = a.substr(ia, ie - ia).compare(b.substr(jb, je - jb));
      if (c != 0) return c < 0;
      if (ie - i != je - j) return ie - i < je - j;  // fewer leading zeros first: a strict order
      i = ie;
      j = je;
      continue;
    }
    if (a[i] != b[j]) return static_cast<unsigned char>(a[i]) < static_cast<unsigned char>(b[j]);
    ++i;
    ++j;
  }
  return a.size() - i < b.size() - j;
}

std::unique_ptr<Reporter> make_collected_reporter(OutputMode mode,
                                                  const std::vector<Target>& targets,
                                                  OutputStreams streams, ProgressLine& progress,
                                                  const ReportOptions& options) {
  return std::make_unique<CollectedReporter>(mode, targets, streams, progress, options);
}

}  // namespace opsagent::client

#pragma once
// What opsctl's human reporters share (internal to agent/client): escaped host names, the
// progress line cleared around writes, the palette per stream, and the line shapes of the
// prefix and grouped modes. Not for JSON.

#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "agent/client/colour.hpp"
#include "agent/client/output.hpp"

namespace opsagent::client::detail {

/// Everything human output shows that came from the network or an inventory goes through
/// here (protocol::sanitize_line).
std::string shown(std::string_view text);

/// "ok, exit 0, 14 ms"; without the duration when `with_duration` is false.
std::string describe_result(const HostResult& result, bool with_duration = true);

class ReporterBase : public Reporter {
 public:
  ReporterBase(const std::vector<Target>& targets, OutputStreams streams, ProgressLine& progress,
               const ReportOptions& options);

 protected:
  /// Writes with the progress line out of the way (flushed at once while it is shown).
  void emit(std::FILE* f, std::string_view text);
  /// Writes to `f`'s buffer; the other stream is flushed first when it was written last, so
  /// stdout and stderr lines keep their order on a shared terminal or file.
  void put(std::FILE* f, std::string_view text);
  /// Flushes both streams.
  void flush() override;
  /// Counts the host as done (progress line) and flushes: a host's result is shown at once.
  void done(const HostResult& r) {
    flush();
    progress_.host_done(r.status);
  }
  /// Hosts the fan-out never reached get a JSON result but no line in human output (the
  /// summary names them).
  static bool silent(const HostResult& r) { return r.status == HostStatus::not_started; }
  /// The host's name, escaped for human output.
  [[nodiscard]] const std::string& name(std::size_t host) const { return names_[host]; }
  /// The host's name as the inventory or the command line gave it (for JSON).
  [[nodiscard]] const std::string& json_name(std::size_t host) const { return targets_[host].name; }
  /// The stream for a channel, and its palette.
  [[nodiscard]] std::FILE* stream(protocol::Channel channel) const {
    return channel == protocol::Channel::out ? streams_.out : streams_.err;
  }
  [[nodiscard]] const Palette& palette(protocol::Channel channel) const {
    return channel == protocol::Channel::out ? out_palette_ : err_palette_;
  }
  /// Prefix mode: "web1   | text\n" (stdout) or "web1   ! text\n" (stderr); `text` escaped.
  [[nodiscard]] std::string prefix_line(std::size_t host, protocol::Channel channel,
                                        std::string_view text) const;
  /// Prefix mode: "web1   # status: message\n" for a host that did not succeed (stderr).
  [[nodiscard]] std::string prefix_failure(std::size_t host, const HostResult& r) const;
  /// Grouped mode: one data line of a block, `text` escaped; stderr lines marked "! ".
  [[nodiscard]] std::string grouped_line(protocol::Channel channel, std::string_view text) const;
  /// Grouped mode: "=== NAMES (DESCRIPTION): message\n" (stdout).
  [[nodiscard]] std::string grouped_header(std::string_view names, std::string_view description,
                                           const HostResult& r) const;

  const std::vector<Target>& targets_;
  std::vector<std::string> names_;
  OutputStreams streams_;
  ProgressLine& progress_;
  Palette out_palette_;
  Palette err_palette_;
  std::size_t width_ = 0;      ///< prefix column width
  std::FILE* last_ = nullptr;  ///< the stream written last, possibly not flushed
};

}  // namespace opsagent::client::detail

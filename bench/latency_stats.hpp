#pragma once
// Latency samples of one load-generator run, and their summary as percentiles. Not thread-safe:
// each connection fills its own, merged at the end.

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include <fmt/format.h>

namespace opsagent::bench {

class LatencyStats {
 public:
  /// Records one request's latency in nanoseconds.
  void add(std::int64_t ns) { samples_.push_back(ns); }
  /// Moves `other`'s samples into this one.
  void merge(LatencyStats& other) {
    samples_.insert(samples_.end(), other.samples_.begin(), other.samples_.end());
    other.samples_.clear();
  }
  [[nodiscard]] std::size_t count() const { return samples_.size(); }

  /// The p-th percentile (0..100) in microseconds; sorts the samples first.
  double percentile_us(double p) {
    if (samples_.empty()) return 0.0;
    if (!sorted_) {
      std::sort(samples_.begin(), samples_.end());
      sorted_ = true;
    }
    const auto last = static_cast<double>(samples_.size() - 1);
    const auto at = static_cast<std::size_t>(p / 100.0 * last + 0.5);
    return static_cast<double>(samples_[std::min(at, samples_.size() - 1)]) / 1000.0;
  }

  /// `"p50_us":…,"p90_us":…,"p99_us":…,"max_us":…` for a JSON object.
  std::string json_fields() {
    return fmt::format(R"("p50_us":{:.1f},"p90_us":{:.1f},"p99_us":{:.1f},"max_us":{:.1f})",
                       percentile_us(50), percentile_us(90), percentile_us(99), percentile_us(100));
  }

 private:
  std::vector<std::int64_t> samples_;
  bool sorted_ = false;
};

}  // namespace opsagent::bench

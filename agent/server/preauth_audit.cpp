#include "agent/server/preauth_audit.hpp"

#include <utility>

#include "agent/common/best_effort.hpp"

namespace opsagent::server {

bool PreAuthAudit::failure(const std::string& source) noexcept {
  try {
    std::lock_guard lock(mutex_);
    // Memory stays bounded: beyond kMaxSources addresses, new ones share one entry.
    auto it = sources_.find(source);
    if (it == sources_.end()) {
      it = sources_.try_emplace(sources_.size() < kMaxSources ? source : kOtherSources).first;
    }
    Source& s = it->second;
    ++failures_;
    if (++s.failures <= kBurst && failures_ <= kGlobalBurst) return true;
    ++s.suppressed;
    return false;
  } catch (const std::exception& e) {  // std::bad_alloc for a new entry: not counted
    log_noexcept(spdlog::level::warn, "a failed connection from {} was not counted: {}", source,
                 e.what());
    return false;
  }
}

void PreAuthAudit::tick() noexcept {
  {
    std::lock_guard lock(mutex_);
    if (std::chrono::steady_clock::now() - interval_start_ < kInterval) return;
  }
  flush();
}

void PreAuthAudit::flush() noexcept {
  std::map<std::string, Source> ended;
  std::chrono::steady_clock::time_point started;
  {
    std::lock_guard lock(mutex_);
    ended.swap(sources_);
    failures_ = 0;
    started = std::exchange(interval_start_, std::chrono::steady_clock::now());
  }
  const auto seconds =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started)
          .count();
  for (const auto& [peer, s] : ended) {
    if (s.suppressed == 0) continue;
    try {
      log_.record("tls_failures_suppressed",
                  {{"peer", peer}, {"failures", s.suppressed}, {"interval_s", seconds}});
      log_noexcept(spdlog::level::warn,
                   "{} failed connection(s) from {} in the last {} s were counted, not audited "
                   "one by one",
                   s.suppressed, peer, seconds);
    } catch (const std::exception& e) {  // std::bad_alloc building the fields
      log_noexcept(spdlog::level::err, "cannot audit the suppressed failures of {}: {}", peer,
                   e.what());
    }
  }
}

}  // namespace opsagent::server

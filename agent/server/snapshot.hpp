#pragma once
// Holds the current version of something that is replaced whole on reload (the policy, the TLS
// context). Readers take a shared_ptr snapshot and keep it for as long as they use it, so a
// reload never changes anything under a decision or a connection in flight. Thread-safe.

#include <memory>
#include <mutex>
#include <utility>

namespace opsagent::server {

template <typename T>
class Snapshot {
 public:
  explicit Snapshot(std::shared_ptr<T> initial) : current_(std::move(initial)) {}

  /// The version in force now.
  [[nodiscard]] std::shared_ptr<T> get() const {
    std::lock_guard lock(mutex_);
    return current_;
  }
  /// Replaces it for every later get().
  void replace(std::shared_ptr<T> next) {
    std::lock_guard lock(mutex_);
    current_ = std::move(next);
  }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<T> current_;  // GUARDED_BY(mutex_)
};

}  // namespace opsagent::server

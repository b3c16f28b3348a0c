#pragma once
// Holds the policy in force. Sessions take a snapshot per decision; a reload swaps it whole, so
// a decision never sees half of an old policy and half of a new one. Thread-safe.

#include <memory>
#include <mutex>

#include "agent/policy/policy.hpp"

namespace opsagent::server {

class PolicyStore {
 public:
  explicit PolicyStore(std::shared_ptr<const policy::Policy> initial)
      : current_(std::move(initial)) {}

  /// The policy in force now; keep the pointer for the whole decision.
  [[nodiscard]] std::shared_ptr<const policy::Policy> snapshot() const {
    std::lock_guard lock(mutex_);
    return current_;
  }
  /// Replaces the policy for every later decision.
  void replace(std::shared_ptr<const policy::Policy> next) {
    std::lock_guard lock(mutex_);
    current_ = std::move(next);
  }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const policy::Policy> current_;  // GUARDED_BY(mutex_)
};

}  // namespace opsagent::server

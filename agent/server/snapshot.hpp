#pragma once
// Holds the current version of something that is replaced whole on reload (the policy, the TLS
// context). Readers take a shared_ptr snapshot and keep it for as long as they use it, so a
// reload never changes anything under a decision or a connection in flight. Thread-safe.
//
// A reader on a hot path (the gate reads the policy for every command) keeps a Cached copy
// instead: it is taken again only when replace() ran since, so reading it needs neither the
// lock nor the shared count, two cache lines every I/O thread would otherwise write (issue 13).

#include <atomic>
#include <cstdint>
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
  /// Replaces it for every later get(), and for every Cached::get() that starts after this.
  void replace(std::shared_ptr<T> next) {
    std::lock_guard lock(mutex_);
    current_ = std::move(next);
    generation_.value.fetch_add(1, std::memory_order_release);
  }

  /// One reader's copy of the version in force. Used by one thread at a time.
  class Cached {
   public:
    explicit Cached(const Snapshot& source) : source_(source) {}

    /// The version in force when this call started. The reference stays valid until the next
    /// get() or drop() on this Cached.
    const std::shared_ptr<T>& get() {
      const std::uint64_t now = source_.generation_.value.load(std::memory_order_acquire);
      if (!copy_ || now != generation_) {
        std::lock_guard lock(source_.mutex_);
        copy_ = source_.current_;
        generation_ = source_.generation_.value.load(std::memory_order_relaxed);
      }
      return copy_;
    }
    /// Counts the versions this copy went through: equal numbers, same version.
    [[nodiscard]] std::uint64_t generation() const noexcept { return generation_; }
    /// Lets go of the copy (it is taken again at the next get()), so that an idle reader does
    /// not keep an old version alive.
    void drop() noexcept { copy_.reset(); }

   private:
    const Snapshot& source_;
    std::shared_ptr<T> copy_;
    std::uint64_t generation_ = 0;
  };

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<T> current_;  // GUARDED_BY(mutex_)
  // Written by replace() only: on a line of its own, it stays in every reader's cache.
  struct alignas(64) Generation {
    std::atomic<std::uint64_t> value{0};
  };
  Generation generation_;
};

}  // namespace opsagent::server

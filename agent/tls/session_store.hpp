#pragma once
// TLS 1.3 resumption for the agent: the sessions clients may resume are kept in this process's
// memory, and a client's ticket is only a session's id (OpenSSL's stateful tickets). Nothing is
// sealed, serialised or parsed again per handshake: a resumed session is the very object its
// full handshake verified, with the client's certificate and intermediates, which are verified
// again against the CA and CRL in force (chain_check.hpp, verify_peer_chain). Each session is
// resumable once (the client gets a fresh ticket each time), for at most its lifetime; the store
// is bounded and shared by every server context, so that a reload keeps it. Never early data
// (replayable); the PSK is always combined with (EC)DHE (psk_dhe_ke: SSL_OP_ALLOW_NO_DHE_KEX is
// never set); TLS 1.3 only (a TLS 1.2 session is never kept).

#include <chrono>
#include <cstddef>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include <openssl/ssl.h>

namespace opsagent::tls {

/// The resumable sessions of a process, oldest first. Thread-safe.
class SessionStore {
 public:
  using Clock = std::chrono::steady_clock;

  SessionStore() = default;
  SessionStore(const SessionStore&) = delete;
  SessionStore& operator=(const SessionStore&) = delete;
  SessionStore(SessionStore&&) = delete;
  SessionStore& operator=(SessionStore&&) = delete;
  ~SessionStore();

  /// `capacity`: the most sessions kept (the oldest make room); `lifetime`: how long one stays
  /// resumable. Applies to what is stored from now on and to what is already there.
  void configure(std::size_t capacity, std::chrono::seconds lifetime);

  /// Keeps `session` under its id, taking over the caller's reference. False (the caller keeps
  /// its reference) when the session has no id or there is no memory for it.
  bool put(SSL_SESSION* session, Clock::time_point now) noexcept;

  /// The session stored under `id`, taken out of the store (each is resumable once): the caller
  /// owns the reference. Null when there is none or it is older than the lifetime.
  SSL_SESSION* take(const unsigned char* id, std::size_t len, Clock::time_point now) noexcept;

  [[nodiscard]] std::size_t size() const;
  [[nodiscard]] std::chrono::seconds lifetime() const;

 private:
  struct Entry {
    std::string id;
    SSL_SESSION* session;
    Clock::time_point added;
  };
  void drop_front();                         // holds mutex_
  void drop_expired(Clock::time_point now);  // holds mutex_

  mutable std::mutex mutex_;
  std::size_t capacity_ = 4096;
  std::chrono::seconds lifetime_{7200};
  std::list<Entry> entries_;  // oldest first: the same lifetime for all, so also expiry order
  std::unordered_map<std::string, std::list<Entry>::iterator> by_id_;
};

/// Turns resumption on for a server context (a ticket per handshake for a client that asks for
/// one, sessions in `store`, session id context, the store's lifetime, no early data), or, with
/// a null `store`, makes sure it is off.
void configure_resumption(SSL_CTX* ctx, const std::shared_ptr<SessionStore>& store);

}  // namespace opsagent::tls

#pragma once
// TLS 1.3 resumption for the agent: stateless session tickets sealed with keys that live only in
// this process's memory and rotate, shared by every server context so that they survive a trust
// reload. A ticket carries the client's untrusted intermediates (encrypted, authenticated by the
// ticket key), so a resumed session can be verified again against the CA and CRL in force
// (chain_check.hpp, verify_peer_chain). Never early data (replayable); the PSK is always combined
// with (EC)DHE (psk_dhe_ke: SSL_OP_ALLOW_NO_DHE_KEX is never set).

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include <openssl/ssl.h>

namespace opsagent::tls {

/// The ticket keys of a process: the newest encrypts, older ones still decrypt until no ticket
/// they sealed can be valid (rotation + lifetime), then they are wiped. Thread-safe.
class TicketKeyRing {
 public:
  using Clock = std::chrono::steady_clock;

  struct Key {
    std::array<unsigned char, 16> name{};
    std::array<unsigned char, 32> aes{};
    std::array<unsigned char, 32> hmac{};
    Clock::time_point created;
  };

  /// `rotation`: how long a key encrypts new tickets; `lifetime`: how long a ticket is valid.
  void configure(std::chrono::seconds rotation, std::chrono::seconds lifetime);

  /// The key for a new ticket (a fresh one when the newest is older than the rotation); false
  /// when no random bytes could be had.
  bool encryption_key(Key& out, Clock::time_point now);

  enum class Lookup { unknown, current, renew };
  /// The key named `name` if it may still decrypt: `current` when it is the newest (no new
  /// ticket needed), `renew` when older (the client gets a ticket under the newest key).
  Lookup decryption_key(const unsigned char* name, Key& out, Clock::time_point now);

  ~TicketKeyRing();

 private:
  void drop_expired(Clock::time_point now);  // holds mutex_

  std::mutex mutex_;
  std::chrono::seconds rotation_{3600};
  std::chrono::seconds lifetime_{7200};
  std::vector<Key> keys_;  // oldest first; bounded by (rotation + lifetime) / rotation + 1
};

struct TicketSettings {
  std::shared_ptr<TicketKeyRing> keys;  ///< null: no tickets, every handshake is a full one
  std::chrono::seconds lifetime{7200};
};

/// Turns resumption on for a server context (stateless tickets under `settings.keys`, one per
/// handshake, session id context, lifetime, no early data), or makes sure it is off.
void configure_session_tickets(SSL_CTX* ctx, const TicketSettings& settings);

/// The untrusted intermediates the client sent in the full handshake that a resumed session of
/// `ssl` descends from, as carried in its ticket; an empty stack when there were none. The
/// caller frees it (sk_X509_pop_free). Null when `ssl` was not resumed or the data is unusable.
STACK_OF(X509) * resumed_peer_chain(SSL* ssl);

}  // namespace opsagent::tls

#include "agent/tls/session_store.hpp"

#include <new>
#include <utility>

#include <openssl/crypto.h>
#include <openssl/x509.h>

namespace opsagent::tls {
namespace {

// The session id context: a session of another application's context is never resumed here.
constexpr unsigned char kSessionIdContext[] = "opsagent";

// SSL_CTX ex_data: a heap std::shared_ptr<SessionStore>, freed with the context.
void free_store(void* /*parent*/, void* ptr, CRYPTO_EX_DATA* /*ad*/, int /*idx*/, long /*argl*/,
                void* /*argp*/) {
  delete static_cast<std::shared_ptr<SessionStore>*>(ptr);
}

int store_index() {
  static const int kIndex =
      CRYPTO_get_ex_new_index(CRYPTO_EX_INDEX_SSL_CTX, 0, nullptr, nullptr, nullptr, free_store);
  return kIndex;
}

SessionStore* store_of(SSL* ssl) {
  auto* holder = static_cast<std::shared_ptr<SessionStore>*>(
      SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), store_index()));
  return holder != nullptr ? holder->get() : nullptr;
}

// OpenSSL hands over each session it has just issued a ticket for. The store keeps a copy: when
// a connection ends without the agent's close_notify (a client that leaves at once, the usual
// case), OpenSSL marks that connection's session not resumable, and the copy is what the ticket
// the client holds must find. Returns 0: OpenSSL keeps (and frees) its own reference.
int new_session_cb(SSL* ssl, SSL_SESSION* session) {
  if (SSL_SESSION_get_protocol_version(session) != TLS1_3_VERSION) return 0;  // no 1.2 resumption
  SessionStore* store = store_of(ssl);
  if (store == nullptr) return 0;
  SSL_SESSION* copy = SSL_SESSION_dup(session);  // shares the certificates, copies the rest
  if (copy != nullptr && !store->put(copy, SessionStore::Clock::now())) SSL_SESSION_free(copy);
  return 0;
}

// The session a client's ticket names; *copy = 0: the store's reference goes to OpenSSL.
SSL_SESSION* get_session_cb(SSL* ssl, const unsigned char* id, int len, int* copy) {
  *copy = 0;
  SessionStore* store = store_of(ssl);
  if (store == nullptr || len <= 0) return nullptr;
  return store->take(id, static_cast<std::size_t>(len), SessionStore::Clock::now());
}

// Tickets go only to a client that asks for them with the session_ticket extension (OpenSSL
// sends it unless SSL_OP_NO_TICKET: `opsctl --no-resume`, `openssl s_client -no_ticket`, a
// benchmark's full handshakes): a session such a client never resumes would only take room in
// the store.
int client_hello_cb(SSL* ssl, int* /*alert*/, void* /*arg*/) {
  const unsigned char* ext = nullptr;
  std::size_t len = 0;
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_session_ticket, &ext, &len) != 1) {
    SSL_set_num_tickets(ssl, 0);
  }
  return SSL_CLIENT_HELLO_SUCCESS;
}

}  // namespace

SessionStore::~SessionStore() {
  for (const Entry& e : entries_) SSL_SESSION_free(e.session);
}

void SessionStore::configure(std::size_t capacity, std::chrono::seconds lifetime) {
  const std::lock_guard lock(mutex_);
  capacity_ = capacity;
  lifetime_ = lifetime;
  while (entries_.size() > capacity_) drop_front();
}

bool SessionStore::put(SSL_SESSION* session, Clock::time_point now) noexcept {
  unsigned int len = 0;
  const unsigned char* id = SSL_SESSION_get_id(session, &len);
  if (len == 0) return false;
  try {
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): OpenSSL gives bytes
    std::string key(reinterpret_cast<const char*>(id), len);
    const std::lock_guard lock(mutex_);
    if (capacity_ == 0) return false;
    drop_expired(now);
    if (by_id_.contains(key)) return false;  // ids are random: not expected
    while (entries_.size() >= capacity_) drop_front();
    entries_.push_back(Entry{key, session, now});
    try {
      by_id_.emplace(std::move(key), std::prev(entries_.end()));
    } catch (const std::bad_alloc&) {
      entries_.pop_back();
      return false;
    }
    return true;
  } catch (const std::bad_alloc&) {  // the client does a full handshake next time
    return false;
  }
}

SSL_SESSION* SessionStore::take(const unsigned char* id, std::size_t len,
                                Clock::time_point now) noexcept {
  try {
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): OpenSSL gives bytes
    const std::string key(reinterpret_cast<const char*>(id), len);
    const std::lock_guard lock(mutex_);
    drop_expired(now);
    const auto found = by_id_.find(key);
    if (found == by_id_.end()) return nullptr;
    SSL_SESSION* session = found->second->session;
    entries_.erase(found->second);
    by_id_.erase(found);
    return session;
  } catch (const std::bad_alloc&) {  // a full handshake instead
    return nullptr;
  }
}

std::size_t SessionStore::size() const {
  const std::lock_guard lock(mutex_);
  return entries_.size();
}

std::chrono::seconds SessionStore::lifetime() const {
  const std::lock_guard lock(mutex_);
  return lifetime_;
}

void SessionStore::drop_front() {
  Entry& oldest = entries_.front();
  by_id_.erase(oldest.id);
  SSL_SESSION_free(oldest.session);
  entries_.pop_front();
}

void SessionStore::drop_expired(Clock::time_point now) {
  while (!entries_.empty() && now - entries_.front().added >= lifetime_) drop_front();
}

void configure_resumption(SSL_CTX* ctx, const std::shared_ptr<SessionStore>& store) {
  // Early data is replayable: never accepted (a ticket says max_early_data 0, and the server
  // reads none).
  SSL_CTX_set_max_early_data(ctx, 0);
  SSL_CTX_set_recv_max_early_data(ctx, 0);
  // Resumption must keep forward secrecy: the PSK only with an (EC)DHE exchange.
  SSL_CTX_clear_options(ctx, SSL_OP_ALLOW_NO_DHE_KEX);
  SSL_CTX_set_session_id_context(ctx, kSessionIdContext, sizeof kSessionIdContext - 1);
  // On a server, SSL_OP_NO_TICKET means no stateless tickets: TLS 1.3 tickets are then session
  // ids (and TLS 1.2 gets no tickets).
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  if (!store) {
    // No resumption and no tickets at all, so a client never holds one the agent would refuse.
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx, 0);
    return;
  }
  // Only the store: OpenSSL's own cache is per context (a reload would lose it) and would drop
  // the session of every connection that ends without the agent's close_notify.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL);
  SSL_CTX_set_num_tickets(ctx, 1);
  SSL_CTX_set_timeout(ctx, static_cast<long>(store->lifetime().count()));
  SSL_CTX_set_ex_data(ctx, store_index(), new std::shared_ptr<SessionStore>(store));
  SSL_CTX_sess_set_new_cb(ctx, new_session_cb);
  SSL_CTX_sess_set_get_cb(ctx, get_session_cb);
  SSL_CTX_set_client_hello_cb(ctx, client_hello_cb, nullptr);
}

}  // namespace opsagent::tls

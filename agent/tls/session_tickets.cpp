#include "agent/tls/session_tickets.hpp"

#include <algorithm>
#include <cstring>
#include <string>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

namespace opsagent::tls {
namespace {

// The session id context: a session of another application's context is never resumed here.
constexpr unsigned char kSessionIdContext[] = "opsagent";

// The largest chain a ticket carries (the handshake refuses larger certificate lists anyway).
constexpr std::size_t kMaxChainBytes = 32 * 1024;

// SSL_CTX ex_data: a heap std::shared_ptr<TicketKeyRing>, freed with the context.
void free_ring(void* /*parent*/, void* ptr, CRYPTO_EX_DATA* /*ad*/, int /*idx*/, long /*argl*/,
               void* /*argp*/) {
  delete static_cast<std::shared_ptr<TicketKeyRing>*>(ptr);
}

int ring_index() {
  static const int index =
      CRYPTO_get_ex_new_index(CRYPTO_EX_INDEX_SSL_CTX, 0, nullptr, nullptr, nullptr, free_ring);
  return index;
}

TicketKeyRing* ring_of(SSL* ssl) {
  auto* holder = static_cast<std::shared_ptr<TicketKeyRing>*>(
      SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ring_index()));
  return holder != nullptr ? holder->get() : nullptr;
}

int set_hmac_key(EVP_MAC_CTX* hctx, TicketKeyRing::Key& key) {
  char digest[] = "SHA256";
  const OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key.hmac.data(), key.hmac.size()),
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_end()};
  return EVP_MAC_CTX_set_params(hctx, params);
}

// OpenSSL's ticket key callback: 1 = use the key, 2 = use it and issue a fresh ticket, 0 = no
// such key (a full handshake follows), -1 = error.
int ticket_key_cb(SSL* ssl, unsigned char key_name[16], unsigned char* iv, EVP_CIPHER_CTX* cctx,
                  EVP_MAC_CTX* hctx, int enc) {
  TicketKeyRing* ring = ring_of(ssl);
  if (ring == nullptr) return enc ? -1 : 0;
  TicketKeyRing::Key key;
  const auto now = TicketKeyRing::Clock::now();
  int result = 1;
  if (enc) {
    if (!ring->encryption_key(key, now)) return -1;
    std::memcpy(key_name, key.name.data(), key.name.size());
    if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(EVP_aes_256_cbc())) != 1 ||
        EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), nullptr, key.aes.data(), iv) != 1) {
      result = -1;
    }
  } else {
    const auto found = ring->decryption_key(key_name, key, now);
    if (found == TicketKeyRing::Lookup::unknown) return 0;
    result = found == TicketKeyRing::Lookup::renew ? 2 : 1;
    if (EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), nullptr, key.aes.data(), iv) != 1) result = -1;
  }
  if (result > 0 && set_hmac_key(hctx, key) != 1) result = -1;
  OPENSSL_cleanse(&key, sizeof key);
  return result;
}

// A new ticket carries the client's intermediates; a ticket issued on a resumed connection keeps
// those of the session it descends from (OpenSSL copies the app data with the session).
int generate_ticket_cb(SSL* ssl, void* /*arg*/) {
  if (SSL_session_reused(ssl)) return 1;
  STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl);  // server side: without the leaf
  std::string der;
  for (int i = 0; chain != nullptr && i < sk_X509_num(chain); ++i) {
    unsigned char* out = nullptr;
    const int len = i2d_X509(sk_X509_value(chain, i), &out);
    if (len <= 0) return 0;
    der.append(reinterpret_cast<const char*>(out), static_cast<std::size_t>(len));
    OPENSSL_free(out);
    if (der.size() > kMaxChainBytes) return 0;
  }
  // Always set, also when empty: its presence says "this session's chain is known".
  static constexpr char kNone = '\0';
  const void* data = der.empty() ? static_cast<const void*>(&kNone) : der.data();
  return SSL_SESSION_set1_ticket_appdata(SSL_get0_session(ssl), data, der.empty() ? 1 : der.size());
}

// Tickets go only to a client that asks for them with the session_ticket extension (OpenSSL
// sends it unless SSL_OP_NO_TICKET: `opsctl --no-resume`, `openssl s_client -no_ticket`, a
// benchmark's full handshakes). Making a ticket costs the agent about a fifth of a full
// handshake (OpenSSL serialises the session with the client's certificate, parses it back and
// serialises it again; then our chain and the encryption), for a ticket such a client drops.
int client_hello_cb(SSL* ssl, int* /*alert*/, void* /*arg*/) {
  const unsigned char* ext = nullptr;
  std::size_t len = 0;
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_session_ticket, &ext, &len) != 1) {
    SSL_set_num_tickets(ssl, 0);
  }
  return SSL_CLIENT_HELLO_SUCCESS;
}

SSL_TICKET_RETURN decrypt_ticket_cb(SSL* /*ssl*/, SSL_SESSION* /*session*/,
                                    const unsigned char* /*name*/, size_t /*name_len*/,
                                    SSL_TICKET_STATUS status, void* /*arg*/) {
  switch (status) {
    case SSL_TICKET_SUCCESS:
      return SSL_TICKET_RETURN_USE;
    case SSL_TICKET_SUCCESS_RENEW:
      return SSL_TICKET_RETURN_USE_RENEW;
    case SSL_TICKET_FATAL_ERR_MALLOC:
    case SSL_TICKET_FATAL_ERR_OTHER:
      return SSL_TICKET_RETURN_ABORT;
    default:  // none, empty, or not decryptable: a full handshake
      return SSL_TICKET_RETURN_IGNORE_RENEW;
  }
}

}  // namespace

void TicketKeyRing::configure(std::chrono::seconds rotation, std::chrono::seconds lifetime) {
  const std::lock_guard lock(mutex_);
  rotation_ = rotation;
  lifetime_ = lifetime;
}

bool TicketKeyRing::encryption_key(Key& out, Clock::time_point now) {
  const std::lock_guard lock(mutex_);
  drop_expired(now);
  if (keys_.empty() || now - keys_.back().created >= rotation_) {
    Key fresh;
    fresh.created = now;
    if (RAND_bytes(fresh.name.data(), static_cast<int>(fresh.name.size())) != 1 ||
        RAND_priv_bytes(fresh.aes.data(), static_cast<int>(fresh.aes.size())) != 1 ||
        RAND_priv_bytes(fresh.hmac.data(), static_cast<int>(fresh.hmac.size())) != 1) {
      OPENSSL_cleanse(&fresh, sizeof fresh);
      ERR_clear_error();
      return false;
    }
    keys_.push_back(fresh);
    OPENSSL_cleanse(&fresh, sizeof fresh);
  }
  out = keys_.back();
  return true;
}

TicketKeyRing::Lookup TicketKeyRing::decryption_key(const unsigned char* name, Key& out,
                                                    Clock::time_point now) {
  const std::lock_guard lock(mutex_);
  drop_expired(now);
  for (std::size_t i = 0; i < keys_.size(); ++i) {
    if (std::memcmp(keys_[i].name.data(), name, keys_[i].name.size()) != 0) continue;
    out = keys_[i];
    const bool newest = i + 1 == keys_.size() && now - keys_[i].created < rotation_;
    return newest ? Lookup::current : Lookup::renew;
  }
  return Lookup::unknown;
}

// A key stops encrypting `rotation_` after it was made; its last ticket is valid for `lifetime_`
// more. After that nothing it sealed may be accepted: the key is wiped.
void TicketKeyRing::drop_expired(Clock::time_point now) {
  const auto expired = [&](const Key& k) { return now - k.created >= rotation_ + lifetime_; };
  for (auto& k : keys_) {
    if (!expired(k)) continue;
    OPENSSL_cleanse(k.aes.data(), k.aes.size());
    OPENSSL_cleanse(k.hmac.data(), k.hmac.size());
  }
  std::erase_if(keys_, expired);
}

TicketKeyRing::~TicketKeyRing() {
  for (auto& k : keys_) OPENSSL_cleanse(&k, sizeof k);
}

void configure_session_tickets(SSL_CTX* ctx, const TicketSettings& settings) {
  // Early data is replayable: never accepted (a ticket says max_early_data 0, and the server
  // reads none).
  SSL_CTX_set_max_early_data(ctx, 0);
  SSL_CTX_set_recv_max_early_data(ctx, 0);
  // Resumption must keep forward secrecy: the PSK only with an (EC)DHE exchange.
  SSL_CTX_clear_options(ctx, SSL_OP_ALLOW_NO_DHE_KEX);
  SSL_CTX_set_session_id_context(ctx, kSessionIdContext, sizeof kSessionIdContext - 1);
  // Stateless tickets only: no server-side session cache.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  if (!settings.keys) {
    // No resumption; no TLS 1.3 tickets either (SSL_OP_NO_TICKET alone still sends stateful
    // ones), so a client never holds a ticket the agent would refuse anyway.
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(ctx, 0);
    return;
  }
  SSL_CTX_clear_options(ctx, SSL_OP_NO_TICKET);
  SSL_CTX_set_num_tickets(ctx, 1);
  SSL_CTX_set_timeout(ctx, static_cast<long>(settings.lifetime.count()));
  SSL_CTX_set_ex_data(ctx, ring_index(), new std::shared_ptr<TicketKeyRing>(settings.keys));
  SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_key_cb);
  SSL_CTX_set_session_ticket_cb(ctx, generate_ticket_cb, decrypt_ticket_cb, nullptr);
  SSL_CTX_set_client_hello_cb(ctx, client_hello_cb, nullptr);
}

STACK_OF(X509) * resumed_peer_chain(SSL* ssl) {
  if (!SSL_session_reused(ssl)) return nullptr;
  void* data = nullptr;
  std::size_t len = 0;
  if (SSL_SESSION_get0_ticket_appdata(SSL_get0_session(ssl), &data, &len) != 1 || data == nullptr ||
      len == 0 || len > kMaxChainBytes) {
    return nullptr;
  }
  STACK_OF(X509)* chain = sk_X509_new_null();
  if (chain == nullptr) return nullptr;
  if (len == 1 && *static_cast<const unsigned char*>(data) == 0) return chain;  // none sent
  const auto* p = static_cast<const unsigned char*>(data);
  const auto* end = p + len;
  while (p < end) {
    X509* cert = d2i_X509(nullptr, &p, end - p);
    if (cert == nullptr || sk_X509_push(chain, cert) <= 0) {
      X509_free(cert);
      sk_X509_pop_free(chain, X509_free);
      ERR_clear_error();
      return nullptr;
    }
  }
  return chain;
}

}  // namespace opsagent::tls

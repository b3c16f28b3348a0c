// The agent's store of resumable sessions: each is taken once, none outlives its lifetime, the
// oldest make room; and what a server context with resumption on or off allows (no early data,
// never psk_ke without (EC)DHE, no stateless tickets).

#include "agent/tls/session_store.hpp"

#include <array>
#include <chrono>

#include <gtest/gtest.h>
#include <openssl/ssl.h>

namespace opsagent::tls {
namespace {
using namespace std::chrono_literals;

// A session with id {n, n, ...}; the store takes over the reference.
SSL_SESSION* session_with_id(unsigned char n) {
  SSL_SESSION* s = SSL_SESSION_new();
  std::array<unsigned char, 32> id{};
  id.fill(n);
  EXPECT_EQ(SSL_SESSION_set1_id(s, id.data(), id.size()), 1);
  return s;
}

SSL_SESSION* take(SessionStore& store, unsigned char n, SessionStore::Clock::time_point now) {
  std::array<unsigned char, 32> id{};
  id.fill(n);
  return store.take(id.data(), id.size(), now);
}

TEST(SessionStore, EachSessionIsTakenOnceAndNotAfterItsLifetime) {
  SessionStore store;
  store.configure(10, 20s);
  const auto t0 = SessionStore::Clock::now();
  SSL_SESSION* a = session_with_id(1);
  ASSERT_TRUE(store.put(a, t0));
  ASSERT_TRUE(store.put(session_with_id(2), t0 + 5s));
  EXPECT_EQ(store.size(), 2U);
  EXPECT_EQ(take(store, 3, t0), nullptr);  // unknown
  SSL_SESSION* got = take(store, 1, t0 + 10s);
  EXPECT_EQ(got, a);
  SSL_SESSION_free(got);
  EXPECT_EQ(take(store, 1, t0 + 10s), nullptr);  // resumable once
  EXPECT_EQ(take(store, 2, t0 + 25s), nullptr);  // 20 s after it was kept: gone
  EXPECT_EQ(store.size(), 0U);

  SSL_SESSION* no_id = SSL_SESSION_new();
  EXPECT_FALSE(store.put(no_id, t0));  // the caller keeps it
  SSL_SESSION_free(no_id);
}

TEST(SessionStore, TheOldestMakeRoomAndAShrinkDropsThem) {
  SessionStore store;
  store.configure(3, 3600s);
  const auto t0 = SessionStore::Clock::now();
  for (unsigned char n = 1; n <= 5; ++n) ASSERT_TRUE(store.put(session_with_id(n), t0));
  EXPECT_EQ(store.size(), 3U);
  EXPECT_EQ(take(store, 1, t0), nullptr);
  EXPECT_EQ(take(store, 2, t0), nullptr);
  store.configure(1, 3600s);
  EXPECT_EQ(store.size(), 1U);
  SSL_SESSION* newest = take(store, 5, t0);
  EXPECT_NE(newest, nullptr);
  SSL_SESSION_free(newest);
}

TEST(SessionStore, OnMeansStatefulTicketsOneEachNoEarlyDataAndAlwaysDhe) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  ASSERT_NE(ctx, nullptr);
  SSL_CTX_set_options(ctx, SSL_OP_ALLOW_NO_DHE_KEX);  // whatever was there before
  const auto store = std::make_shared<SessionStore>();
  store->configure(4096, 7200s);
  configure_resumption(ctx, store);
  EXPECT_EQ(SSL_CTX_get_options(ctx) & SSL_OP_ALLOW_NO_DHE_KEX, 0U);
  // On a server: no stateless tickets, the TLS 1.3 ticket is the session's id.
  EXPECT_NE(SSL_CTX_get_options(ctx) & SSL_OP_NO_TICKET, 0U);
  EXPECT_EQ(SSL_CTX_get_num_tickets(ctx), 1U);
  EXPECT_EQ(SSL_CTX_get_max_early_data(ctx), 0U);
  EXPECT_EQ(SSL_CTX_get_recv_max_early_data(ctx), 0U);
  EXPECT_EQ(SSL_CTX_get_timeout(ctx), 7200);
  EXPECT_EQ(SSL_CTX_get_session_cache_mode(ctx),
            SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL);
  EXPECT_NE(SSL_CTX_sess_get_new_cb(ctx), nullptr);
  EXPECT_NE(SSL_CTX_sess_get_get_cb(ctx), nullptr);
  SSL_CTX_free(ctx);

  ctx = SSL_CTX_new(TLS_server_method());
  configure_resumption(ctx, nullptr);
  EXPECT_NE(SSL_CTX_get_options(ctx) & SSL_OP_NO_TICKET, 0U);
  EXPECT_EQ(SSL_CTX_get_num_tickets(ctx), 0U);
  EXPECT_EQ(SSL_CTX_get_session_cache_mode(ctx), SSL_SESS_CACHE_OFF);
  SSL_CTX_free(ctx);
}

}  // namespace
}  // namespace opsagent::tls

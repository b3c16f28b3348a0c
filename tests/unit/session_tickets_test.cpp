// The agent's ticket key ring: the newest key seals, older keys open their tickets until no
// ticket they sealed can be valid, then they are gone; and what a server context with tickets
// on or off allows (no early data, never psk_ke without (EC)DHE).

#include "agent/tls/session_tickets.hpp"

#include <chrono>

#include <gtest/gtest.h>
#include <openssl/ssl.h>

namespace opsagent::tls {
namespace {
using namespace std::chrono_literals;
using Lookup = TicketKeyRing::Lookup;

TEST(TicketKeyRing, RotatesThenForgetsKeysOnceTheirTicketsExpired) {
  TicketKeyRing ring;
  ring.configure(10s, 20s);  // rotation, lifetime
  const auto t0 = TicketKeyRing::Clock::now();
  TicketKeyRing::Key a, a2, b, found;
  ASSERT_TRUE(ring.encryption_key(a, t0));
  ASSERT_TRUE(ring.encryption_key(a2, t0 + 5s));
  EXPECT_EQ(a.name, a2.name);  // within the rotation: the same key
  EXPECT_EQ(ring.decryption_key(a.name.data(), found, t0 + 5s), Lookup::current);
  EXPECT_EQ(found.aes, a.aes);

  ASSERT_TRUE(ring.encryption_key(b, t0 + 11s));
  EXPECT_NE(a.name, b.name);  // rotated
  EXPECT_NE(a.aes, b.aes);
  // The old key still opens its tickets, and the client gets one under the new key.
  EXPECT_EQ(ring.decryption_key(a.name.data(), found, t0 + 11s), Lookup::renew);
  EXPECT_EQ(ring.decryption_key(b.name.data(), found, t0 + 11s), Lookup::current);
  // rotation + lifetime after it was made, nothing sealed with `a` can be valid: gone.
  EXPECT_EQ(ring.decryption_key(a.name.data(), found, t0 + 30s), Lookup::unknown);
  EXPECT_EQ(ring.decryption_key(b.name.data(), found, t0 + 30s), Lookup::renew);
  const unsigned char unknown[16] = {};
  EXPECT_EQ(ring.decryption_key(unknown, found, t0 + 30s), Lookup::unknown);
}

TEST(SessionTickets, OnMeansOneTicketNoEarlyDataAndAlwaysDhe) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  ASSERT_NE(ctx, nullptr);
  SSL_CTX_set_options(ctx, SSL_OP_ALLOW_NO_DHE_KEX);  // whatever was there before
  configure_session_tickets(ctx, TicketSettings{std::make_shared<TicketKeyRing>(), 7200s});
  EXPECT_EQ(SSL_CTX_get_options(ctx) & SSL_OP_ALLOW_NO_DHE_KEX, 0U);
  EXPECT_EQ(SSL_CTX_get_options(ctx) & SSL_OP_NO_TICKET, 0U);
  EXPECT_EQ(SSL_CTX_get_num_tickets(ctx), 1U);
  EXPECT_EQ(SSL_CTX_get_max_early_data(ctx), 0U);
  EXPECT_EQ(SSL_CTX_get_recv_max_early_data(ctx), 0U);
  EXPECT_EQ(SSL_CTX_get_timeout(ctx), 7200);
  EXPECT_EQ(SSL_CTX_get_session_cache_mode(ctx), SSL_SESS_CACHE_OFF);
  SSL_CTX_free(ctx);

  ctx = SSL_CTX_new(TLS_server_method());
  configure_session_tickets(ctx, TicketSettings{});
  EXPECT_NE(SSL_CTX_get_options(ctx) & SSL_OP_NO_TICKET, 0U);
  EXPECT_EQ(SSL_CTX_get_num_tickets(ctx), 0U);
  SSL_CTX_free(ctx);
}

}  // namespace
}  // namespace opsagent::tls

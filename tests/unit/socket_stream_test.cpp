// tls::SocketStream over real TLS 1.3 on loopback TCP, both ends in this process: data both
// ways, close_notify and truncation, cancellation, a closed socket whose descriptor number is
// reused, completion never inside the initiating call, waiting for bytes OpenSSL already holds,
// a refused handshake.

#include "agent/tls/socket_stream.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <exception>
#include <optional>
#include <string>
#include <thread>
#include <tuple>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "agent/common/with_deadline.hpp"

namespace opsagent::tls {
namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using asio::ip::tcp;
using boost::system::error_code;
using namespace std::chrono_literals;

constexpr auto kUse = asio::as_tuple(asio::use_awaitable);

// A self-signed P-256 certificate, the only trust anchor of both ends.
struct SelfSigned {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* cert = X509_new();
  explicit SelfSigned(const char* cn) {
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_set_pubkey(cert, key);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn),
                               -1, -1, 0);
    X509_set_issuer_name(cert, name);
    X509_sign(cert, key, EVP_sha256());
  }
  SelfSigned(const SelfSigned&) = delete;
  SelfSigned& operator=(const SelfSigned&) = delete;
  ~SelfSigned() {
    X509_free(cert);
    EVP_PKEY_free(key);
  }
  ssl::context context(ssl::context::method method, const SelfSigned& trusted) const {
    ssl::context ctx(method);
    SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_3_VERSION);
    SSL_CTX_set_num_tickets(ctx.native_handle(), 0);  // nothing left unread after a handshake
    SSL_CTX_use_certificate(ctx.native_handle(), cert);
    SSL_CTX_use_PrivateKey(ctx.native_handle(), key);
    X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx.native_handle()), trusted.cert);
    ctx.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
    return ctx;
  }
};

class SocketStreamTest : public ::testing::Test {
 protected:
  SocketStreamTest() {
    acceptor_.open(tcp::v4());
    acceptor_.bind({asio::ip::make_address("127.0.0.1"), 0});
    acceptor_.listen();
  }

  // A connected pair of plain TCP sockets: (accepted, connected).
  std::pair<tcp::socket, tcp::socket> tcp_pair() {
    tcp::socket client(io_);
    client.connect(acceptor_.local_endpoint());
    return {acceptor_.accept(), std::move(client)};
  }

  // Runs both coroutines to their end (at most 20 s); a failed assertion or exception in either
  // is reported.
  void run(asio::awaitable<void> server, asio::awaitable<void> client) {
    int done = 0;
    auto finished = [&](const std::exception_ptr& e) {
      ++done;
      if (e) failure_ = e;
    };
    asio::co_spawn(io_, std::move(server), finished);
    asio::co_spawn(io_, std::move(client), finished);
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (done < 2 && std::chrono::steady_clock::now() < deadline) {
      io_.restart();
      io_.run_for(10ms);
    }
    ASSERT_EQ(done, 2) << "timed out";
    if (failure_) std::rethrow_exception(failure_);
  }

  // Handshakes a fresh pair of streams.
  void connect() {
    auto [accepted, connected] = tcp_pair();
    server_.emplace(std::move(accepted), server_ctx_);
    client_.emplace(std::move(connected), client_ctx_);
    run(handshake(*server_, ssl::stream_base::server),
        handshake(*client_, ssl::stream_base::client));
  }

  static asio::awaitable<void> handshake(SocketStream& s, ssl::stream_base::handshake_type type) {
    const auto [ec] = co_await s.async_handshake(type, kUse);
    EXPECT_FALSE(ec) << ec.message();
  }

  asio::io_context io_;
  tcp::acceptor acceptor_{io_};
  SelfSigned server_cert_{"server"};
  SelfSigned client_cert_{"client"};
  ssl::context server_ctx_ = server_cert_.context(ssl::context::tls_server, client_cert_);
  ssl::context client_ctx_ = client_cert_.context(ssl::context::tls_client, server_cert_);
  std::optional<SocketStream> server_;
  std::optional<SocketStream> client_;
  std::exception_ptr failure_;
};

TEST_F(SocketStreamTest, CarriesDataBothWaysAndEndsWithCloseNotify) {
  connect();
  std::string sent(1 << 20, '\0');
  for (std::size_t i = 0; i < sent.size(); ++i) sent[i] = static_cast<char>(i * 7 % 251);
  std::string received;
  auto server = [&]() -> asio::awaitable<void> {
    std::array<char, 4096> buf{};
    while (received.size() < sent.size()) {
      const auto [ec, n] = co_await server_->async_read_some(asio::buffer(buf), kUse);
      EXPECT_FALSE(ec) << ec.message();
      if (ec) co_return;
      received.append(buf.data(), n);
    }
    const auto [wec, written] = co_await asio::async_write(*server_, asio::buffer("ok\n", 3), kUse);
    EXPECT_FALSE(wec);
    // The client's close_notify ends our read with eof; ours answers it.
    const auto [eof, none] = co_await server_->async_read_some(asio::buffer(buf), kUse);
    EXPECT_EQ(eof, asio::error::eof);
    const auto [sec] = co_await server_->async_shutdown(kUse);
    EXPECT_FALSE(sec) << sec.message();
  };
  auto client = [&]() -> asio::awaitable<void> {
    const auto [ec, n] = co_await asio::async_write(*client_, asio::buffer(sent), kUse);
    EXPECT_FALSE(ec) << ec.message();
    EXPECT_EQ(n, sent.size());
    std::array<char, 3> reply{};
    const auto [rec, got] = co_await asio::async_read(*client_, asio::buffer(reply), kUse);
    EXPECT_FALSE(rec);
    EXPECT_EQ(std::string(reply.data(), got), "ok\n");
    const auto [sec] = co_await client_->async_shutdown(kUse);
    EXPECT_FALSE(sec) << sec.message();
  };
  run(server(), client());
  EXPECT_EQ(received, sent);
}

TEST_F(SocketStreamTest, EofWithoutCloseNotifyIsTruncated) {
  connect();
  client_->next_layer().shutdown(tcp::socket::shutdown_send);  // a FIN, no close_notify
  auto server = [&]() -> asio::awaitable<void> {
    std::array<char, 64> buf{};
    const auto [ec, n] = co_await server_->async_read_some(asio::buffer(buf), kUse);
    EXPECT_EQ(ec, ssl::error::stream_truncated) << ec.message();
    EXPECT_EQ(n, 0U);
  };
  run(server(), []() -> asio::awaitable<void> { co_return; }());
}

TEST_F(SocketStreamTest, DeadlineAndSocketCancelEndAPendingRead) {
  connect();
  auto server = [&]() -> asio::awaitable<void> {
    std::array<char, 64> buf{};
    const auto raced = co_await common::with_deadline(
        server_->async_read_some(asio::buffer(buf), kUse), std::chrono::milliseconds(50));
    EXPECT_FALSE(raced.has_value()) << "a read with nothing to read ended before its deadline";
    asio::steady_timer soon(server_->get_executor(), 20ms);
    soon.async_wait([this](const error_code&) {
      error_code ignored;
      server_->lowest_layer().cancel(ignored);
    });
    const auto [ec, n] = co_await server_->async_read_some(asio::buffer(buf), kUse);
    EXPECT_EQ(ec, asio::error::operation_aborted);
  };
  run(server(), []() -> asio::awaitable<void> { co_return; }());
}

// A deadline that fires while the handshake is between two readiness waits (a byte arrived and
// its completion is queued on the strand, behind the timer's) must still end it: the
// cancellation is remembered, not lost with the wait that had already completed. Slowloris: one
// byte every 100 us of a record that never completes in time, on two threads as in the agent.
TEST_F(SocketStreamTest, DeadlineEndsAHandshakeFedOneByteAtATime) {
  for (int round = 0; round < 150; ++round) {  // the race is hit in 3-10 % of rounds
    auto [accepted, connected] = tcp_pair();
    asio::io_context threads;
    auto strand = asio::make_strand(threads);
    SocketStream stream(tcp::socket(strand, tcp::v4(), accepted.release()), server_ctx_);
    std::atomic<bool> done{false};
    std::thread dribble([&done, &raw = connected] {
      std::string record("\x16\x03\x01\x40\x00", 5);  // a handshake record of 16 KiB
      record.resize(5 + 16384, '\0');
      for (std::size_t i = 0; i < record.size() && !done; ++i) {
        error_code ignored;
        asio::write(raw, asio::buffer(&record[i], 1), ignored);
        std::this_thread::sleep_for(100us);
      }
    });
    std::atomic<long> elapsed_ms{-1};
    auto server = [&]() -> asio::awaitable<void> {
      const auto started = std::chrono::steady_clock::now();
      const auto shaken = co_await common::with_deadline(
          stream.async_handshake(ssl::stream_base::server, kUse), std::chrono::milliseconds(20));
      elapsed_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::steady_clock::now() - started)
                       .count();
      EXPECT_FALSE(shaken.has_value());
      done = true;
    };
    asio::co_spawn(strand, server(), asio::detached);
    std::thread second([&threads] { threads.run_for(3s); });
    threads.run_for(3s);
    second.join();
    done = true;
    dribble.join();
    ASSERT_GE(elapsed_ms.load(), 0) << "round " << round << ": the handshake never ended";
    ASSERT_LT(elapsed_ms.load(), 1000) << "round " << round;
  }
}

TEST_F(SocketStreamTest, ClosedSocketNeverTouchesItsReusedDescriptor) {
  connect();
  const int old_fd = server_->next_layer().native_handle();
  server_->next_layer().close();
  // The lowest free descriptor number is the one just closed: the next socket gets it.
  auto [accepted, connected] = tcp_pair();
  const bool first = connected.native_handle() == old_fd;
  tcp::socket& reused = first ? connected : accepted;
  tcp::socket& other = first ? accepted : connected;
  ASSERT_EQ(reused.native_handle(), old_fd) << "the descriptor number was not reused";
  asio::write(other, asio::buffer("not for the TLS stream", 22));
  auto server = [&]() -> asio::awaitable<void> {
    std::array<char, 64> buf{};
    const auto [ec, n] = co_await server_->async_read_some(asio::buffer(buf), kUse);
    EXPECT_EQ(ec, asio::error::bad_descriptor);
    const auto [wec, w] = co_await server_->async_write_some(asio::buffer("x", 1), kUse);
    EXPECT_EQ(wec, asio::error::bad_descriptor);
  };
  run(server(), []() -> asio::awaitable<void> { co_return; }());
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(reused.available(), 22U) << "the stream read the other connection's bytes";
  EXPECT_EQ(other.available(), 0U) << "the stream wrote to the other connection";
}

TEST_F(SocketStreamTest, NeverCompletesInsideTheInitiatingCall) {
  connect();
  bool wrote = false;
  bool initiating = true;
  client_->async_write_some(asio::buffer("hello\n", 6), [&](const error_code& ec, std::size_t n) {
    EXPECT_FALSE(initiating);
    EXPECT_FALSE(ec);
    EXPECT_EQ(n, 6U);
    wrote = true;
  });
  initiating = false;
  io_.restart();
  io_.run_for(2s);  // returns when the write is done
  ASSERT_TRUE(wrote);

  std::array<char, 16> buf{};
  std::size_t read = 0;
  // The record is on the socket already: OpenSSL reads it within the initiating call.
  std::this_thread::sleep_for(20ms);
  initiating = true;
  server_->async_read_some(asio::buffer(buf), [&](const error_code& ec, std::size_t n) {
    EXPECT_FALSE(initiating);
    EXPECT_FALSE(ec);
    read = n;
  });
  initiating = false;
  io_.restart();
  io_.run_for(2s);
  EXPECT_EQ(std::string(buf.data(), read), "hello\n");
}

TEST_F(SocketStreamTest, WaitReadableSeesBytesOpenSslAlreadyHolds) {
  connect();
  auto server = [&]() -> asio::awaitable<void> {
    const auto [ec] = co_await server_->async_wait_readable(kUse);
    EXPECT_FALSE(ec);
    std::array<char, 1> one{};
    const auto [rec, n] = co_await server_->async_read_some(asio::buffer(one), kUse);
    EXPECT_EQ(std::string(one.data(), n), "a");
    // The rest of the record is inside OpenSSL now, not on the socket: no waiting for it.
    const auto again = co_await common::with_deadline(server_->async_wait_readable(kUse),
                                                      std::chrono::milliseconds(2000));
    EXPECT_TRUE(again.has_value()) << "waited on the socket for bytes OpenSSL already held";
    const auto [rec2, n2] = co_await server_->async_read_some(asio::buffer(one), kUse);
    EXPECT_EQ(std::string(one.data(), n2), "b");
  };
  auto client = [&]() -> asio::awaitable<void> {
    const auto [ec, n] = co_await asio::async_write(*client_, asio::buffer("ab", 2), kUse);
    EXPECT_FALSE(ec);
  };
  run(server(), client());
}

TEST_F(SocketStreamTest, UntrustedPeerFailsTheHandshakeWithAnSslError) {
  const SelfSigned stranger("stranger");
  ssl::context stranger_ctx = stranger.context(ssl::context::tls_client, server_cert_);
  auto [accepted, connected] = tcp_pair();
  server_.emplace(std::move(accepted), server_ctx_);
  client_.emplace(std::move(connected), stranger_ctx);
  auto server = [&]() -> asio::awaitable<void> {
    const auto [ec] = co_await server_->async_handshake(ssl::stream_base::server, kUse);
    EXPECT_EQ(ec.category(), asio::error::get_ssl_category()) << ec.message();
    EXPECT_NE(SSL_get_verify_result(server_->native_handle()), X509_V_OK);
  };
  auto client = [&]() -> asio::awaitable<void> {
    co_await client_->async_handshake(ssl::stream_base::client, kUse);
    // TLS 1.3: the client learns of the refusal on its first read.
    std::array<char, 16> buf{};
    const auto [ec, n] = co_await client_->async_read_some(asio::buffer(buf), kUse);
    EXPECT_TRUE(ec);
  };
  run(server(), client());
}

}  // namespace
}  // namespace opsagent::tls

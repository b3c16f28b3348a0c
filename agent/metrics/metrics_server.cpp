#include "agent/metrics/metrics_server.hpp"

#include <chrono>
#include <stdexcept>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <spdlog/spdlog.h>

namespace opsagent::metrics {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
// NOLINTNEXTLINE(readability-identifier-naming): the Asio idiom
using tcp = asio::ip::tcp;
using boost::system::error_code;

constexpr auto kUse = asio::as_tuple(asio::use_awaitable);
constexpr std::chrono::seconds kTimeout{5};
constexpr std::size_t kMaxRequestBytes = 8192;
constexpr int kMaxConnections = 8;
constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

http::response<http::string_body> respond(const http::request<http::empty_body>& req,
                                          const MetricsServer::Render& render) {
  http::response<http::string_body> res;
  res.version(req.version());
  res.keep_alive(false);
  res.set(http::field::server, "opsagent");
  if (req.method() != http::verb::get && req.method() != http::verb::head) {
    res.result(http::status::method_not_allowed);
    res.set(http::field::allow, "GET, HEAD");
    res.set(http::field::content_type, "text/plain");
    res.body() = "only GET /metrics is served\n";
  } else if (req.target() != "/metrics") {
    res.result(http::status::not_found);
    res.set(http::field::content_type, "text/plain");
    res.body() = "only GET /metrics is served\n";
  } else {
    res.result(http::status::ok);
    res.set(http::field::content_type, kContentType);
    res.body() = render();
  }
  res.prepare_payload();
  if (req.method() == http::verb::head) res.body().clear();
  return res;
}

http::response<http::string_body> bad_request(const std::string& why) {
  http::response<http::string_body> res{http::status::bad_request, 11};
  res.keep_alive(false);
  res.set(http::field::content_type, "text/plain");
  res.body() = why + "\n";
  res.prepare_payload();
  return res;
}

// One request, one response. `transport` is the TCP stream under `stream` (the same object in plain
// HTTP), whose expiry bounds each step.
template <typename Stream>
asio::awaitable<void> exchange(Stream& stream, beast::tcp_stream& transport,
                               const MetricsServer::Render& render) {
  beast::flat_buffer buffer(kMaxRequestBytes);
  http::request_parser<http::empty_body> parser;
  parser.header_limit(kMaxRequestBytes);
  transport.expires_after(kTimeout);
  const auto read = co_await http::async_read(stream, buffer, parser, kUse);
  const error_code read_ec = std::get<0>(read);
  http::response<http::string_body> res;
  if (!read_ec) {
    res = respond(parser.get(), render);
  } else if (read_ec == http::error::end_of_stream || read_ec == beast::error::timeout ||
             read_ec == asio::error::connection_reset || read_ec == asio::error::eof) {
    co_return;  // nothing to answer, or nobody to answer to
  } else {
    res = bad_request("bad request: " + read_ec.message());
  }
  transport.expires_after(kTimeout);
  const auto written = co_await http::async_write(stream, res, kUse);
  (void)written;  // the client may have gone; nothing more to do either way
}

// A scope guard built as an aggregate; never copied.
struct ActiveSlot {  // NOLINT(cppcoreguidelines-special-member-functions)
  std::shared_ptr<std::atomic<int>> active;
  ~ActiveSlot() { active->fetch_sub(1); }
};

asio::awaitable<void> serve_connection(tcp::socket socket, std::shared_ptr<asio::ssl::context> tls,
                                       std::shared_ptr<const MetricsServer::Render> render,
                                       std::shared_ptr<std::atomic<int>> active) {
  const ActiveSlot slot{std::move(active)};
  if (!tls) {
    beast::tcp_stream stream(std::move(socket));
    co_await exchange(stream, stream, *render);
    error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    co_return;
  }
  beast::ssl_stream<beast::tcp_stream> stream(beast::tcp_stream(std::move(socket)), *tls);
  stream.next_layer().expires_after(kTimeout);
  const auto handshake = co_await stream.async_handshake(asio::ssl::stream_base::server, kUse);
  if (std::get<0>(handshake)) co_return;  // no certificate of the CA, or no TLS at all
  co_await exchange(stream, stream.next_layer(), *render);
  stream.next_layer().expires_after(kTimeout);
  const auto shutdown = co_await stream.async_shutdown(kUse);
  (void)shutdown;
}

}  // namespace

MetricsServer::MetricsServer(asio::io_context& io, tcp::endpoint where, TlsContext tls,
                             Render render)
    : io_(io),
      where_(std::move(where)),
      acceptor_(asio::make_strand(io)),
      tls_(std::move(tls)),
      render_(std::make_shared<const Render>(std::move(render))) {}

void MetricsServer::start() {
  error_code ec;
  acceptor_.open(where_.protocol(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(where_, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (!ec) bound_ = acceptor_.local_endpoint(ec);
  if (ec) {
    throw std::runtime_error("metrics.listen: cannot listen on " + where_.address().to_string() +
                             ":" + std::to_string(where_.port()) + ": " + ec.message());
  }
  asio::co_spawn(acceptor_.get_executor(), accept_loop(), [](const std::exception_ptr& e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      spdlog::error("metrics endpoint stopped: {}", ex.what());
    }
  });
}

void MetricsServer::stop() {
  asio::post(acceptor_.get_executor(), [this] {
    error_code ignored;
    acceptor_.close(ignored);
  });
}

asio::awaitable<void> MetricsServer::accept_loop() {
  for (;;) {
    // Each connection gets a strand of its own (a named local: see docs/development.md, GCC 12).
    auto strand = asio::make_strand(io_);
    auto accepted = co_await acceptor_.async_accept(strand, kUse);
    const error_code ec = std::get<0>(accepted);
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
    if (ec) {
      // Out of descriptors or memory: let the condition pass rather than spin on it.
      spdlog::warn("metrics endpoint: accept failed: {}", ec.message());
      asio::steady_timer pause(acceptor_.get_executor(), std::chrono::milliseconds(100));
      const auto waited = co_await pause.async_wait(kUse);
      (void)waited;
      continue;
    }
    tcp::socket socket = std::move(std::get<1>(accepted));
    if (active_->fetch_add(1) >= kMaxConnections) {
      active_->fetch_sub(1);
      error_code ignored;
      socket.close(ignored);
      continue;
    }
    auto executor = socket.get_executor();
    auto tls = tls_ ? tls_() : nullptr;
    asio::co_spawn(executor, serve_connection(std::move(socket), std::move(tls), render_, active_),
                   [](const std::exception_ptr& e) {
                     if (!e) return;
                     try {
                       std::rethrow_exception(e);
                     } catch (const std::exception& ex) {
                       spdlog::warn("metrics endpoint: connection failed: {}", ex.what());
                     }
                   });
  }
}

}  // namespace opsagent::metrics

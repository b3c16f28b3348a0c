#pragma once
// The Prometheus endpoint: GET /metrics on its own listener, plain HTTP/1.1 or HTTPS with a
// required client certificate, one request per connection. Built on Boost.Beast. Requests are
// bounded (8 KiB of header, no body) and timed (5 s for the whole exchange); at most 8
// connections at a time, further ones are closed at once. The body is rendered on the
// connection's strand by `render`, which must not block (it reads atomics and snapshots).

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>

namespace opsagent::metrics {

class MetricsServer {
 public:
  using Render = std::function<std::string()>;
  /// The TLS context for a new connection (the agent's current one), or null for plain HTTP.
  using TlsContext = std::function<std::shared_ptr<boost::asio::ssl::context>()>;

  MetricsServer(boost::asio::io_context& io, boost::asio::ip::tcp::endpoint where, TlsContext tls,
                Render render);
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;
  ~MetricsServer() = default;

  /// Binds and starts accepting. Throws std::runtime_error naming the address when it cannot
  /// bind.
  void start();
  /// Stops accepting; connections in progress end within their timeout. Thread-safe.
  void stop();
  /// The bound address (port 0 in the configuration: the port the kernel chose).
  [[nodiscard]] boost::asio::ip::tcp::endpoint endpoint() const { return bound_; }

 private:
  boost::asio::awaitable<void> accept_loop();

  boost::asio::io_context& io_;
  boost::asio::ip::tcp::endpoint where_;
  boost::asio::ip::tcp::endpoint bound_;
  boost::asio::ip::tcp::acceptor acceptor_;  // used on its own strand
  TlsContext tls_;
  std::shared_ptr<const Render> render_;
  std::shared_ptr<std::atomic<int>> active_ = std::make_shared<std::atomic<int>>(0);
};

}  // namespace opsagent::metrics

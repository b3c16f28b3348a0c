#pragma once
// A hostile (or buggy) agent for client tests: a TLS server on 127.0.0.1, port 0, presenting
// the test PKI's trusted server certificate, that sends whatever bytes a test scripts. It
// speaks just enough of the protocol (docs/protocol.md) to get past opsctl's checks: a
// greeting line, then one reply per command line.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>

namespace opsagent::testing {

/// What the fake agent says.
struct FakeAgentScript {
  /// Sent after the TLS handshake, with its LF, e.g. "OK opsagent 0.1.0 ready host=x ...\n".
  std::string greeting;
  /// The bytes sent for one command line (received without its LF); they should end with a
  /// final line ("OK ...\n" or "ERR ...\n"). Called on the server's thread.
  std::function<std::string(const std::string& command)> reply;
};

/// Serves any number of connections, one I/O thread, until destroyed. The client certificate
/// is requested and must chain to the test CA, as with the real agent.
class FakeAgent {
 public:
  /// Listens and starts the thread; the test fails (ADD_FAILURE) and port() is 0 when it
  /// cannot.
  explicit FakeAgent(FakeAgentScript script);
  /// Stops the thread and closes every connection.
  ~FakeAgent();
  FakeAgent(const FakeAgent&) = delete;
  FakeAgent& operator=(const FakeAgent&) = delete;

  [[nodiscard]] std::uint16_t port() const { return port_; }
  /// Command lines received so far, over all connections.
  [[nodiscard]] std::size_t commands() const { return commands_.load(); }

 private:
  class Session;
  void accept();

  FakeAgentScript script_;
  boost::asio::io_context io_;
  boost::asio::ssl::context tls_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::uint16_t port_ = 0;
  std::atomic<std::size_t> commands_{0};
  std::thread thread_;
};

}  // namespace opsagent::testing

#include "tests/support/fake_agent.hpp"

#include <exception>

#include <boost/asio/read_until.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <gtest/gtest.h>

#include "tests/support/test_pki.hpp"

namespace opsagent::testing {
namespace asio = boost::asio;
using boost::system::error_code;

// One connection: handshake, greeting, then read a line / write its reply until the client
// goes. Kept alive by the handlers that hold it; ends when the io_context stops.
class FakeAgent::Session : public std::enable_shared_from_this<FakeAgent::Session> {
 public:
  Session(FakeAgent& owner, asio::ip::tcp::socket socket)
      : owner_(owner), stream_(std::move(socket), owner.tls_) {}

  void start() {
    auto self = shared_from_this();
    stream_.async_handshake(asio::ssl::stream_base::server, [self](const error_code& ec) {
      if (!ec) self->send(self->owner_.script_.greeting);
    });
  }

 private:
  void send(const std::string& bytes) {
    out_ = bytes;
    auto self = shared_from_this();
    asio::async_write(stream_, asio::buffer(out_), [self](const error_code& ec, std::size_t) {
      if (!ec) self->read();
    });
  }

  void read() {
    auto self = shared_from_this();
    asio::async_read_until(stream_, in_, '\n', [self](const error_code& ec, std::size_t n) {
      if (ec) return;  // the client went away
      std::string line(asio::buffers_begin(self->in_.data()),
                       asio::buffers_begin(self->in_.data()) + static_cast<std::ptrdiff_t>(n));
      self->in_.consume(n);
      line.pop_back();
      ++self->owner_.commands_;
      self->send(self->owner_.script_.reply(line));
    });
  }

  FakeAgent& owner_;
  asio::ssl::stream<asio::ip::tcp::socket> stream_;
  asio::streambuf in_;
  std::string out_;
};

FakeAgent::FakeAgent(FakeAgentScript script)
    : script_(std::move(script)), tls_(asio::ssl::context::tls_server), acceptor_(io_) {
  try {
    const TestPki& pki = TestPki::get();
    tls_.use_certificate_chain_file(pki.cert("server").string());
    tls_.use_private_key_file(pki.key("server").string(), asio::ssl::context::pem);
    tls_.load_verify_file(pki.ca().string());
    tls_.set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert);
    const asio::ip::tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(asio::ip::tcp::acceptor::reuse_address(true));
    acceptor_.bind(endpoint);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "FakeAgent: cannot listen: " << e.what();
    return;
  }
  accept();
  thread_ = std::thread([this] { io_.run(); });
}

FakeAgent::~FakeAgent() {
  io_.stop();
  if (thread_.joinable()) thread_.join();
}

void FakeAgent::accept() {
  acceptor_.async_accept([this](const error_code& ec, asio::ip::tcp::socket socket) {
    if (ec) return;  // the acceptor is closed
    std::make_shared<Session>(*this, std::move(socket))->start();
    accept();
  });
}

}  // namespace opsagent::testing

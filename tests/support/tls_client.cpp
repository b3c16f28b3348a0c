#include "tests/support/tls_client.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>
#include <nlohmann/json.hpp>
#include <openssl/ssl.h>

namespace opsagent::testing {
namespace asio = boost::asio;
using boost::system::error_code;

bool is_final_line(const std::string& line) {
  return line == "OK" || line.rfind("OK ", 0) == 0 || line.rfind("ERR ", 0) == 0;
}

TlsClient::TlsClient(ClientOptions options)
    : options_(std::move(options)), ctx_(asio::ssl::context::tls_client) {
  SSL_CTX* raw = ctx_.native_handle();
  if (options_.min_version != 0) SSL_CTX_set_min_proto_version(raw, options_.min_version);
  if (options_.max_version != 0) SSL_CTX_set_max_proto_version(raw, options_.max_version);
  ctx_.load_verify_file(options_.ca.string());
  if (!options_.cert.empty()) {
    ctx_.use_certificate_chain_file(options_.cert.string());
    ctx_.use_private_key_file(options_.key.string(), asio::ssl::context::pem);
  }
  ctx_.set_verify_mode(asio::ssl::verify_peer);
  stream_.emplace(io_, ctx_);
}

TlsClient::~TlsClient() {
  error_code ec;
  stream_->next_layer().close(ec);
}

template <typename Start>
error_code TlsClient::run(Start start, std::chrono::milliseconds timeout) {
  error_code result = asio::error::would_block;
  io_.restart();
  start(result);
  io_.run_for(timeout);
  if (result == asio::error::would_block) {
    error_code ec;
    stream_->next_layer().cancel(ec);
    io_.restart();
    io_.run();
    result = asio::error::timed_out;
  }
  return result;
}

std::string TlsClient::connect(const std::string& host, std::uint16_t port,
                               std::chrono::milliseconds timeout) {
  const asio::ip::tcp::endpoint ep(asio::ip::make_address(host), port);
  error_code ec = run(
      [&](error_code& r) { stream_->next_layer().async_connect(ep, [&](error_code e) { r = e; }); },
      timeout);
  if (ec) return last_error_ = "connect: " + ec.message();
  // SSL_set_tlsext_host_name is a macro with a C cast; call what it expands to.
  SSL_ctrl(stream_->native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
           const_cast<char*>(options_.host_name.c_str()));
  stream_->set_verify_callback(asio::ssl::host_name_verification(options_.host_name));
  ec = run(
      [&](error_code& r) {
        stream_->async_handshake(asio::ssl::stream_base::client, [&](error_code e) { r = e; });
      },
      timeout);
  if (ec) return last_error_ = "handshake: " + ec.message();
  return {};
}

bool TlsClient::write(const std::string& bytes, std::chrono::milliseconds timeout) {
  const error_code ec = run(
      [&](error_code& r) {
        asio::async_write(*stream_, asio::buffer(bytes), [&](error_code e, std::size_t) { r = e; });
      },
      timeout);
  if (ec) last_error_ = "write: " + ec.message();
  return !ec;
}

std::optional<std::string> TlsClient::read_line(std::chrono::milliseconds timeout) {
  const error_code ec = run(
      [&](error_code& r) {
        asio::async_read_until(*stream_, asio::dynamic_buffer(buffer_), '\n',
                               [&](error_code e, std::size_t) { r = e; });
      },
      timeout);
  const auto lf = buffer_.find('\n');
  timed_out_ = ec == asio::error::timed_out;
  if (lf == std::string::npos) {
    last_error_ = ec ? ec.message() : "no line";
    return std::nullopt;
  }
  std::string line = buffer_.substr(0, lf);
  buffer_.erase(0, lf + 1);
  return line;
}

std::vector<std::string> TlsClient::read_reply(std::chrono::milliseconds timeout) {
  std::vector<std::string> lines;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    auto line = read_line(std::max(left, std::chrono::milliseconds(1)));
    if (!line) return lines;
    lines.push_back(*line);
    if (!line->empty() && line->front() == '{') {
      const auto j = nlohmann::json::parse(*line, nullptr, false);
      if (!j.is_discarded() && (j.value("type", "") == "ok" || j.value("type", "") == "error"))
        return lines;
    } else if (is_final_line(*line)) {
      return lines;
    }
  }
}

std::vector<std::string> TlsClient::command(const std::string& line,
                                            std::chrono::milliseconds timeout) {
  if (!write(line + "\n", timeout)) return {};
  return read_reply(timeout);
}

bool TlsClient::wait_closed(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (!read_line(left)) return !timed_out_;
  }
  return false;
}

void TlsClient::close() {
  run([&](error_code& r) { stream_->async_shutdown([&](error_code e) { r = e; }); }, 2s);
  error_code ec;
  stream_->next_layer().close(ec);
}

void TlsClient::reset() {
  error_code ec;
  stream_->next_layer().set_option(asio::socket_base::linger(true, 0), ec);
  stream_->next_layer().close(ec);
}

}  // namespace opsagent::testing

#include "tests/support/tls_client.hpp"

#include <memory>
#include <stdexcept>
#include <thread>

#include <boost/asio/connect.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>
#include <nlohmann/json.hpp>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

namespace opsagent::testing {
namespace asio = boost::asio;
using boost::system::error_code;

namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};

// Appends every certificate of a PEM file to the chain sent with the client certificate.
void add_chain_certificates(SSL_CTX* ctx, const std::filesystem::path& file) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new_file(file.c_str(), "r"));
  if (!bio) throw std::runtime_error("TlsClient: cannot read " + file.string());
  int added = 0;
  while (true) {
    std::unique_ptr<X509, X509Free> cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!cert) break;
    // SSL_CTX_add1_chain_cert is a macro with a C cast; call what it expands to.
    if (SSL_CTX_ctrl(ctx, SSL_CTRL_CHAIN_CERT, 1, cert.get()) != 1)
      throw std::runtime_error("TlsClient: cannot add chain certificate " + file.string());
    ++added;
  }
  ERR_clear_error();  // the end of the file reads as a PEM "no start line" error
  if (added == 0) throw std::runtime_error("TlsClient: no certificate in " + file.string());
}

// Where the new-session callback finds its TlsClient.
int client_index() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

}  // namespace

int TlsClient::count_session(SSL* ssl, SSL_SESSION* session) {
  auto* self = static_cast<TlsClient*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), client_index()));
  if (self == nullptr) return 0;  // not kept: OpenSSL frees the session
  ++self->sessions_received_;
  self->session_.reset(session, SSL_SESSION_free);
  return 1;  // kept: session_ owns the reference
}

bool TlsClient::resumed() { return SSL_session_reused(stream_->native_handle()) == 1; }

bool is_final_line(const std::string& line) {
  return line == "OK" || line.rfind("OK ", 0) == 0 || line.rfind("ERR ", 0) == 0;
}

TlsClient::TlsClient(ClientOptions options)
    : options_(std::move(options)), ctx_(asio::ssl::context::tls_client) {
  SSL_CTX* raw = ctx_.native_handle();
  if (options_.min_version != 0) SSL_CTX_set_min_proto_version(raw, options_.min_version);
  if (options_.max_version != 0) SSL_CTX_set_max_proto_version(raw, options_.max_version);
  if (options_.security_level >= 0) SSL_CTX_set_security_level(raw, options_.security_level);
  if (!options_.cipher_list.empty() &&
      SSL_CTX_set_cipher_list(raw, options_.cipher_list.c_str()) != 1) {
    ERR_clear_error();
    throw std::runtime_error("TlsClient: cipher list not usable: " + options_.cipher_list);
  }
  if (!options_.ciphersuites.empty() &&
      SSL_CTX_set_ciphersuites(raw, options_.ciphersuites.c_str()) != 1) {
    ERR_clear_error();
    throw std::runtime_error("TlsClient: TLS 1.3 suites not usable: " + options_.ciphersuites);
  }
  if (!options_.groups.empty() && SSL_CTX_ctrl(raw, SSL_CTRL_SET_GROUPS_LIST, 0,
                                               const_cast<char*>(options_.groups.c_str())) != 1) {
    ERR_clear_error();
    throw std::runtime_error("TlsClient: groups not usable: " + options_.groups);
  }
  if (!options_.sigalgs.empty() && SSL_CTX_ctrl(raw, SSL_CTRL_SET_SIGALGS_LIST, 0,
                                                const_cast<char*>(options_.sigalgs.c_str())) != 1) {
    ERR_clear_error();
    throw std::runtime_error("TlsClient: signature algorithms not usable: " + options_.sigalgs);
  }
  if (options_.allow_no_dhe) SSL_CTX_set_options(raw, SSL_OP_ALLOW_NO_DHE_KEX);
  if (options_.no_ticket) SSL_CTX_set_options(raw, SSL_OP_NO_TICKET);
  // Every session the agent sends (a TLS 1.3 ticket) is counted; the last one is kept.
  SSL_CTX_set_ex_data(raw, client_index(), this);
  SSL_CTX_set_session_cache_mode(raw, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(raw, &TlsClient::count_session);
  ctx_.load_verify_file(options_.ca.string());
  if (!options_.cert.empty()) {
    ctx_.use_certificate_chain_file(options_.cert.string());
    ctx_.use_private_key_file(options_.key.string(), asio::ssl::context::pem);
  }
  for (const auto& file : options_.extra_chain) add_chain_certificates(raw, file);
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
  error_code ec;
  if (!options_.source_address.empty()) {
    const asio::ip::tcp::endpoint local(asio::ip::make_address(options_.source_address), 0);
    stream_->next_layer().open(local.protocol(), ec);
    if (!ec) stream_->next_layer().bind(local, ec);
    if (ec) return last_error_ = "bind " + options_.source_address + ": " + ec.message();
  }
  ec = run(
      [&](error_code& r) { stream_->next_layer().async_connect(ep, [&](error_code e) { r = e; }); },
      timeout);
  if (ec) return last_error_ = "connect: " + ec.message();
  if (options_.hello_delay.count() > 0) std::this_thread::sleep_for(options_.hello_delay);
  // SSL_set_tlsext_host_name is a macro with a C cast; call what it expands to.
  SSL_ctrl(stream_->native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
           const_cast<char*>(options_.host_name.c_str()));
  stream_->set_verify_callback(asio::ssl::host_name_verification(options_.host_name));
  if (options_.resume && SSL_set_session(stream_->native_handle(), options_.resume.get()) != 1) {
    return last_error_ = "cannot offer the session to resume";
  }
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

std::string TlsClient::renegotiate(std::chrono::milliseconds timeout) {
  if (SSL_renegotiate(stream_->native_handle()) != 1) {
    ERR_clear_error();
    return last_error_ = "renegotiate: SSL_renegotiate refused";
  }
  // Asio's handshake calls SSL_connect, which drives the pending renegotiation; the agent's
  // answer (a new handshake, an alert or a close) arrives while it runs or on the next read.
  const error_code ec = run(
      [&](error_code& r) {
        stream_->async_handshake(asio::ssl::stream_base::client, [&](error_code e) { r = e; });
      },
      timeout);
  if (ec) return last_error_ = "renegotiate: " + ec.message();
  if (SSL_renegotiate_pending(stream_->native_handle()) != 0)
    return last_error_ = "renegotiate: still pending";
  return {};
}

std::string TlsClient::key_update(bool request_peer, std::chrono::milliseconds timeout) {
  if (SSL_key_update(stream_->native_handle(),
                     request_peer ? SSL_KEY_UPDATE_REQUESTED : SSL_KEY_UPDATE_NOT_REQUESTED) != 1) {
    ERR_clear_error();
    return last_error_ = "key update: SSL_key_update refused";
  }
  // SSL_do_handshake (through Asio's handshake) sends the KeyUpdate message at once.
  const error_code ec = run(
      [&](error_code& r) {
        stream_->async_handshake(asio::ssl::stream_base::client, [&](error_code e) { r = e; });
      },
      timeout);
  if (ec) return last_error_ = "key update: " + ec.message();
  return {};
}

std::string TlsClient::cipher() {
  const char* name = SSL_get_cipher_name(stream_->native_handle());
  return name != nullptr && SSL_is_init_finished(stream_->native_handle()) ? name : "";
}

std::string TlsClient::version() { return SSL_get_version(stream_->native_handle()); }

std::string TlsClient::group() {
  // SSL_get_negotiated_group is a macro with a C cast; call what it expands to.
  const long nid = SSL_ctrl(stream_->native_handle(), SSL_CTRL_GET_NEGOTIATED_GROUP, 0, nullptr);
  if (nid <= 0) return {};
  const char* name = OBJ_nid2sn(static_cast<int>(nid));
  return name != nullptr ? name : "";
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

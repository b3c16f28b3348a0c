#include "agent/tls/socket_stream.hpp"

#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/system/system_error.hpp>

namespace opsagent::tls {
namespace asio = boost::asio;
using boost::system::error_code;

namespace {

SSL* new_ssl(asio::ssl::context& context) {
  SSL* ssl = SSL_new(context.native_handle());
  if (ssl == nullptr) {
    const error_code ec(static_cast<int>(ERR_get_error()), asio::error::get_ssl_category());
    ERR_clear_error();
    throw boost::system::system_error(ec, "SSL_new");
  }
  // As asio's ssl::stream sets them: a write may return after some records (asio::async_write
  // goes on from there), a retried write may come from another address, and buffers that are
  // empty are freed, so an idle connection holds none.
  SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                        SSL_MODE_RELEASE_BUFFERS);
  // One read(2) takes whatever has arrived (up to a record buffer), not a record header and
  // then its body: half the system calls under pipelined requests. Reads always try OpenSSL
  // before waiting for the socket, so nothing read ahead is left waiting.
  SSL_set_read_ahead(ssl, 1);
  return ssl;
}

}  // namespace

SocketStream::SocketStream(socket_type socket, asio::ssl::context& context)
    : socket_(std::move(socket)), ssl_(new_ssl(context)) {}

SocketStream::SocketStream(const executor_type& executor, asio::ssl::context& context)
    : socket_(executor), ssl_(new_ssl(context)) {}

bool SocketStream::usable(bool handshake, error_code& ec) {
  if (!socket_.is_open()) {
    ec = asio::error::bad_descriptor;
    return false;
  }
  const int fd = socket_.native_handle();
  if (fd == bound_fd_) return true;
  if (!handshake) {  // no handshake on this socket: nothing to read or write with
    ec = asio::error::bad_descriptor;
    return false;
  }
  // OpenSSL's own read(2)/write(2) must get EAGAIN, never block an I/O thread.
  socket_.native_non_blocking(true, ec);
  if (ec) return false;
  ERR_clear_error();
  if (SSL_set_fd(ssl_.get(), fd) != 1) {
    ec = error_code(static_cast<int>(ERR_get_error()), asio::error::get_ssl_category());
    ERR_clear_error();
    return false;
  }
  bound_fd_ = fd;
  return true;
}

SocketStream::Need SocketStream::classify(int result, int saved_errno, error_code& ec) {
  switch (SSL_get_error(ssl_.get(), result)) {
    case SSL_ERROR_WANT_READ:
      return Need::read;
    case SSL_ERROR_WANT_WRITE:
      return Need::write;
    case SSL_ERROR_ZERO_RETURN:  // the peer's close_notify
      ec = asio::error::eof;
      return Need::nothing;
    case SSL_ERROR_SYSCALL:
      if (const unsigned long e = ERR_get_error(); e != 0) {
        ec = error_code(static_cast<int>(e), asio::error::get_ssl_category());
      } else if (saved_errno != 0) {
        ec = error_code(saved_errno, boost::system::system_category());  // e.g. ECONNRESET
      } else {
        ec = asio::ssl::error::stream_truncated;  // EOF without close_notify
      }
      break;
    default: {  // SSL_ERROR_SSL: a protocol or verification failure
      const unsigned long e = ERR_get_error();
      if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
          ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        ec = asio::ssl::error::stream_truncated;
      } else {
        ec = error_code(static_cast<int>(e), asio::error::get_ssl_category());
      }
      break;
    }
  }
  // Nothing of this failure may be seen by the next connection served on this thread.
  ERR_clear_error();
  return Need::nothing;
}

}  // namespace opsagent::tls

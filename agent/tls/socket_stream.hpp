#pragma once
// TLS directly on a TCP socket: OpenSSL reads and writes the socket itself (SSL_set_fd), and the
// stream waits for readiness (socket.async_wait) whenever OpenSSL says it would block.
//
// Why not boost::asio::ssl::stream: its engine holds two 17 KiB buffers and a 2 x 17 KiB BIO
// pair per connection for the connection's whole life, and copies every byte through them.
// Here nothing sits between OpenSSL and the socket, and with SSL_MODE_RELEASE_BUFFERS an idle
// connection holds no TLS record buffer at all (issue 13: memory per idle session).
//
// It offers what the code above it used of ssl::stream, with the same completion signatures and
// error codes (an OpenSSL error in Asio's ssl category, error::eof after the peer's
// close_notify, ssl::error::stream_truncated for an EOF without one), so the two are
// interchangeable: async_handshake, async_read_some and async_write_some (an AsyncReadStream and
// AsyncWriteStream, so asio::async_write works on it), async_shutdown, per-operation
// cancellation (terminal), next_layer()/lowest_layer() and native_handle().
//
// Rules, as for ssl::stream: at most one read-side operation (handshake, read, shutdown) and
// one write outstanding at a time, all initiated on the socket's executor, which must be a
// strand when the io_context has several threads: the strand is what keeps two threads from
// ever calling into the SSL object at once. One connection per stream: the socket's descriptor
// is bound to the SSL object at the handshake. After the socket is closed every operation fails
// with error::bad_descriptor and never touches the descriptor number again (it may already
// belong to another connection). The process must ignore SIGPIPE: OpenSSL writes with write(2)
// (both mains do). A completion handler is never called from inside the initiating function.

#include <cerrno>
#include <cstddef>
#include <memory>
#include <utility>

#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream_base.hpp>
#include <boost/system/error_code.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>

namespace opsagent::tls {

class SocketStream {
 public:
  // NOLINTNEXTLINE(readability-identifier-naming): names Asio's stream concept requires
  using socket_type = boost::asio::ip::tcp::socket;
  // NOLINTNEXTLINE(readability-identifier-naming): names Asio's stream concept requires
  using executor_type = socket_type::executor_type;
  // NOLINTNEXTLINE(readability-identifier-naming): names Asio's stream concept requires
  using next_layer_type = socket_type;
  // NOLINTNEXTLINE(readability-identifier-naming): names Asio's stream concept requires
  using lowest_layer_type = socket_type;

  /// A stream over an open (accepted or connected) socket. Throws boost::system::system_error
  /// when OpenSSL cannot make the connection's SSL object (out of memory).
  SocketStream(socket_type socket, boost::asio::ssl::context& context);
  /// A stream whose socket is not open yet (connect next_layer() before the handshake).
  SocketStream(const executor_type& executor, boost::asio::ssl::context& context);

  SocketStream(SocketStream&&) noexcept = default;
  SocketStream& operator=(SocketStream&&) = delete;
  SocketStream(const SocketStream&) = delete;
  SocketStream& operator=(const SocketStream&) = delete;
  ~SocketStream() = default;

  executor_type get_executor() noexcept { return socket_.get_executor(); }
  socket_type& next_layer() noexcept { return socket_; }
  socket_type& lowest_layer() noexcept { return socket_; }
  SSL* native_handle() noexcept { return ssl_.get(); }

  /// The TLS handshake as `type` (client or server). Signature: void(error_code).
  template <typename Token>
  auto async_handshake(boost::asio::ssl::stream_base::handshake_type type, Token&& token) {
    if (type == boost::asio::ssl::stream_base::client) {
      SSL_set_connect_state(ssl_.get());
    } else {
      SSL_set_accept_state(ssl_.get());
    }
    return start<void(boost::system::error_code)>(HandshakeStep{}, std::forward<Token>(token));
  }

  /// Reads at least one byte into the first non-empty buffer. Signature:
  /// void(error_code, std::size_t).
  template <typename MutableBuffers, typename Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    const auto buffer = first_buffer<boost::asio::mutable_buffer>(buffers);
    return start<void(boost::system::error_code, std::size_t)>(
        ReadStep{buffer.data(), buffer.size()}, std::forward<Token>(token));
  }

  /// Writes at least one byte of the first non-empty buffer. Signature:
  /// void(error_code, std::size_t).
  template <typename ConstBuffers, typename Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    const auto buffer = first_buffer<boost::asio::const_buffer>(buffers);
    return start<void(boost::system::error_code, std::size_t)>(
        WriteStep{buffer.data(), buffer.size()}, std::forward<Token>(token));
  }

  /// Completes when a read can make progress without waiting: OpenSSL holds received bytes, or
  /// the socket is readable (or closed). Lets a reader take its buffer only once there is
  /// something to read. Signature: void(error_code).
  template <typename Token>
  auto async_wait_readable(Token&& token) {
    return boost::asio::async_compose<Token, void(boost::system::error_code)>(WaitReadable{*this},
                                                                              token, socket_);
  }

  /// Sends close_notify and waits for the peer's. Signature: void(error_code).
  template <typename Token>
  auto async_shutdown(Token&& token) {
    return start<void(boost::system::error_code)>(ShutdownStep{}, std::forward<Token>(token));
  }

 private:
  enum class Need { nothing, read, write };

  // One call into OpenSSL each: 1 when it finished, else what SSL_get_error() is asked about.
  // kHandshake: may bind the socket; kTransfers: completes with a byte count.
  struct HandshakeStep {
    static constexpr bool kHandshake = true;
    static constexpr bool kTransfers = false;
    int operator()(SSL* ssl, std::size_t& /*n*/) const { return SSL_do_handshake(ssl); }
  };
  struct ReadStep {
    static constexpr bool kHandshake = false;
    static constexpr bool kTransfers = true;
    void* data;
    std::size_t size;
    int operator()(SSL* ssl, std::size_t& n) const {
      return size == 0 ? 1 : SSL_read_ex(ssl, data, size, &n);
    }
  };
  struct WriteStep {
    static constexpr bool kHandshake = false;
    static constexpr bool kTransfers = true;
    const void* data;
    std::size_t size;
    int operator()(SSL* ssl, std::size_t& n) const {
      return size == 0 ? 1 : SSL_write_ex(ssl, data, size, &n);
    }
  };
  struct ShutdownStep {
    static constexpr bool kHandshake = false;
    static constexpr bool kTransfers = false;
    // 0: our close_notify is sent; the second call reads the peer's (or wants to wait for it).
    int operator()(SSL* ssl, std::size_t& /*n*/) const {
      const int sent = SSL_shutdown(ssl);
      return sent == 0 ? SSL_shutdown(ssl) : sent;
    }
  };

  class WaitReadable {
   public:
    explicit WaitReadable(SocketStream& stream) : stream_(stream) {}
    template <typename Self>
    void operator()(Self& self, boost::system::error_code ec = {}) {
      if (started_) return self.complete(ec);
      started_ = true;
      if (SSL_has_pending(stream_.ssl_.get()) == 1 || !stream_.socket_.is_open()) {
        boost::asio::post(std::move(self));  // the read that follows has its answer now
        return;
      }
      stream_.socket_.async_wait(socket_type::wait_read, std::move(self));
    }

   private:
    SocketStream& stream_;
    bool started_ = false;
  };

  template <typename Buffer, typename Buffers>
  static Buffer first_buffer(const Buffers& buffers) {
    for (const auto* it = boost::asio::buffer_sequence_begin(buffers);
         it != boost::asio::buffer_sequence_end(buffers); ++it) {
      const Buffer buffer(*it);
      if (buffer.size() != 0) return buffer;
    }
    return Buffer();
  }

  // One step driven to its end: tried at once, then again after each readiness wait.
  template <typename Step>
  class Operation {
   public:
    Operation(SocketStream& stream, Step step) : stream_(stream), step_(step) {}

    template <typename Self>
    void operator()(Self& self, boost::system::error_code waited = {}) {
      if (state_ == State::posted) return finish(self);
      const bool initiating = state_ == State::initiating;
      state_ = State::running;
      if (waited) {
        ec_ = waited;  // cancelled, or the socket was closed under the wait
      } else if (self.cancelled() != boost::asio::cancellation_type::none) {
        // Cancelled after the last wait had already completed (its completion was queued behind
        // the canceller's on the strand): the signal reached no wait, the state remembers it.
        ec_ = boost::asio::error::operation_aborted;
      } else {
        switch (stream_.attempt(step_, ec_, transferred_)) {
          case Need::read:
            stream_.socket_.async_wait(socket_type::wait_read, std::move(self));
            return;
          case Need::write:
            stream_.socket_.async_wait(socket_type::wait_write, std::move(self));
            return;
          case Need::nothing:
            break;
        }
      }
      if (initiating) {  // never complete inside the initiating function
        state_ = State::posted;
        boost::asio::post(std::move(self));
        return;
      }
      finish(self);
    }

   private:
    enum class State { initiating, running, posted };

    template <typename Self>
    void finish(Self& self) {
      if constexpr (Step::kTransfers) {
        self.complete(ec_, transferred_);
      } else {
        self.complete(ec_);
      }
    }

    SocketStream& stream_;
    Step step_;
    State state_ = State::initiating;
    boost::system::error_code ec_;
    std::size_t transferred_ = 0;
  };

  template <typename Signature, typename Step, typename Token>
  auto start(Step step, Token&& token) {
    return boost::asio::async_compose<Token, Signature>(Operation<Step>(*this, step), token,
                                                        socket_);
  }

  // One try of `step` against OpenSSL. Need::nothing when it is over: `ec` says how.
  template <typename Step>
  Need attempt(const Step& step, boost::system::error_code& ec, std::size_t& transferred) {
    if (!usable(Step::kHandshake, ec)) return Need::nothing;
    ERR_clear_error();
    errno = 0;
    const int result = step(ssl_.get(), transferred);
    const int saved_errno = errno;
    if (result == 1) {
      ec = {};
      return Need::nothing;
    }
    transferred = 0;
    return classify(result, saved_errno, ec);
  }

  // False (with ec) when the socket is closed, or not bound to the SSL object and `handshake`
  // is false; binds it for a handshake.
  bool usable(bool handshake, boost::system::error_code& ec);
  // What a failed OpenSSL call needs: a readiness wait, or nothing more (ec = the error).
  Need classify(int result, int saved_errno, boost::system::error_code& ec);

  struct SslFree {
    void operator()(SSL* ssl) const noexcept { SSL_free(ssl); }
  };

  socket_type socket_;
  std::unique_ptr<SSL, SslFree> ssl_;
  int bound_fd_ = -1;  // the descriptor given to SSL_set_fd, or -1
};

}  // namespace opsagent::tls

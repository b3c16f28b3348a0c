#pragma once
// A blocking TLS client for tests, built on Boost.Asio with a timeout on every step.

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>

namespace opsagent::testing {

using namespace std::chrono_literals;

struct ClientOptions {
  std::filesystem::path ca;    ///< trusted CA for the agent's certificate
  std::filesystem::path cert;  ///< client certificate (empty: present none)
  std::filesystem::path key;
  int min_version = 0;  ///< e.g. TLS1_2_VERSION; 0 = library default
  int max_version = 0;
  std::string host_name = "localhost";  ///< expected in the agent's certificate
  std::string cipher_list;              ///< TLS 1.2 and older cipher string ("": library default)
  std::string ciphersuites;             ///< TLS 1.3 suites ("": library default)
  std::string groups;                   ///< key exchange groups, e.g. "ffdhe8192" ("": default)
  std::string sigalgs;                  ///< signature algorithms offered ("": library default)
  int security_level = -1;  ///< SSL_CTX_set_security_level (-1: library default), 0 for old
                            ///< protocols and weak suites
  std::vector<std::filesystem::path> extra_chain;  ///< PEM files whose certificates are sent
                                                   ///< after `cert`, in order (chain override)
  std::string source_address;  ///< local address to connect from, e.g. "127.0.0.3" ("": any)
  std::chrono::milliseconds hello_delay{0};  ///< pause between the TCP connect and the
                                             ///< ClientHello (a slow client)
  std::shared_ptr<SSL_SESSION> resume;       ///< a session (ticket) to offer: TLS resumption
  bool allow_no_dhe = false;                 ///< also offer psk_ke, resumption without (EC)DHE
  bool no_ticket = false;                    ///< SSL_OP_NO_TICKET: ask for no session ticket
};

/// One connection. Not thread-safe.
class TlsClient {
 public:
  explicit TlsClient(ClientOptions options);
  ~TlsClient();

  /// TCP connect and TLS handshake. Returns an error message, or "" on success.
  std::string connect(const std::string& host, std::uint16_t port,
                      std::chrono::milliseconds timeout = 10s);
  /// Writes all bytes. False on error.
  bool write(const std::string& bytes, std::chrono::milliseconds timeout = 10s);
  /// The next line without LF; nullopt on EOF, error or timeout (see last_error()).
  std::optional<std::string> read_line(std::chrono::milliseconds timeout = 10s);
  /// Lines up to and including the final "OK"/"ERR" line (text mode) or the final object with
  /// type ok/error (JSON mode). Empty on EOF before any line.
  std::vector<std::string> read_reply(std::chrono::milliseconds timeout = 10s);
  /// Sends `line` + LF and returns read_reply().
  std::vector<std::string> command(const std::string& line,
                                   std::chrono::milliseconds timeout = 10s);
  /// True when the agent closes the connection within `timeout` (EOF or reset).
  bool wait_closed(std::chrono::milliseconds timeout = 10s);
  /// Sends close_notify and closes.
  void close();
  /// Closes with SO_LINGER 0 (the peer sees a reset).
  void reset();
  /// TLS 1.2 client-initiated renegotiation (SSL_renegotiate, then a handshake).
  /// Returns an error message, or "" when the agent went along with it.
  std::string renegotiate(std::chrono::milliseconds timeout = 10s);
  /// TLS 1.3 KeyUpdate, sent at once; with `request_peer` the agent is asked to update too.
  /// Returns an error message, or "" on success.
  std::string key_update(bool request_peer, std::chrono::milliseconds timeout = 10s);
  /// The negotiated cipher suite and protocol version ("" before a handshake).
  [[nodiscard]] std::string cipher();
  [[nodiscard]] std::string version();
  /// The key exchange group of the handshake as OpenSSL's short name: "X25519", "prime256v1",
  /// "secp384r1" ("" before a handshake).
  [[nodiscard]] std::string group();
  /// How many sessions (TLS 1.3: tickets) the agent has sent so far on this connection.
  [[nodiscard]] int sessions_received() const { return sessions_received_; }
  /// The last session (ticket) the agent sent, to offer in ClientOptions::resume; null if none.
  [[nodiscard]] std::shared_ptr<SSL_SESSION> session() const { return session_; }
  /// True when the handshake resumed the offered session.
  [[nodiscard]] bool resumed();
  [[nodiscard]] const std::string& last_error() const { return last_error_; }
  boost::asio::ssl::stream<boost::asio::ip::tcp::socket>& stream() { return *stream_; }

 private:
  static int count_session(SSL* ssl, SSL_SESSION* session);
  template <typename Start>
  boost::system::error_code run(Start start, std::chrono::milliseconds timeout);

  ClientOptions options_;
  boost::asio::io_context io_;
  boost::asio::ssl::context ctx_;
  std::optional<boost::asio::ssl::stream<boost::asio::ip::tcp::socket>> stream_;
  std::string buffer_;
  std::string last_error_;
  bool timed_out_ = false;
  int sessions_received_ = 0;
  std::shared_ptr<SSL_SESSION> session_;
};

/// True when `line` is a final line of a text-mode reply.
bool is_final_line(const std::string& line);

}  // namespace opsagent::testing

#pragma once
// TLS sessions (TLS 1.3 tickets) opsctl may resume: in memory (up to 256) for the process (the
// interactive shell reconnecting, retries) and on disk for the next run to the same hosts
// (SECURITY.md, "opsctl's session cache"). Only sessions of connections that fully verified the
// agent (CA, name, pinned fingerprint) and were greeted are stored; the agent verifies our
// certificate again on every resumption, and opsctl still checks the pin on a resumed one.

#include <cstddef>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include <boost/asio/ssl/context.hpp>
#include <openssl/ssl.h>

#include "agent/client/target.hpp"

namespace opsagent::client {

struct SessionDeleter {
  void operator()(SSL_SESSION* s) const noexcept { SSL_SESSION_free(s); }
};
using SessionPtr = std::unique_ptr<SSL_SESSION, SessionDeleter>;

class SessionCache {
 public:
  /// `directory`: where sessions are kept between runs (created 0700; files 0600); empty: in
  /// memory only. `scope`: what else a session depends on (the client certificate and the CA
  /// bundle in use), so a session is never offered with another certificate or trust.
  /// `max_files`: the on-disk bound; beyond it the oldest files are removed at start-up.
  SessionCache(std::filesystem::path directory, std::string scope, std::size_t max_files = 20000);

  /// A session to offer to `target`, or null (none, expired, unreadable: then removed).
  SessionPtr find(const Target& target);
  /// Keeps the resumable session of a verified, greeted connection to `target`.
  void store(const Target& target, SSL_SESSION* session);
  /// Drops what is kept for `target` (a resumption that failed).
  void forget(const Target& target);

  /// The cache attached to a client context (null when resumption is off).
  static SessionCache* of(SSL_CTX* ctx);
  /// Attaches `cache` to `ctx` for every AgentConnection made with it.
  static void attach(boost::asio::ssl::context& ctx, std::shared_ptr<SessionCache> cache);

 private:
  [[nodiscard]] std::string key(const Target& target) const;
  [[nodiscard]] std::filesystem::path file_of(const std::string& key) const;
  void prune(std::size_t max_files);

  std::filesystem::path directory_;
  std::string scope_;
  bool disk_ok_ = false;
  std::map<std::string, SessionPtr> memory_;
};

/// $XDG_CACHE_HOME/opsctl/sessions, else ~/.cache/opsctl/sessions; empty when neither is known.
std::filesystem::path default_session_cache_dir();

/// The scope of a client context: SHA-256 of its certificate and of the CA bundle file's bytes.
std::string session_scope(SSL_CTX* ctx, const std::filesystem::path& ca_file);

}  // namespace opsagent::client

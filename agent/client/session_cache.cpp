#include "agent/client/session_cache.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <ctime>
#include <fcntl.h>
#include <fstream>
#include <iterator>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include <openssl/err.h>
#include <openssl/evp.h>

#include "agent/common/environment.hpp"
#include "agent/common/hex.hpp"
#include "agent/common/unique_fd.hpp"
#include "agent/tls/peer_certificate.hpp"

namespace opsagent::client {
namespace fs = std::filesystem;
namespace {

constexpr std::size_t kMaxSessionBytes = std::size_t{64} * 1024;  // a session is about 2 KiB
// Sessions kept in memory (a parsed session holds the agent's certificate, a few KiB): enough
// for the shell and retries; a fan-out to thousands of hosts finds the others on disk.
constexpr std::size_t kMaxMemorySessions = 256;

std::string sha256_hex(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) != 1) {
    ERR_clear_error();
    return {};
  }
  return hex_encode(std::span<const unsigned char>(md, len));
}

// A directory only we may use: made 0700 when missing, refused when anyone else can reach in.
bool private_directory(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir.parent_path(), ec);
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return false;
  struct stat st {};
  return ::lstat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == ::geteuid() &&
         (st.st_mode & 077) == 0;
}

// A session file we may use: a regular file of ours that no one else can read.
bool private_file(const struct stat& st) {
  return S_ISREG(st.st_mode) && st.st_uid == ::geteuid() && (st.st_mode & 077) == 0;
}

// Writes `der` over the existing session file `file` under an exclusive lock (find() reads under
// a shared one, so no reader sees half a session). False when there is no such file of ours or
// the write failed. A new file per session (written beside, renamed over) costs a new inode each
// time: on ext4 that was a third of opsctl's CPU in a run over 3,000 hosts.
bool rewrite(const fs::path& file, const std::vector<unsigned char>& der) {
  const UniqueFd fd(::open(file.c_str(), O_WRONLY | O_NOFOLLOW | O_CLOEXEC));
  struct stat st {};
  if (!fd.valid() || ::fstat(fd.get(), &st) != 0 || !private_file(st) ||
      ::flock(fd.get(), LOCK_EX) != 0) {
    return false;
  }
  return ::pwrite(fd.get(), der.data(), der.size(), 0) == static_cast<ssize_t>(der.size()) &&
         ::ftruncate(fd.get(), static_cast<off_t>(der.size())) == 0;
}

bool expired(SSL_SESSION* s) {
  return SSL_SESSION_get_time(s) + SSL_SESSION_get_timeout(s) <= std::time(nullptr) ||
         SSL_SESSION_is_resumable(s) != 1;
}

// SSL_CTX ex_data: a heap std::shared_ptr<SessionCache>, freed with the context.
void free_cache(void* /*parent*/, void* ptr, CRYPTO_EX_DATA* /*ad*/, int /*idx*/, long /*argl*/,
                void* /*argp*/) {
  delete static_cast<std::shared_ptr<SessionCache>*>(ptr);
}

int cache_index() {
  static const int kIndex =
      CRYPTO_get_ex_new_index(CRYPTO_EX_INDEX_SSL_CTX, 0, nullptr, nullptr, nullptr, free_cache);
  return kIndex;
}

}  // namespace

SessionCache::SessionCache(fs::path directory, std::string scope, std::size_t max_files)
    : directory_(std::move(directory)),
      scope_(std::move(scope)),
      disk_ok_(!directory_.empty() && !scope_.empty() && private_directory(directory_)) {
  if (disk_ok_) prune(max_files);
}

// Per host as named (an inventory's `web1`, or the address given on the command line), not per
// address: a ticket resumes once, so two names for one agent must not share one.
std::string SessionCache::key(const Target& target) const {
  return sha256_hex(scope_ + '\n' + target.name + '\n' + target.server_name + '\n' +
                    target.address + '\n' + std::to_string(target.port));
}

fs::path SessionCache::file_of(const std::string& key) const {
  return directory_ / (key.substr(0, 40) + ".session");
}

SessionPtr SessionCache::find(const Target& target) {
  const std::string k = key(target);
  if (k.empty()) return nullptr;
  if (auto it = memory_.find(k); it != memory_.end()) {
    if (!expired(it->second.get())) {
      SSL_SESSION_up_ref(it->second.get());
      return SessionPtr(it->second.get());
    }
    memory_.erase(it);
  }
  if (!disk_ok_) return nullptr;
  const fs::path file = file_of(k);
  const UniqueFd fd(::open(file.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid()) return nullptr;
  struct stat st {};
  // Ours alone, or not used (and left for its owner to look at); read under a shared lock, so
  // never while rewrite() writes it.
  if (::flock(fd.get(), LOCK_SH) != 0 || ::fstat(fd.get(), &st) != 0 || !private_file(st) ||
      st.st_size <= 0 || static_cast<std::size_t>(st.st_size) > kMaxSessionBytes) {
    return nullptr;
  }
  std::vector<unsigned char> der(static_cast<std::size_t>(st.st_size));
  if (::read(fd.get(), der.data(), der.size()) != static_cast<ssize_t>(der.size())) return nullptr;
  const unsigned char* p = der.data();
  SessionPtr session(d2i_SSL_SESSION(nullptr, &p, static_cast<long>(der.size())));
  ERR_clear_error();
  if (!session || expired(session.get())) {
    std::error_code ec;
    fs::remove(file, ec);
    return nullptr;
  }
  return session;
}

void SessionCache::store(const Target& target, SSL_SESSION* session) {
  const std::string k = key(target);
  if (k.empty() || session == nullptr || expired(session)) return;
  if (memory_.size() >= kMaxMemorySessions && !memory_.contains(k)) memory_.erase(memory_.begin());
  SSL_SESSION_up_ref(session);
  memory_[k] = SessionPtr(session);
  if (!disk_ok_) return;
  const int len = i2d_SSL_SESSION(session, nullptr);
  if (len <= 0 || static_cast<std::size_t>(len) > kMaxSessionBytes) return;
  std::vector<unsigned char> der(static_cast<std::size_t>(len));
  unsigned char* p = der.data();
  if (i2d_SSL_SESSION(session, &p) != len) return;
  const fs::path file = file_of(k);
  if (rewrite(file, der)) return;
  // A new file (or one that could not be rewritten): written beside the final name, then renamed
  // over it, so a reader never sees half a session.
  fs::path tmp = file;
  tmp += ".tmp" + std::to_string(::getpid());
  {
    const UniqueFd fd(
        ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd.valid() ||
        ::write(fd.get(), der.data(), der.size()) != static_cast<ssize_t>(der.size())) {
      ::unlink(tmp.c_str());
      return;
    }
  }
  if (::rename(tmp.c_str(), file.c_str()) != 0) ::unlink(tmp.c_str());
}

void SessionCache::forget(const Target& target) {
  const std::string k = key(target);
  if (k.empty()) return;
  memory_.erase(k);
  if (disk_ok_) ::unlink(file_of(k).c_str());
}

// Keeps at most `max_files` sessions on disk: the oldest go first.
void SessionCache::prune(std::size_t max_files) {
  std::vector<std::pair<fs::file_time_type, fs::path>> files;
  std::error_code ec;
  for (fs::directory_iterator it(directory_, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->path().extension() != ".session") continue;
    std::error_code time_ec;
    const auto when = it->last_write_time(time_ec);
    if (!time_ec) files.emplace_back(when, it->path());
  }
  if (files.size() <= max_files) return;
  const auto excess = static_cast<std::ptrdiff_t>(files.size() - max_files);
  std::nth_element(files.begin(), files.begin() + excess, files.end());
  for (auto it = files.begin(); it != files.begin() + excess; ++it) fs::remove(it->second, ec);
}

SessionCache* SessionCache::of(SSL_CTX* ctx) {
  auto* holder =
      static_cast<std::shared_ptr<SessionCache>*>(SSL_CTX_get_ex_data(ctx, cache_index()));
  return holder != nullptr ? holder->get() : nullptr;
}

void SessionCache::attach(boost::asio::ssl::context& ctx, std::shared_ptr<SessionCache> cache) {
  SSL_CTX_set_ex_data(ctx.native_handle(), cache_index(),
                      new std::shared_ptr<SessionCache>(std::move(cache)));
}

fs::path default_session_cache_dir() {
  if (const char* xdg = common::env_var("XDG_CACHE_HOME"); xdg != nullptr && *xdg == '/') {
    return fs::path(xdg) / "opsctl" / "sessions";
  }
  if (const char* home = common::env_var("HOME"); home != nullptr && *home == '/') {
    return fs::path(home) / ".cache" / "opsctl" / "sessions";
  }
  return {};
}

std::string session_scope(SSL_CTX* ctx, const fs::path& ca_file) {
  X509* cert = SSL_CTX_get0_certificate(ctx);
  if (cert == nullptr) return {};
  std::ifstream in(ca_file, std::ios::binary);
  const std::string ca((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) return {};
  return tls::fingerprint_sha256(cert) + '\n' + sha256_hex(ca);
}

}  // namespace opsagent::client

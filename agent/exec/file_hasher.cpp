#include "agent/exec/file_hasher.hpp"

#include <array>
#include <cerrno>
#include <memory>
#include <span>
#include <sys/stat.h>
#include <system_error>
#include <unistd.h>
#include <vector>

#include <openssl/err.h>
#include <openssl/evp.h>

#include "agent/common/c_ptr.hpp"
#include "agent/common/hex.hpp"
#include "agent/protocol/verbs.hpp"

namespace opsagent::exec {
namespace {

constexpr std::size_t kChunkBytes = std::size_t{64} * 1024;

using MdPtr = CPtr<EVP_MD, EVP_MD_free>;
using MdCtxPtr = CPtr<EVP_MD_CTX, EVP_MD_CTX_free>;

// The allow-list of protocol/verbs.hpp: clients never reach OpenSSL's name lookup with
// arbitrary text.
const char* openssl_name(std::string_view algorithm) noexcept {
  const protocol::HashAlgorithm* a = protocol::find_hash_algorithm(algorithm);
  return a == nullptr ? nullptr : a->openssl;
}

// Explicit fetch (not EVP_get_digestbyname) so a provider that lacks the digest, e.g. FIPS
// without SHA1, makes the algorithm unavailable instead of failing later.
MdPtr fetch(std::string_view algorithm) noexcept {
  const char* name = openssl_name(algorithm);
  if (name == nullptr) return nullptr;
  MdPtr md(EVP_MD_fetch(nullptr, name, nullptr));
  // The error queue is per thread; leave nothing behind for the next job on this pool thread.
  if (!md) ERR_clear_error();
  return md;
}

Error openssl_failure(const char* what) {
  ERR_clear_error();
  return {ErrorCode::internal, std::string("digest failed: ") + what};
}

}  // namespace

bool hash_algorithm_available(std::string_view algorithm) { return fetch(algorithm) != nullptr; }

Result<Digest> hash_fd(int fd, std::string_view algorithm, const std::atomic<bool>& cancel,
                       std::uint64_t max_bytes) {
  MdPtr md = fetch(algorithm);
  if (!md) return Error{ErrorCode::usage, "unknown hash algorithm: " + std::string(algorithm)};
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx) return openssl_failure("EVP_MD_CTX_new");
  if (EVP_DigestInit_ex2(ctx.get(), md.get(), nullptr) != 1) return openssl_failure("init");

  // A digest is only worth something for one version of the file: note the size and times
  // before, and refuse the result if anything moved while we read.
  struct stat before {};
  if (::fstat(fd, &before) != 0) {
    return Error{ErrorCode::internal, "fstat failed: " + std::generic_category().message(errno)};
  }
  const off_t start = S_ISREG(before.st_mode) ? ::lseek(fd, 0, SEEK_CUR) : 0;

  std::vector<unsigned char> buffer(kChunkBytes);
  std::uint64_t total = 0;
  while (true) {
    if (cancel.load(std::memory_order_relaxed)) return Error{ErrorCode::internal, "cancelled"};
    const ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error{ErrorCode::internal, "read failed: " + std::generic_category().message(errno)};
    }
    if (n == 0) break;  // EOF (a file truncated under us ends early: caught below)
    total += static_cast<std::uint64_t>(n);
    if (total > max_bytes) {
      return Error{ErrorCode::limit, "file is larger than " + std::to_string(max_bytes) + " bytes"};
    }
    if (EVP_DigestUpdate(ctx.get(), buffer.data(), static_cast<std::size_t>(n)) != 1) {
      return openssl_failure("update");
    }
  }

  if (S_ISREG(before.st_mode)) {
    struct stat after {};
    const bool changed = ::fstat(fd, &after) != 0 || after.st_size != before.st_size ||
                         total != static_cast<std::uint64_t>(before.st_size - start) ||
                         after.st_mtim.tv_sec != before.st_mtim.tv_sec ||
                         after.st_mtim.tv_nsec != before.st_mtim.tv_nsec ||
                         after.st_ctim.tv_sec != before.st_ctim.tv_sec ||
                         after.st_ctim.tv_nsec != before.st_ctim.tv_nsec;
    if (changed) return Error{ErrorCode::failed, "file changed while it was being hashed"};
  }

  std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
  unsigned int out_size = 0;
  if (EVP_DigestFinal_ex(ctx.get(), out.data(), &out_size) != 1) return openssl_failure("final");
  return Digest{hex_encode(std::span(out.data(), out_size)), total};
}

}  // namespace opsagent::exec

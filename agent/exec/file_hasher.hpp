#pragma once
// Message digests of open files via OpenSSL EVP. Blocking: run on the blocking-work pool.

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#include "agent/common/error.hpp"

namespace opsagent::exec {

struct Digest {
  std::string hex;          ///< lower-case hex digest
  std::uint64_t bytes = 0;  ///< bytes hashed
};

/// True when OpenSSL provides `algorithm` ("sha1", "sha256", "sha512", ...).
bool hash_algorithm_available(std::string_view algorithm);

/// Hashes `fd` from its current offset to EOF with read(2) (never mmap: a file truncated under
/// us gives EOF, not SIGBUS). Checks `cancel` between 64 KiB chunks and stops with
/// ErrorCode::internal "cancelled" when it is set. Fails with ErrorCode::limit beyond `max_bytes`.
/// For a regular file, fails with ErrorCode::failed when its size or times changed while it was
/// read (truncated, appended, rewritten): such a digest would describe no version of the file.
Result<Digest> hash_fd(int fd, std::string_view algorithm, const std::atomic<bool>& cancel,
                       std::uint64_t max_bytes);

}  // namespace opsagent::exec

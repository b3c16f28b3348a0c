#include "agent/exec/file_hasher.hpp"

#include <atomic>
#include <cstdint>
#include <fcntl.h>
#include <limits>
#include <random>
#include <string>
#include <sys/mman.h>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include "agent/common/unique_fd.hpp"

namespace opsagent::exec {
namespace {

constexpr std::uint64_t kNoLimit = std::numeric_limits<std::uint64_t>::max();

// An anonymous regular file holding `content`, positioned at its start.
UniqueFd file_with(const std::string& content) {
  UniqueFd fd(::memfd_create("hash_test", MFD_CLOEXEC));
  if (!fd.valid()) return fd;
  std::size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(fd.get(), content.data() + done, content.size() - done);
    if (n <= 0) return UniqueFd();
    done += static_cast<std::size_t>(n);
  }
  ::lseek(fd.get(), 0, SEEK_SET);
  return fd;
}

std::string hash_of(const std::string& content, std::string_view algorithm) {
  const std::atomic<bool> cancel{false};
  UniqueFd fd = file_with(content);
  auto r = hash_fd(fd.get(), algorithm, cancel, kNoLimit);
  if (!r.ok()) return "error: " + r.error().message;
  EXPECT_EQ(r->bytes, content.size());
  return r->hex;
}

TEST(FileHasher, MatchesKnownVectorsForAbc) {
  EXPECT_EQ(hash_of("abc", "sha1"), "a9993e364706816aba3e25717850c26c9cd0d89d");
  EXPECT_EQ(hash_of("abc", "sha256"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(hash_of("abc", "sha512"),
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
            "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f");
  EXPECT_EQ(hash_of("abc", "sha3-256"),
            "3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532");
}

TEST(FileHasher, MatchesKnownVectorsForAnEmptyFile) {
  EXPECT_EQ(hash_of("", "sha1"), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  EXPECT_EQ(hash_of("", "sha256"),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(hash_of("", "sha512"),
            "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
            "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e");
}

TEST(FileHasher, AgreesWithOpenSslOneShotOnAMebibyteFile) {
  std::string content(1024 * 1024 + 17, '\0');  // not a multiple of the chunk size
  std::mt19937 rng(42);
  for (auto& c : content) c = static_cast<char>(rng());
  const std::pair<const char*, const EVP_MD*> cases[] = {
      {"sha256", EVP_sha256()}, {"sha384", EVP_sha384()}, {"sha3-512", EVP_sha3_512()}};
  for (const auto& [name, md] : cases) {
    SCOPED_TRACE(name);
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    ASSERT_EQ(EVP_Digest(content.data(), content.size(), out, &size, md, nullptr), 1);
    std::string expected;
    for (unsigned int i = 0; i < size; ++i) {
      static constexpr char kHex[] = "0123456789abcdef";
      expected += kHex[out[i] >> 4];
      expected += kHex[out[i] & 0xf];
    }
    EXPECT_EQ(hash_of(content, name), expected);
  }
}

TEST(FileHasher, HashesFromTheCurrentOffset) {
  UniqueFd fd = file_with("xxabc");
  ASSERT_EQ(::lseek(fd.get(), 2, SEEK_SET), 2);
  const std::atomic<bool> cancel{false};
  auto r = hash_fd(fd.get(), "sha1", cancel, kNoLimit);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->hex, "a9993e364706816aba3e25717850c26c9cd0d89d");
  EXPECT_EQ(r->bytes, 3u);
}

TEST(FileHasher, StopsWhenCancelled) {
  UniqueFd fd = file_with(std::string(256 * 1024, 'a'));
  const std::atomic<bool> cancel{true};
  auto r = hash_fd(fd.get(), "sha256", cancel, kNoLimit);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::internal);
  EXPECT_EQ(r.error().message, "cancelled");
}

TEST(FileHasher, FailsWithLimitBeyondMaxBytes) {
  const std::atomic<bool> cancel{false};
  UniqueFd over = file_with(std::string(100, 'a'));
  auto r = hash_fd(over.get(), "sha256", cancel, 99);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::limit);

  UniqueFd exact = file_with(std::string(100, 'a'));
  auto fits = hash_fd(exact.get(), "sha256", cancel, 100);
  ASSERT_TRUE(fits.ok()) << fits.error().message;
  EXPECT_EQ(fits->bytes, 100u);
}

TEST(FileHasher, RejectsAnUnknownAlgorithm) {
  const std::atomic<bool> cancel{false};
  UniqueFd fd = file_with("abc");
  for (const char* name : {"md5", "rot13", "SHA256", "", "sha2-256"}) {
    SCOPED_TRACE(name);
    EXPECT_FALSE(hash_algorithm_available(name));
    auto r = hash_fd(fd.get(), name, cancel, kNoLimit);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::usage);
  }
}

TEST(FileHasher, OffersTheDocumentedAlgorithms) {
  for (const char* name :
       {"sha1", "sha224", "sha256", "sha384", "sha512", "sha3-256", "sha3-512"}) {
    EXPECT_TRUE(hash_algorithm_available(name)) << name;
  }
}

TEST(FileHasher, ReportsAReadError) {
  const std::atomic<bool> cancel{false};
  UniqueFd write_only(::memfd_create("wo", MFD_CLOEXEC));
  ASSERT_TRUE(write_only.valid());
  UniqueFd reopened(
      ::open(("/proc/self/fd/" + std::to_string(write_only.get())).c_str(), O_WRONLY | O_CLOEXEC));
  ASSERT_TRUE(reopened.valid());
  auto r = hash_fd(reopened.get(), "sha256", cancel, kNoLimit);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::internal);
}

}  // namespace
}  // namespace opsagent::exec

#pragma once
// The audit hash chain: every record carries `prev`, the hex SHA-256 (or, with a key,
// HMAC-SHA-256) of the previous record's exact line bytes without its LF. Shared by the writer
// (agent/audit/audit_writer.cpp) and the verifier (chain_verifier.hpp). See docs/audit.md.

#include <array>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace opsagent::audit {

/// 64 lowercase hex digits.
using ChainHash = std::array<char, 64>;

/// The `prev` of a chain's very first record (no record before it): 64 zeros.
ChainHash zero_chain_hash() noexcept;

/// Not thread-safe: one instance per thread (the writer thread, one verifier). Holds one
/// EVP_MD_CTX or EVP_MAC_CTX, made once and reused for every record.
class HashChain {
 public:
  /// An empty `key`: plain SHA-256; otherwise HMAC-SHA-256 under `key`. Throws
  /// std::runtime_error when OpenSSL cannot set up the context.
  explicit HashChain(std::string_view key = {});
  ~HashChain();
  HashChain(const HashChain&) = delete;
  HashChain& operator=(const HashChain&) = delete;

  /// Hashes one record line (without its LF) into `out`. False when OpenSSL failed (no memory).
  bool hash(std::string_view line, ChainHash& out) noexcept;

  /// "sha256" or "hmac-sha256".
  [[nodiscard]] const char* algorithm() const noexcept { return keyed_ ? "hmac-sha256" : "sha256"; }
  /// 16 hex digits (first 8 bytes of SHA-256 of the key) when keyed, else empty. Never the key.
  [[nodiscard]] const std::string& key_id() const noexcept { return key_id_; }
  [[nodiscard]] bool keyed() const noexcept { return keyed_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  bool keyed_ = false;
  std::string key_id_;
};

/// The key id of `key` as HashChain::key_id() gives it (empty for an empty key).
std::string chain_key_id(std::string_view key);

}  // namespace opsagent::audit

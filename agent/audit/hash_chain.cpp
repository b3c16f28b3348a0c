#include "agent/audit/hash_chain.hpp"

#include <stdexcept>

#include <openssl/core_names.h>
#include <openssl/evp.h>

namespace opsagent::audit {
namespace {

constexpr char kHex[] = "0123456789abcdef";

void to_hex(const unsigned char* bytes, std::size_t n, char* out) noexcept {
  for (std::size_t i = 0; i < n; ++i) {
    out[2 * i] = kHex[bytes[i] >> 4];
    out[2 * i + 1] = kHex[bytes[i] & 0xf];
  }
}

struct MdFree {
  void operator()(EVP_MD* p) const noexcept { EVP_MD_free(p); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* p) const noexcept { EVP_MD_CTX_free(p); }
};
struct MacFree {
  void operator()(EVP_MAC* p) const noexcept { EVP_MAC_free(p); }
};
struct MacCtxFree {
  void operator()(EVP_MAC_CTX* p) const noexcept { EVP_MAC_CTX_free(p); }
};

}  // namespace

struct HashChain::Impl {
  std::unique_ptr<EVP_MD, MdFree> md;
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> md_ctx;
  std::unique_ptr<EVP_MAC, MacFree> mac;
  std::unique_ptr<EVP_MAC_CTX, MacCtxFree> mac_ctx;
};

ChainHash zero_chain_hash() noexcept {
  ChainHash h;
  h.fill('0');
  return h;
}

std::string chain_key_id(std::string_view key) {
  if (key.empty()) return {};
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(key.data(), key.size(), digest, &length, EVP_sha256(), nullptr) != 1) {
    throw std::runtime_error("audit chain: cannot hash the key");
  }
  std::string out(16, '0');
  to_hex(digest, 8, out.data());
  return out;
}

HashChain::HashChain(std::string_view key) : impl_(std::make_unique<Impl>()) {
  impl_->md.reset(EVP_MD_fetch(nullptr, "SHA256", nullptr));
  impl_->md_ctx.reset(EVP_MD_CTX_new());
  if (!impl_->md || !impl_->md_ctx) throw std::runtime_error("audit chain: no SHA-256");
  if (key.empty()) return;
  keyed_ = true;
  key_id_ = chain_key_id(key);
  impl_->mac.reset(EVP_MAC_fetch(nullptr, "HMAC", nullptr));
  if (!impl_->mac) throw std::runtime_error("audit chain: no HMAC");
  impl_->mac_ctx.reset(EVP_MAC_CTX_new(impl_->mac.get()));
  char digest_name[] = "SHA256";
  const OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name, 0),
      OSSL_PARAM_construct_end()};
  // The key is set once here; every record re-initialises with a null key, which keeps it.
  if (!impl_->mac_ctx ||
      // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): OpenSSL takes bytes
      EVP_MAC_init(impl_->mac_ctx.get(), reinterpret_cast<const unsigned char*>(key.data()),
                   key.size(), params) != 1) {
    throw std::runtime_error("audit chain: cannot set up HMAC-SHA-256");
  }
}

HashChain::~HashChain() = default;

bool HashChain::hash(std::string_view line, ChainHash& out) noexcept {
  unsigned char digest[EVP_MAX_MD_SIZE];
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): OpenSSL takes bytes
  const auto* data = reinterpret_cast<const unsigned char*>(line.data());
  if (keyed_) {
    EVP_MAC_CTX* ctx = impl_->mac_ctx.get();
    std::size_t length = 0;
    if (EVP_MAC_init(ctx, nullptr, 0, nullptr) != 1 ||
        EVP_MAC_update(ctx, data, line.size()) != 1 ||
        EVP_MAC_final(ctx, digest, &length, sizeof digest) != 1 || length != 32) {
      return false;
    }
  } else {
    EVP_MD_CTX* ctx = impl_->md_ctx.get();
    unsigned int length = 0;
    if (EVP_DigestInit_ex2(ctx, impl_->md.get(), nullptr) != 1 ||
        EVP_DigestUpdate(ctx, data, line.size()) != 1 ||
        EVP_DigestFinal_ex(ctx, digest, &length) != 1 || length != 32) {
      return false;
    }
  }
  to_hex(digest, 32, out.data());
  return true;
}

}  // namespace opsagent::audit

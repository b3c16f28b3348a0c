#pragma once
// std::unique_ptr for objects of C libraries (OpenSSL, libc) that come with their own free
// function: CPtr<BIO, BIO_free> bio(BIO_new(...)).

#include <memory>

namespace opsagent {

/// Deleter that calls the free function `Free` (its result, if any, is ignored).
template <auto Free>
struct CallFree {
  template <typename T>
  void operator()(T* p) const noexcept {
    Free(p);
  }
};

/// Owning pointer to a `T` released with `Free`.
template <typename T, auto Free>
using CPtr = std::unique_ptr<T, CallFree<Free>>;

}  // namespace opsagent

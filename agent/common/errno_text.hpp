#pragma once
// The text of an errno value, from any thread and without allocating (for the noexcept paths
// that report a failed write). strerror() may format an unknown value into a buffer shared by
// all threads; glibc's strerrordesc_np() returns a constant string, the same text strerror()
// gives in the C locale.

#include <cstring>

namespace opsagent::common {

inline const char* errno_text(int err) noexcept {
  const char* text = ::strerrordesc_np(err);
  return text != nullptr ? text : "Unknown error";
}

}  // namespace opsagent::common

#pragma once
// Reporting when memory may be what is missing (SECURITY-MATRIX H5): a failure report must never
// become a second failure. Every function here is noexcept.

#include <exception>
#include <utility>

#include <spdlog/spdlog.h>

namespace opsagent {

/// The what() of the exception `e` holds, or "unknown exception". The text lives in the exception
/// object: use it only while `e` is alive.
inline const char* exception_text(const std::exception_ptr& e) noexcept {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    return ex.what();
  } catch (...) {  // not a std::exception: nothing to describe it with
  }
  return "unknown exception";
}

/// What a coroutine reports when Asio destroyed the operation it awaited without completing it:
/// an allocation failing inside Asio's own machinery, outside any coroutine, throws out of
/// io_context::run() and takes the operation's handler with it (SECURITY-MATRIX H5).
class LostOperation : public std::exception {
 public:
  [[nodiscard]] const char* what() const noexcept override {
    return "an operation was lost to an allocation failure inside Asio";
  }
};

namespace detail {
inline const std::exception_ptr kLostOperation = std::make_exception_ptr(LostOperation{});
}  // namespace detail

/// A LostOperation made at start-up, to report one without allocating.
inline const std::exception_ptr& lost_operation() noexcept { return detail::kLostOperation; }

/// spdlog at `level`, dropping the message if formatting or logging it throws (std::bad_alloc).
template <typename... Args>
void log_noexcept(spdlog::level::level_enum level, spdlog::format_string_t<Args...> format,
                  Args&&... args) noexcept {
  try {
    spdlog::log(level, format, std::forward<Args>(args)...);
  } catch (...) {  // out of memory for the message as well: nothing left to report it with
  }
}

}  // namespace opsagent

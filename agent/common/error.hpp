#pragma once
// The error vocabulary shared by every component: a stable protocol code plus a human message.

#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace opsagent {

/// Stable, lower-case codes that appear on the wire after `ERR` (see docs/protocol.md).
enum class ErrorCode {
  usage,     ///< malformed line or wrong arguments
  unknown,   ///< no such command
  denied,    ///< the policy does not allow it
  notfound,  ///< named log, file, command or system log does not exist
  limit,     ///< a size or count limit was exceeded
  timeout,   ///< a time limit was exceeded
  busy,      ///< too many clients, children or queued work
  failed,    ///< the command ran and exited non-zero or was killed by a signal
  internal,  ///< the agent could not do what it should (I/O error, audit unavailable, ...)
};

/// The wire spelling of a code, e.g. "denied".
std::string_view to_string(ErrorCode code) noexcept;

/// An expected failure carried as a value (never thrown on the data path).
struct Error {
  ErrorCode code = ErrorCode::internal;
  std::string message;
};

/// A value or an Error. Deliberately tiny: C++20 has no std::expected.
template <typename T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  /// True when a value is held.
  [[nodiscard]] bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }
  /// The value; only valid when ok().
  [[nodiscard]] T& value() & { return std::get<0>(v_); }
  [[nodiscard]] const T& value() const& { return std::get<0>(v_); }
  [[nodiscard]] T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  /// The error; only valid when !ok().
  [[nodiscard]] const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

/// Result for operations with nothing to return.
struct Unit {};
using Status = Result<Unit>;
inline Status ok_status() { return Unit{}; }

}  // namespace opsagent

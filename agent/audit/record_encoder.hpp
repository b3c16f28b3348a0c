#pragma once
// Encodes one audit record straight into a string, without a JSON DOM: one line of strict,
// ASCII-only JSON. Every control character, U+2028/U+2029 and every non-ASCII code point is
// escaped (\uXXXX, surrogate pairs above U+FFFF); invalid UTF-8 becomes U+FFFD. Nothing a client
// sends can therefore split a record or act on the terminal of whoever reads the log
// (SECURITY-MATRIX F1). Pure; not thread-safe (one encoder per record).

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace opsagent::audit {

/// Appends `s` as a JSON string literal (with its quotes) to `out`.
void append_json_string(std::string& out, std::string_view s);

/// Appends `s` as a JSON string cut to `max` bytes, with "...[truncated, N bytes]" when cut.
void append_json_string_cut(std::string& out, std::string_view s, std::size_t max);

/// Appends any nlohmann::json value (objects, arrays, scalars) with the escaping above.
void append_json_value(std::string& out, const nlohmann::json& value);

/// The name of a field, written in the agent's code: checked when the agent is compiled to need
/// no escaping (printable ASCII but '"' and '\\'), so that encoding copies it as it is. A name
/// only known at run time goes through RecordEncoder::json, which escapes it.
class FieldName {
 public:
  // Implicit on purpose: rec.str("principal", ...). consteval: a name that would need escaping
  // does not compile.
  consteval FieldName(const char* name)  // NOLINT(google-explicit-constructor)
      : name_(name) {
    for (const char c : name_) {
      if (c < 0x20 || c >= 0x7F || c == '"' || c == '\\') {
        throw "a field name must be printable ASCII without '\"' or '\\'";
      }
    }
  }
  [[nodiscard]] constexpr std::string_view view() const noexcept { return name_; }

 private:
  std::string_view name_;
};

/// Builds the body of a record: `"event":"NAME","k":v,...` (no braces). The writer adds the
/// standard fields (seq, ts, host, instance, pid) in front and closes the object.
class RecordEncoder {
 public:
  explicit RecordEncoder(std::string_view event);
  /// Starts with a copy of `body`, the body() of an encoder (a cached prefix, e.g. a session's
  /// last decision), to add more fields to.
  static RecordEncoder continuing(std::string_view body);

  RecordEncoder& str(FieldName key, std::string_view value);
  RecordEncoder& str_cut(FieldName key, std::string_view value, std::size_t max);
  RecordEncoder& num(FieldName key, std::int64_t value);
  RecordEncoder& unum(FieldName key, std::uint64_t value);
  RecordEncoder& boolean(FieldName key, bool value);
  RecordEncoder& strings_cut(FieldName key, const std::vector<std::string>& values,
                             std::size_t max);
  /// Any value, under a name that may come from anywhere (escaped like a value).
  RecordEncoder& json(std::string_view key, const nlohmann::json& value);

  /// The body so far; take() moves it out.
  [[nodiscard]] const std::string& body() const noexcept { return out_; }
  [[nodiscard]] std::string take() noexcept { return std::move(out_); }

 private:
  RecordEncoder() noexcept = default;
  void key(FieldName k);
  std::string out_;
};

/// True for the standard keys the writer sets; a caller's field of that name is dropped.
bool is_reserved_key(std::string_view key) noexcept;

}  // namespace opsagent::audit

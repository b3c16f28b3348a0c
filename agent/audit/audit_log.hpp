#pragma once
// The audit trail: one JSON object per line, one write(2) per record, in its own file and never
// mixed with diagnostics. See docs/audit.md for the events and their fields.

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "agent/common/error.hpp"
#include "agent/common/json_release.hpp"
#include "agent/common/unique_fd.hpp"

namespace opsagent::audit {

/// Thread-safe: record() may be called from any thread. Records are appended with O_APPEND in a
/// single write each, so a crash can at worst truncate the last line. Every record carries a
/// strictly increasing `seq`, the UTC time, the event name and the agent's pid.
class AuditLog {
 public:
  /// Opens (creating with mode 0640) `path` for appending; refuses a symbolic link or anything
  /// but a regular file at that path.
  static Result<std::unique_ptr<AuditLog>> open(const std::filesystem::path& path);

  /// One field of a record, as in record("auth_ok", {{"conn", id}, {"peer", peer}}). Unlike
  /// nlohmann::json's own {{"key", value}} lists, building and dropping these never allocates
  /// inside a destructor (common/json_release.hpp).
  struct Field {
    const char* key;
    mutable nlohmann::json value;  // mutable: moved out of the initializer_list
    ~Field() { release_json(value); }
  };

  /// Appends one record {"ts","seq","event",...fields}. Returns false when the write failed
  /// (the log then reports unhealthy until a later write succeeds) or when there was no memory
  /// to encode the record (std::bad_alloc; health unchanged). Never throws, and leaves `fields`
  /// released, so that no allocation failure here can end the process (SECURITY-MATRIX H5).
  bool record(std::string_view event, std::initializer_list<Field> fields) noexcept;
  bool record(std::string_view event, nlohmann::json fields) noexcept;

  /// Reopens the file at path() (after a rotation renamed it): later records go to the new file,
  /// which is created like open() does. On failure the current file stays in use.
  Status reopen();

  /// When the file in use has been deleted (its link count is 0: `rm` instead of a rotation),
  /// opens a new one at path() like reopen() and returns true; false when the file is still
  /// linked. Records written between the deletion and this call went to the deleted file. An
  /// error when the check or the new file failed (the deleted file then stays in use). Blocking.
  Result<bool> reopen_if_deleted();

  /// False after a failed write (disk full, I/O error): callers then refuse new commands.
  [[nodiscard]] bool healthy() const noexcept { return healthy_.load(std::memory_order_acquire); }
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

  /// Encodes one record as a single line (no LF): ASCII-only JSON, every control character and
  /// non-ASCII code point escaped, invalid UTF-8 replaced. Pure; exposed for tests.
  static std::string encode(const nlohmann::json& record);

 private:
  AuditLog(std::filesystem::path path, UniqueFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}
  static void report_unencodable(std::string_view event) noexcept;

  std::filesystem::path path_;
  std::mutex mutex_;
  UniqueFd fd_;            // GUARDED_BY(mutex_)
  std::uint64_t seq_ = 0;  // GUARDED_BY(mutex_)
  std::atomic<bool> healthy_{true};
};

}  // namespace opsagent::audit

#pragma once
// The audit trail: one JSON object per line, in its own file and never mixed with diagnostics.
// A facade over the record encoder (record_encoder.hpp) and the one writer thread
// (audit_writer.hpp). See docs/audit.md for the events and their fields.

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/system/error_code.hpp>
#include <nlohmann/json.hpp>

#include "agent/audit/audit_writer.hpp"
#include "agent/audit/receipt.hpp"
#include "agent/audit/record_encoder.hpp"
#include "agent/common/error.hpp"
#include "agent/common/json_release.hpp"

namespace opsagent::audit {

/// Thread-safe: every member may be called from any thread. Records are queued to one writer
/// thread that appends them in batches (one write(2) per batch, O_APPEND), so a crash can at
/// worst truncate the last line. Every record carries a strictly increasing `seq`, the UTC time,
/// the event, `host`, the agent's `instance` and `pid`.
class AuditLog {
 public:
  struct Options {
    std::string host = "localhost";  ///< audit.host
    std::string instance;            ///< an id per agent start; made up when empty
    std::size_t max_queue_bytes = std::size_t{8} << 20;
    std::string chain_key;  ///< audit.chain_key_file's bytes: HMAC-SHA-256 chain; empty: SHA-256
    SyncPolicy sync = SyncPolicy::interval;         ///< audit.sync
    std::chrono::milliseconds sync_interval{1000};  ///< audit.sync_interval_ms
    std::vector<SinkOptions> sinks;                 ///< audit.journald, audit.syslog
  };

  /// Opens (creating with mode 0640) `path` for appending; refuses a symbolic link or anything
  /// but a regular file at that path; reads where the file's hash chain ends (its last whole
  /// record) so the first record, an audit_file_start header, links to it; starts the writer.
  static Result<std::unique_ptr<AuditLog>> open(const std::filesystem::path& path, Options options);
  static Result<std::unique_ptr<AuditLog>> open(const std::filesystem::path& path) {
    return open(path, Options{});
  }

  /// One field of a record, as in record("auth_ok", {{"conn", id}, {"peer", peer}}). Unlike
  /// nlohmann::json's own {{"key", value}} lists, building and dropping these never allocates
  /// inside a destructor (common/json_release.hpp).
  // An aggregate (declared copy or move members would end that); never copied.
  struct Field {  // NOLINT(cppcoreguidelines-special-member-functions)
    const char* key;
    mutable nlohmann::json value;  // mutable: moved out of the initializer_list
    // NOLINTNEXTLINE(bugprone-exception-escape): release_json() throws nothing
    ~Field() { release_json(value); }
  };

  /// Queues one record {"seq","ts","host","instance","pid","event",...fields} without waiting
  /// for it (fire and forget). Returns false when it was not queued: no memory to encode it, or
  /// the queue is full (audit.max_queue_bytes); also false while the log is unhealthy. Never
  /// throws; fields named like a standard field are dropped.
  bool record(std::string_view event, std::initializer_list<Field> fields) noexcept;
  bool record(std::string_view event, nlohmann::json fields) noexcept;
  bool record(RecordEncoder&& rec) noexcept;

  /// Queues one record whose write the caller checks later (Receipt::wait), e.g. before the
  /// reply it stands for leaves. Not bounded by audit.max_queue_bytes: each caller bounds the
  /// receipts it holds unchecked (server::HeldReplies). Never blocks. Throws std::bad_alloc when
  /// the record cannot be queued (nothing was queued then).
  Receipt queue(RecordEncoder rec);

  /// Queues one record and completes once the batch holding it was written: an empty
  /// error_code, or the write error (fail closed). Never blocks the calling thread. Throws
  /// std::bad_alloc when the record cannot be queued (nothing was queued then).
  boost::asio::awaitable<boost::system::error_code> commit(RecordEncoder rec);

  /// Reopens the file at path() (after a rotation renamed it). On failure the current file stays.
  Status reopen() { return writer_->reopen(); }

  /// When the file in use has been deleted (link count 0), opens a new one at path() and
  /// returns true; false when it is still linked. Blocking.
  Result<bool> reopen_if_deleted() { return writer_->reopen_if_deleted(); }

  /// Blocks until every record queued so far is written (or failed). Not on an I/O thread.
  void flush() { writer_->flush(); }

  /// False after a failed write (disk full, I/O error): callers then refuse new commands.
  [[nodiscard]] bool healthy() const noexcept { return writer_->healthy(); }
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return writer_->path(); }
  [[nodiscard]] const std::string& instance() const noexcept { return instance_; }

  /// Encodes a JSON object as a single line (no LF): ASCII-only JSON, every control character
  /// and non-ASCII code point escaped, invalid UTF-8 replaced. Pure; exposed for tests.
  static std::string encode(const nlohmann::json& record);

 private:
  friend class RecordBatch;  // queues its chain on writer_
  AuditLog(std::unique_ptr<AuditWriter> writer, std::string instance)
      : writer_(std::move(writer)), instance_(std::move(instance)) {}
  static void report_unencodable(std::string_view event) noexcept;

  std::unique_ptr<AuditWriter> writer_;
  std::string instance_;
};

}  // namespace opsagent::audit

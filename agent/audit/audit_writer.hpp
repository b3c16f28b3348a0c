#pragma once
// The one thread that writes the audit file: records are queued (bounded by bytes) and written
// in batches, one write(2) per batch (group commit). Each record gets its sequence number and
// time stamp in queue order, and its `prev` (the hash chain, hash_chain.hpp) while the writer
// assembles the batch; every file starts with an `audit_file_start` header that links to the
// file before. A record is completed once the batch holding it is written (and synced, with
// SyncPolicy::every_record) or failed. After that, and only when the batch was written, the
// writer sends a copy of each of its records to the configured sinks (datagram_sink.hpp).

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/system/error_code.hpp>

#include "agent/audit/chain_tail.hpp"
#include "agent/audit/datagram_sink.hpp"
#include "agent/audit/hash_chain.hpp"
#include "agent/audit/record_buffers.hpp"
#include "agent/common/error.hpp"
#include "agent/common/unique_fd.hpp"

namespace opsagent::audit {

/// One queued record. Allocated by the caller before it is queued, so that queueing itself
/// never allocates (no completion can be lost to a failed allocation: SECURITY-MATRIX H5).
class PendingRecord {
 public:
  explicit PendingRecord(std::string body) noexcept : body_(std::move(body)) {}
  /// The body's buffer goes back to this thread's cache (record_buffers.hpp).
  virtual ~PendingRecord() { record_buffers::give_body(std::move(body_)); }
  PendingRecord(const PendingRecord&) = delete;
  PendingRecord& operator=(const PendingRecord&) = delete;

  /// Called on the writer thread once the batch holding this record was written (`ec` empty)
  /// or not. Returns true when it took care of the record (and deleted it); false when it could
  /// not hand the result on yet (no memory): the writer keeps it and calls again later.
  virtual bool complete(boost::system::error_code /*ec*/) noexcept {
    delete this;
    return true;
  }

 private:
  friend class AuditWriter;
  friend class RecordBatch;
  PendingRecord* next_ = nullptr;
  std::string body_;                  // "event":"...",... (RecordEncoder::body)
  std::int64_t time_us_ = 0;          // UTC, set when queued
  boost::system::error_code result_;  // set by the writer before complete()
};

/// When written batches are forced to the disk (audit.sync).
enum class SyncPolicy {
  none,          ///< never: the kernel writes back when it likes
  interval,      ///< fdatasync at most every sync_interval, when something was written
  every_record,  ///< fdatasync after every batch, before its records are completed
};

struct WriterOptions {
  std::size_t max_queue_bytes = std::size_t{8} << 20;
  std::string chain_key;  ///< empty: SHA-256 chain; else HMAC-SHA-256 under this key
  ChainTail tail;         ///< where the existing file's chain ends (read_chain_tail)
  SyncPolicy sync = SyncPolicy::interval;
  std::chrono::milliseconds sync_interval{1000};
  /// Where copies of written records go (journald, syslog); empty: nowhere.
  std::vector<SinkOptions> sinks;
};

/// Thread-safe: enqueue(), healthy(), flush() and reopen*() may be called from any thread.
class AuditWriter {
 public:
  /// `stamp` is put in every record after seq and ts: `"host":"h","instance":"i","pid":N`.
  /// Throws std::runtime_error when the hash chain cannot be set up.
  AuditWriter(std::filesystem::path path, UniqueFd fd, std::string stamp, WriterOptions options);
  /// Writes what is queued, then stops the thread.
  ~AuditWriter();
  AuditWriter(const AuditWriter&) = delete;
  AuditWriter& operator=(const AuditWriter&) = delete;

  /// Queues `r` (ownership passes on true). Never allocates, never throws. With `bounded`, a
  /// record is refused (false, ownership stays) while the queue holds max_queue_bytes or more;
  /// records awaited by a session pass `bounded` = false: each session awaits its record before
  /// it queues the next, so they are bounded by the number of sessions.
  bool enqueue(PendingRecord* r, bool bounded) noexcept { return enqueue_chain(r, r, bounded); }
  /// Queues the records `first` .. `last`, linked by next_ (RecordBatch), in that order and
  /// under one lock; like enqueue() otherwise.
  bool enqueue_chain(PendingRecord* first, PendingRecord* last, bool bounded) noexcept;

  /// Blocks until every record queued before the call was written or failed. Not on I/O threads.
  void flush();

  /// Opens the file at path() again (rotation) / when the open one was deleted. Blocking. A
  /// new file (another inode) gets an audit_file_start header with the next batch.
  Status reopen();
  Result<bool> reopen_if_deleted();

  /// False after a failed write, until a later one succeeds.
  [[nodiscard]] bool healthy() const noexcept { return healthy_.load(std::memory_order_acquire); }
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

 private:
  void run() noexcept;
  boost::system::error_code write_batch(PendingRecord* head) noexcept;
  void complete_all(PendingRecord* head) noexcept;
  bool append_header(std::uint64_t seq, std::int64_t time_us);
  bool append_record(const PendingRecord& r, std::uint64_t seq);
  bool append_line_start(std::uint64_t seq, std::int64_t time_us);
  bool end_line(std::size_t start);
  void append_time(std::int64_t time_us);
  void sync_now() noexcept;
  void ship_batch() noexcept;
  Status reopen_with(const char* reason);

  const std::filesystem::path path_;
  const std::string stamp_;
  const std::size_t max_queue_bytes_;
  const SyncPolicy sync_;
  const std::chrono::milliseconds sync_interval_;

  std::mutex mutex_;
  std::condition_variable wake_;     // the writer: records queued or stop
  std::condition_variable flushed_;  // flush(): a batch is done
  PendingRecord* head_ = nullptr;    // GUARDED_BY(mutex_)
  PendingRecord* tail_ = nullptr;    // GUARDED_BY(mutex_)
  std::size_t queued_bytes_ = 0;     // GUARDED_BY(mutex_)
  std::uint64_t queued_ = 0;         // GUARDED_BY(mutex_): records ever queued
  std::uint64_t done_ = 0;           // GUARDED_BY(mutex_): records ever written or failed
  bool stop_ = false;                // GUARDED_BY(mutex_)

  std::mutex fd_mutex_;  // the file: the writer while it writes, reopen*()
  UniqueFd fd_;          // GUARDED_BY(fd_mutex_)
  // The header the next batch starts with: "" when none is due, else its `reason`
  // ("agent_start", "reopen", "recreated").
  const char* header_reason_ = "agent_start";  // GUARDED_BY(fd_mutex_)
  bool terminate_torn_ = false;  // GUARDED_BY(fd_mutex_): LF first, ending a torn line
  bool previous_torn_ = false;   // GUARDED_BY(fd_mutex_): noted in the next header
  bool dirty_ = false;           // GUARDED_BY(fd_mutex_): written since the last fdatasync

  // Writer thread only.
  HashChain chain_;
  ChainHash last_hash_;   // hash of the last record written (the next `prev`)
  ChainHash batch_hash_;  // the same while a batch is assembled, committed once written
  std::uint64_t seq_ = 0;
  std::chrono::steady_clock::time_point last_sync_ = std::chrono::steady_clock::now();
  bool unsynced_ = false;  // written since the last fdatasync (SyncPolicy::interval)
  std::string batch_;
  std::int64_t second_ = -1;                          // the second whose text is in second_text_
  char second_text_[24] = {};                         // "YYYY-MM-DDTHH:MM:SS"
  PendingRecord* retry_ = nullptr;                    // completions that could not be handed on yet
  std::vector<std::unique_ptr<DatagramSink>> sinks_;  // copies of each written batch's records

  std::atomic<bool> healthy_{true};
  std::thread thread_;  // last: started once everything above exists
};

}  // namespace opsagent::audit

#pragma once
// Records a session holds back to queue together: those of pipelined built-ins (ping, whoami…),
// whose replies are held anyway until their records are written (server::HeldReplies). The batch
// goes to the writer as one chain, under one lock and with at most one wake-up, instead of one
// enqueue per record. The session queues it before it waits for any of its records and before it
// queues any other record of its own (so the log keeps the session's order); a batch still held
// when it is destroyed is queued then: a record once built is written, also when its client left.

#include "agent/audit/receipt.hpp"
#include "agent/audit/record_encoder.hpp"

namespace opsagent::audit {

class AuditLog;

/// One per session, used on its strand only.
class RecordBatch {
 public:
  explicit RecordBatch(AuditLog& log) noexcept : log_(log) {}
  RecordBatch(const RecordBatch&) = delete;
  RecordBatch& operator=(const RecordBatch&) = delete;
  ~RecordBatch() { queue(); }

  /// Holds the record; its receipt completes once the batch was queued and written. Throws
  /// std::bad_alloc (nothing held then).
  Receipt add(RecordEncoder rec);
  /// Queues what is held, as one chain. Never throws: a refusal (the log is closing) completes
  /// each record with the error, as AuditLog::queue does.
  void queue() noexcept;
  [[nodiscard]] bool empty() const noexcept { return first_ == nullptr; }

 private:
  AuditLog& log_;
  SharedRecord* first_ = nullptr;
  SharedRecord* last_ = nullptr;
};

}  // namespace opsagent::audit

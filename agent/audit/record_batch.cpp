#include "agent/audit/record_batch.hpp"

#include <cerrno>
#include <utility>

#include "agent/audit/audit_log.hpp"

namespace opsagent::audit {

Receipt RecordBatch::add(RecordEncoder rec) {
  auto* record = new SharedRecord(rec.take());
  Receipt receipt(record);
  if (last_ != nullptr) {
    last_->next_ = record;
  } else {
    first_ = record;
  }
  last_ = record;
  return receipt;
}

void RecordBatch::queue() noexcept {
  if (first_ == nullptr) return;
  SharedRecord* first = std::exchange(first_, nullptr);
  SharedRecord* last = std::exchange(last_, nullptr);
  if (log_.writer_->enqueue_chain(first, last, false)) return;
  const boost::system::error_code refused(ESHUTDOWN, boost::system::system_category());
  for (PendingRecord* r = first; r != nullptr;) {
    PendingRecord* next = r == last ? nullptr : r->next_;
    r->complete(refused);  // SharedRecord's: stores the error and drops the writer's share
    r = next;
  }
}

}  // namespace opsagent::audit

#pragma once
// The final lines of pipelined commands, held so that their replies leave in one write (one TLS
// record), with the audit receipts they depend on. A command that runs nothing (ping, whoami…)
// queues its audit record without waiting for it; its reply is held here, and take() waits
// until the records are written before anything leaves: the client never sees an OK whose
// record is not on disk, yet a batch of pipelined pings waits for the disk once, not once each.

#include <cstddef>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "agent/audit/receipt.hpp"
#include "agent/audit/record_batch.hpp"
#include "agent/protocol/reply_formatter.hpp"

namespace opsagent::server {

/// One per session, used only on its strand.
class HeldReplies {
 public:
  /// `records`: the session's batch of held records, queued before take() waits for them.
  explicit HeldReplies(audit::RecordBatch* records = nullptr) noexcept : records_(records) {}

  /// Held bytes and unchecked receipts beyond which the session writes what it holds.
  static constexpr std::size_t kMaxBytes = std::size_t{16} * 1024;
  static constexpr std::size_t kMaxReceipts = 64;

  void add(const std::string& line) { append(line); }
  /// `line` may leave once `receipt`'s record was written. If the write failed and
  /// `fail_closed`, the line is replaced by the "audit log unavailable" error, framed in `mode`
  /// (the reply may not say OK for what the audit trail could not record).
  void add_checked(const std::string& line, audit::Receipt receipt, bool fail_closed,
                   protocol::Mode mode);

  [[nodiscard]] bool empty() const noexcept { return bytes_.empty() && checks_.empty(); }
  [[nodiscard]] bool full() const noexcept {
    return bytes_.size() >= kMaxBytes || checks_.size() >= kMaxReceipts;
  }

  /// Waits for the records of every held line, then hands out the bytes to write and holds
  /// nothing more.
  boost::asio::awaitable<std::string> take();
  /// Drops everything held (the client is gone): the records are still written.
  void clear() noexcept;

 private:
  // Room taken when the first line is held: a batch of short replies (pipelined pings) then
  // grows the buffer once, not by doubling from the string's inline 15 bytes.
  static constexpr std::size_t kFirstRoom = 256;
  void append(const std::string& line) {
    if (bytes_.empty()) bytes_.reserve(kFirstRoom);
    bytes_ += line;
  }

  struct Check {
    std::size_t offset;  // of the line in bytes_
    std::size_t length;
    audit::Receipt receipt;
    bool fail_closed;
    protocol::Mode mode;
  };
  audit::RecordBatch* records_;
  std::string bytes_;
  std::vector<Check> checks_;
};

/// The final line that stands in for an OK whose audit record could not be written.
std::string audit_unavailable_line(protocol::Mode mode);

}  // namespace opsagent::server

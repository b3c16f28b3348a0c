#include "agent/server/held_replies.hpp"

#include <utility>

#include "agent/common/error.hpp"
#include "agent/server/audit_unavailable.hpp"

namespace opsagent::server {

void HeldReplies::add_checked(const std::string& line, audit::Receipt receipt, bool fail_closed,
                              protocol::Mode mode) {
  checks_.reserve(kMaxReceipts);  // once per session: adding a check allocates nothing more
  const std::size_t offset = bytes_.size();
  append(line);
  checks_.push_back(Check{offset, line.size(), std::move(receipt), fail_closed, mode});
}

boost::asio::awaitable<std::string> HeldReplies::take() {
  if (records_ != nullptr) records_->queue();
  bool rewrite = false;
  // Records are written in the order they were queued: once the first is done, so are most.
  for (const Check& c : checks_) {
    if (!c.receipt.done()) {
      co_await c.receipt.wait();
    }
    rewrite = rewrite || (c.fail_closed && c.receipt.result());
  }
  std::string out;
  if (!rewrite) {
    out = std::exchange(bytes_, {});
  } else {
    std::size_t from = 0;
    for (const Check& c : checks_) {
      if (!c.fail_closed || !c.receipt.result()) continue;
      out.append(bytes_, from, c.offset - from);
      out += audit_unavailable_line(c.mode);
      from = c.offset + c.length;
    }
    out.append(bytes_, from);
    bytes_.clear();
  }
  checks_.clear();
  co_return out;
}

void HeldReplies::clear() noexcept {
  bytes_.clear();
  checks_.clear();
}

std::string audit_unavailable_line(protocol::Mode mode) {
  protocol::ReplyFormatter fmt;
  fmt.set_mode(mode);
  std::string line;
  fmt.error(line, ErrorCode::internal, kAuditUnavailable);
  return line;
}

}  // namespace opsagent::server

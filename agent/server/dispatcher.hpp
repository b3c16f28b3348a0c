#pragma once
// The gate every command line passes, top to bottom: parse, look up, check arity, authorise,
// audit the decision, execute, write the final line, audit the result. What commands do lives
// behind CommandHandlers (commands.hpp); the gate only decides and records. One Dispatcher per
// session, used only on that session's strand.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "agent/audit/audit_log.hpp"
#include "agent/audit/record_batch.hpp"
#include "agent/common/error.hpp"
#include "agent/policy/policy.hpp"
#include "agent/server/command_handlers.hpp"
#include "agent/server/reply_stream.hpp"
#include "agent/server/session_info.hpp"
#include "agent/server/snapshot.hpp"

namespace opsagent::server {

class Dispatcher {
 public:
  enum class Next { keep_open, close };

  Dispatcher(audit::AuditLog& audit, Snapshot<const policy::Policy>& policy,
             const SessionInfo& info, ReplySink& sink, std::unique_ptr<CommandHandlers> handlers,
             bool audit_builtins = true, audit::RecordBatch* held_records = nullptr);

  /// Handles one line (without its LF) and writes its whole reply. Every command that gets past
  /// parsing is audited (`command`, awaited until written) before anything is executed, allowed
  /// or not, and a command other than a built-in is refused when that record cannot be written
  /// (fail closed); its result (`command_end`) is written before its final line is sent. A verb
  /// that runs nothing (ping, help, whoami, json) gets one `command` record holding decision and
  /// outcome, or none when allowed and `audit_builtins` is false (audit.builtins: denied).
  /// With `held_records` (the session's), that record joins the batch the session queues when
  /// the reply is about to leave; the other records queue that batch first.
  boost::asio::awaitable<Next> handle_line(std::string_view line);

  /// The client went away: kill a running child, stop a running digest. Same strand only.
  void cancel_active() noexcept { handlers_->cancel(); }

  /// Reply framing (text or JSON) in force on this session.
  [[nodiscard]] const protocol::ReplyFormatter& formatter() const { return out_.formatter(); }

  /// Number of commands handled, for the disconnect record.
  [[nodiscard]] std::uint64_t commands() const noexcept { return commands_; }

  /// A reload replaced the policy: let go of this session's copy of the old one unless a command
  /// is using it (then the next command lets go of it). Same strand only.
  void policy_replaced() noexcept;

 private:
  // A line that does not parse: audited and answered; the connection stays usable.
  boost::asio::awaitable<void> reject_unparsable(std::string_view line, const Error& error);
  // authorize() for `cmd` under `policy`, the `generation`th policy this session has seen. The
  // last decision for a verb without arguments is kept and given again while the policy and the
  // principal are the same (authorize() is pure): pipelined pings are decided once. The
  // reference stays valid until the next call.
  const policy::Decision& decide(const policy::Policy& policy, std::uint64_t generation,
                                 const protocol::Command& cmd);
  [[nodiscard]] audit::RecordEncoder decision_record(const protocol::Command& cmd,
                                                     const std::optional<Outcome>& early,
                                                     const policy::Decision& decision,
                                                     const std::string& policy_version) const;
  // decision_record() for an allowed built-in; for a kept decision (pipelined pings) made once
  // and copied after.
  [[nodiscard]] audit::RecordEncoder builtin_record(const protocol::Command& cmd,
                                                    const policy::Decision& decision,
                                                    const std::string& policy_version);
  // Queues the held batch first (the session's order), then `rec`, and waits for it.
  boost::asio::awaitable<boost::system::error_code> commit(audit::RecordEncoder rec);
  static void result_fields(audit::RecordEncoder& rec, const Outcome& outcome,
                            std::uint64_t bytes_out, std::int64_t duration_ms);

  audit::AuditLog& audit_;
  Snapshot<const policy::Policy>::Cached policy_;
  bool in_command_ = false;  // handle_line() is running: policy_'s copy is in use
  const SessionInfo& info_;
  ReplyStream out_;
  std::unique_ptr<CommandHandlers> handlers_;
  std::uint64_t commands_ = 0;
  // The last decision for a verb without arguments, what it was made from, and once a built-in
  // was audited with it, its decision record (`"event":"command",...,"policy_version":"..."`).
  struct KnownDecision {
    std::uint64_t generation;
    std::string principal, verb;
    std::vector<std::string> roles;
    policy::Decision decision;
    std::string record;
  };
  std::optional<KnownDecision> known_;  // see decide()
  policy::Decision fresh_;              // decide()'s answer when it is not kept
  bool audit_builtins_ = true;
  audit::RecordBatch* held_records_ = nullptr;
};

}  // namespace opsagent::server

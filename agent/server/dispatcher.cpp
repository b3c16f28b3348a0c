#include "agent/server/dispatcher.hpp"

#include <chrono>
#include <optional>

#include <fmt/format.h>

#include "agent/common/json_release.hpp"
#include "agent/metrics/registry.hpp"
#include "agent/protocol/verbs.hpp"
#include "agent/server/audit_unavailable.hpp"

namespace opsagent::server {
namespace asio = boost::asio;

namespace {

constexpr std::size_t kAuditArgMax = 1024;  // longer arguments are cut, with their length noted

// Verbs that run nothing: they answer from the session's own state. One audit record each.
bool runs_nothing(protocol::Verb verb) {
  using protocol::Verb;
  return verb == Verb::ping || verb == Verb::help || verb == Verb::whoami || verb == Verb::json;
}

// Verbs answered from the session's own state, without files, children or the blocking pool:
// their final lines may wait for the replies to the lines pipelined behind them.
bool answers_at_once(protocol::Verb verb) {
  using protocol::Verb;
  return verb == Verb::ping || verb == Verb::help || verb == Verb::whoami || verb == Verb::json ||
         verb == Verb::exit || verb == Verb::quit;
}

}  // namespace

Dispatcher::Dispatcher(audit::AuditLog& audit, Snapshot<const policy::Policy>& policy,
                       const SessionInfo& info, ReplySink& sink,
                       std::unique_ptr<CommandHandlers> handlers, bool audit_builtins,
                       audit::RecordBatch* held_records)
    : audit_(audit),
      policy_(policy),
      info_(info),
      out_(sink),
      handlers_(std::move(handlers)),
      audit_builtins_(audit_builtins),
      held_records_(held_records) {}

asio::awaitable<Dispatcher::Next> Dispatcher::handle_line(std::string_view line) {
  const auto started = std::chrono::steady_clock::now();
  out_.start_command();

  // 1. Parse. A malformed line is answered and audited; the connection stays usable.
  auto parsed = protocol::parse_command(line);
  if (!parsed) {
    co_await reject_unparsable(line, parsed.error());
    co_return Next::keep_open;
  }
  const protocol::Command& cmd = parsed.value();
  // A line without words is a no-op. An empty quoted first word ('' or "") also parses to an
  // empty verb, but the line is not blank: it goes on to be refused (and audited) as unknown.
  if (cmd.verb.empty() && line.find_first_not_of(" \r") == std::string_view::npos) {
    co_return Next::keep_open;
  }
  ++commands_;

  // 2. Look up and 3. check arity.
  std::optional<Outcome> early;
  const protocol::VerbSpec* verb = protocol::find_verb(cmd.verb);
  if (verb == nullptr) {
    early = Outcome::failure(ErrorCode::unknown,
                             fmt::format("command not found: {} (try help)", cmd.verb));
  } else if (!protocol::arity_fits(*verb, cmd.args.size())) {
    early = Outcome::failure(ErrorCode::usage, fmt::format("usage: {}", verb->usage));
  }

  // 4. Authorise against one policy snapshot, and audit the decision before acting on it.
  // The session's copy of the policy stays as it is until this command ends (policy_replaced()).
  // Should the command end by an exception instead, the session ends with it.
  in_command_ = true;
  const std::shared_ptr<const policy::Policy>& policy = policy_.get();
  static const policy::Decision kNotDecided;
  const policy::Decision& decision =
      early ? kNotDecided : decide(*policy, policy_.generation(), cmd);
  metrics::registry().command(verb, early              ? metrics::Decision::reject
                                    : decision.allowed ? metrics::Decision::allow
                                                       : metrics::Decision::deny);
  // A verb that runs nothing gets one record, decision and outcome together, after it ran and
  // before its final line leaves.
  const bool allowed = !early && decision.allowed;
  const bool one_record = allowed && runs_nothing(verb->verb);
  const bool fail_closed = allowed && verb->grant != protocol::Grant::builtin;
  if (!one_record) {
    auto rec = decision_record(cmd, early, decision, policy->version);
    const boost::system::error_code written = co_await commit(std::move(rec));
    if (!early && !decision.allowed) {
      early = Outcome::failure(ErrorCode::denied, decision.reason);
    } else if (!early && written && fail_closed) {
      // Fail closed: nothing runs that the audit trail cannot record.
      early = Outcome::failure(ErrorCode::internal, kAuditUnavailable);
    }
  } else if (fail_closed && !audit_.healthy()) {
    early = Outcome::failure(ErrorCode::internal, kAuditUnavailable);
  }

  // 5. Execute.
  // (No co_await inside ?: : GCC 12 miscompiles the temporaries of such an expression.)
  Outcome outcome;
  if (early) {
    outcome = std::move(*early);
  } else {
    // Replies held for pipelining leave before a command that may take a while.
    if (!answers_at_once(verb->verb)) {
      co_await out_.flush();
    }
    outcome = co_await handlers_->execute(*verb, cmd, decision, out_);
  }

  // 6. The result record, then the final line.
  std::string final_line;
  if (!outcome.client_gone) {
    if (outcome.ok) {
      out_.formatter().ok(final_line, outcome.message, outcome.fields);
    } else {
      out_.formatter().error(final_line, outcome.code, outcome.message, outcome.fields);
    }
  }
  const auto elapsed = std::chrono::steady_clock::now() - started;
  const auto duration = std::chrono::duration_cast<std::chrono::milliseconds>(elapsed);
  metrics::registry().command_duration[metrics::verb_slot(verb)].observe(elapsed);
  // A verb that runs nothing does not wait for its record: its reply is held until the record is
  // written (HeldReplies), so the records of pipelined commands share one wait for the disk.
  const bool held = one_record && audit_builtins_ && !outcome.client_gone;
  audit::Receipt receipt;
  if (!one_record || audit_builtins_) {
    audit::RecordEncoder rec = one_record ? builtin_record(cmd, decision, policy->version)
                                          : audit::RecordEncoder("command_end");
    if (!one_record) {
      rec.unum("conn", info_.id).str("principal", info_.principal.name);
      rec.str_cut("command", cmd.verb, kAuditArgMax).strings_cut("args", cmd.args, kAuditArgMax);
    }
    result_fields(rec, outcome, out_.bytes_sent() + final_line.size(), duration.count());
    if (held) {
      receipt = held_records_ != nullptr ? held_records_->add(std::move(rec))
                                         : audit_.queue(std::move(rec));
    } else {
      const boost::system::error_code written = co_await commit(std::move(rec));
      if (written && one_record && fail_closed && !outcome.client_gone) {
        // The reply may not say OK for what the audit trail could not record.
        outcome = Outcome::failure(ErrorCode::internal, kAuditUnavailable);
        final_line.clear();
        out_.formatter().error(final_line, outcome.code, outcome.message, outcome.fields);
      }
    }
  }
  if (!outcome.client_gone) {
    bool sent = false;
    if (held) {
      sent = co_await out_.send_final(std::move(final_line), std::move(receipt), fail_closed);
    } else {
      sent = co_await out_.send_final(std::move(final_line));
    }
    if (!sent) outcome.client_gone = true;
  }
  metrics::registry().reply_bytes.inc(out_.bytes_sent());
  in_command_ = false;
  co_return (outcome.close || outcome.client_gone) ? Next::close : Next::keep_open;
}

// Its own coroutine: locals alive across a co_await make the frame, and GCC gives every local of
// every branch a slot of its own. Kept here, this branch would take handle_line's frame past the
// 1020 bytes that Asio's per-thread recycling allocator reuses: a malloc and a free per command.
asio::awaitable<void> Dispatcher::reject_unparsable(std::string_view line, const Error& error) {
  metrics::registry().command(nullptr, metrics::Decision::reject);
  audit::RecordEncoder rec("command_rejected");
  rec.unum("conn", info_.id).str("principal", info_.principal.name);
  rec.str_cut("line", line, kAuditArgMax).str("reason", error.message);
  co_await commit(std::move(rec));
  std::string out;
  out_.formatter().error(out, error.code, error.message);
  co_await out_.send_final(std::move(out));
  metrics::registry().reply_bytes.inc(out_.bytes_sent());
}

const policy::Decision& Dispatcher::decide(const policy::Policy& policy, std::uint64_t generation,
                                           const protocol::Command& cmd) {
  const policy::Principal& who = info_.principal;
  if (!cmd.args.empty()) {
    fresh_ = policy::authorize(policy, who, cmd.verb, cmd.args);
    return fresh_;
  }
  if (known_ && known_->generation == generation && known_->verb == cmd.verb &&
      known_->principal == who.name && known_->roles == who.roles) {
    return known_->decision;
  }
  known_.reset();
  policy::Decision d = policy::authorize(policy, who, cmd.verb, cmd.args);
  if (d.rule == policy::kInternalErrorRule) {  // out of memory: ask again next time
    fresh_ = std::move(d);
    return fresh_;
  }
  known_ = KnownDecision{generation, who.name, cmd.verb, who.roles, std::move(d), {}};
  return known_->decision;
}

void Dispatcher::policy_replaced() noexcept {
  if (!in_command_) policy_.drop();
}

audit::RecordEncoder Dispatcher::decision_record(const protocol::Command& cmd,
                                                 const std::optional<Outcome>& early,
                                                 const policy::Decision& decision,
                                                 const std::string& policy_version) const {
  audit::RecordEncoder rec("command");
  rec.unum("conn", info_.id).str("principal", info_.principal.name);
  rec.str_cut("command", cmd.verb, kAuditArgMax).strings_cut("args", cmd.args, kAuditArgMax);
  rec.str("decision", early ? "reject" : (decision.allowed ? "allow" : "deny"));
  rec.str("rule", early ? std::string_view("protocol") : std::string_view(decision.rule));
  if (early) {
    rec.str_cut("reason", early->message, kAuditArgMax);
  } else {
    rec.str("reason", decision.reason);
  }
  rec.str("policy_version", policy_version);
  return rec;
}

asio::awaitable<boost::system::error_code> Dispatcher::commit(audit::RecordEncoder rec) {
  if (held_records_ != nullptr) held_records_->queue();
  co_return co_await audit_.commit(std::move(rec));
}

audit::RecordEncoder Dispatcher::builtin_record(const protocol::Command& cmd,
                                                const policy::Decision& decision,
                                                const std::string& policy_version) {
  // `decision` is known_'s own when decide() answered from the kept one. A kept decision was made
  // from this policy, principal and verb, all of which the decision record is made of (with the
  // connection id): its record is byte for byte the same each time.
  KnownDecision* kept = (known_ && &decision == &known_->decision) ? &*known_ : nullptr;
  if (kept != nullptr && !kept->record.empty()) {
    return audit::RecordEncoder::continuing(kept->record);
  }
  audit::RecordEncoder rec = decision_record(cmd, std::nullopt, decision, policy_version);
  if (kept != nullptr) kept->record = rec.body();
  return rec;
}

void Dispatcher::result_fields(audit::RecordEncoder& rec, const Outcome& outcome,
                               std::uint64_t bytes_out, std::int64_t duration_ms) {
  // A command cut short because the client left is `cancelled`, whatever the handler made of it.
  std::string_view status = "ok";
  if (outcome.client_gone) {
    status = "cancelled";
  } else if (!outcome.ok) {
    status = to_string(outcome.code);
  }
  rec.str("status", status);
  rec.unum("bytes_out", bytes_out).num("duration_ms", duration_ms);
  // Messages may quote client text ("command not found: <verb>"): cut like arguments.
  if (!outcome.ok) rec.str_cut("message", outcome.message, kAuditArgMax);
  if (outcome.exit_code) rec.num("exit", *outcome.exit_code);
  if (outcome.signal != 0) rec.num("signal", outcome.signal);
  if (outcome.client_gone) rec.boolean("client_gone", true);
}

}  // namespace opsagent::server

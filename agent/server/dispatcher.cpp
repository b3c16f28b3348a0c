#include "agent/server/dispatcher.hpp"

#include <chrono>
#include <optional>

#include <fmt/format.h>

#include "agent/common/json_release.hpp"
#include "agent/metrics/registry.hpp"
#include "agent/protocol/verbs.hpp"

namespace opsagent::server {
namespace asio = boost::asio;

namespace {

constexpr std::size_t kAuditArgMax = 1024;  // longer arguments are cut, with their length noted

std::string audit_text(std::string_view s) {
  if (s.size() <= kAuditArgMax) return std::string(s);
  return fmt::format("{}...[truncated, {} bytes]", s.substr(0, kAuditArgMax), s.size());
}

nlohmann::json audit_args(const std::vector<std::string>& args) {
  auto out = nlohmann::json::array();
  try {
    for (const auto& a : args) out.push_back(audit_text(a));
  } catch (...) {
    release_json(out);  // see common/json_release.hpp
    throw;
  }
  return out;
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
                       std::unique_ptr<CommandHandlers> handlers)
    : audit_(audit), policy_(policy), info_(info), out_(sink), handlers_(std::move(handlers)) {}

asio::awaitable<Dispatcher::Next> Dispatcher::handle_line(std::string_view line) {
  const auto started = std::chrono::steady_clock::now();
  out_.start_command();

  // 1. Parse. A malformed line is answered and audited; the connection stays usable.
  auto parsed = protocol::parse_command(line);
  if (!parsed) {
    metrics::registry().command(nullptr, metrics::Decision::reject);
    audit_.record("command_rejected", {{"conn", info_.id},
                                       {"principal", info_.principal.name},
                                       {"line", audit_text(line)},
                                       {"reason", parsed.error().message}});
    std::string out;
    out_.formatter().error(out, parsed.error().code, parsed.error().message);
    co_await out_.send_final(std::move(out));
    metrics::registry().reply_bytes.inc(out_.bytes_sent());
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
  const auto policy = policy_.get();
  policy::Decision decision;
  if (!early) decision = policy::authorize(*policy, info_.principal, cmd.verb, cmd.args);
  metrics::registry().command(verb, early              ? metrics::Decision::reject
                                    : decision.allowed ? metrics::Decision::allow
                                                       : metrics::Decision::deny);
  const bool audited = audit_.record(
      "command", {{"conn", info_.id},
                  {"principal", info_.principal.name},
                  {"command", audit_text(cmd.verb)},
                  {"args", audit_args(cmd.args)},
                  {"decision", early ? "reject" : (decision.allowed ? "allow" : "deny")},
                  {"rule", early ? "protocol" : decision.rule},
                  {"reason", early ? audit_text(early->message) : decision.reason},
                  {"policy_version", policy->version}});
  if (!early && !decision.allowed) {
    early = Outcome::failure(ErrorCode::denied, decision.reason);
  } else if (!early && !audited && verb->grant != protocol::Grant::builtin) {
    // Fail closed: nothing runs that the audit trail cannot record.
    early = Outcome::failure(ErrorCode::internal, "audit log unavailable; commands are refused");
  }

  // 5. Execute.
  // (No co_await inside ?: : GCC 12 miscompiles the temporaries of such an expression.)
  Outcome outcome;
  if (early) {
    outcome = std::move(*early);
  } else {
    // Replies held for pipelining leave before a command that may take a while.
    if (!answers_at_once(verb->verb)) co_await out_.flush();
    outcome = co_await handlers_->execute(*verb, cmd, decision, out_);
  }

  // 6. Final line and the result record.
  if (!outcome.client_gone) {
    std::string out;
    if (outcome.ok) {
      out_.formatter().ok(out, outcome.message, outcome.fields);
    } else {
      out_.formatter().error(out, outcome.code, outcome.message, outcome.fields);
    }
    const bool sent = co_await out_.send_final(std::move(out));
    if (!sent) outcome.client_gone = true;
  }
  const auto elapsed = std::chrono::steady_clock::now() - started;
  const auto duration = std::chrono::duration_cast<std::chrono::milliseconds>(elapsed);
  metrics::registry().command_duration[metrics::verb_slot(verb)].observe(elapsed);
  metrics::registry().reply_bytes.inc(out_.bytes_sent());
  nlohmann::json result = nlohmann::json::object();
  const JsonReleaser release(result);  // built with operator[]: see common/json_release.hpp
  result["conn"] = info_.id;
  result["principal"] = info_.principal.name;
  result["command"] = audit_text(cmd.verb);
  result["status"] = outcome.ok ? "ok" : std::string(to_string(outcome.code));
  result["bytes_out"] = out_.bytes_sent();
  result["duration_ms"] = duration.count();
  // Messages may quote client text ("command not found: <verb>"): cut like arguments.
  if (!outcome.ok) result["message"] = audit_text(outcome.message);
  if (outcome.exit_code) result["exit"] = *outcome.exit_code;
  if (outcome.signal != 0) result["signal"] = outcome.signal;
  if (outcome.client_gone) result["client_gone"] = true;
  audit_.record("command_end", std::move(result));
  co_return (outcome.close || outcome.client_gone) ? Next::close : Next::keep_open;
}

}  // namespace opsagent::server

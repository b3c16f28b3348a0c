#include "agent/server/dispatcher.hpp"

#include <array>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <limits>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "agent/common/json_release.hpp"
#include "agent/exec/child_process.hpp"
#include "agent/exec/file_hasher.hpp"
#include "agent/exec/log_tail.hpp"
#include "agent/exec/safe_open.hpp"
#include "agent/server/blocking.hpp"

namespace opsagent::server {
namespace asio = boost::asio;
using protocol::Channel;
using protocol::Field;

namespace {

struct VerbSpec {
  std::string_view verb;
  std::size_t min_args;
  std::size_t max_args;
  std::string_view usage;
  std::string_view summary;
};

constexpr std::size_t kAnyCount = std::numeric_limits<std::size_t>::max();
constexpr VerbSpec kVerbs[] = {
    {"help", 0, 0, "help", "list the commands you may use"},
    {"ping", 0, 0, "ping", "check that the agent answers"},
    {"whoami", 0, 0, "whoami", "show the identity the agent sees"},
    {"lastlog", 0, 0, "lastlog", "the last lines of the system log"},
    {"tail", 1, 2, "tail <log> [lines]", "the last lines of a log named in the policy"},
    {"comphash", 1, 1, "comphash <path>", "SHA-1 of a file"},
    {"hash", 2, 2, "hash <algorithm> <path>", "digest of a file"},
    {"run", 1, kAnyCount, "run <name> [args...]", "run a command named in the policy"},
    {"json", 1, 1, "json on|off", "switch replies to JSON lines"},
    {"exit", 0, 0, "exit", "close the connection"},
    {"quit", 0, 0, "quit", "close the connection"},
};

const VerbSpec* find_verb(std::string_view verb) {
  for (const auto& spec : kVerbs) {
    if (spec.verb == verb) return &spec;
  }
  return nullptr;
}

constexpr std::array<const char*, 2> kJournalctlPaths = {"/usr/bin/journalctl", "/bin/journalctl"};

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

std::string format_ms(std::chrono::milliseconds ms) {
  if (ms.count() % 1000 == 0) return fmt::format("{}s", ms.count() / 1000);
  return fmt::format("{}ms", ms.count());
}

// Holds one of the principal's blocking-work slots for the duration of a command.
class BlockingSlot {
 public:
  BlockingSlot(SessionRegistry& registry, const std::string& principal)
      : registry_(registry),
        principal_(principal),
        held_(registry.try_reserve_blocking(principal)) {}
  BlockingSlot(const BlockingSlot&) = delete;
  BlockingSlot& operator=(const BlockingSlot&) = delete;
  ~BlockingSlot() {
    if (held_) registry_.release_blocking(principal_);
  }
  [[nodiscard]] bool held() const { return held_; }

 private:
  SessionRegistry& registry_;
  std::string principal_;
  bool held_;
};

}  // namespace

struct Dispatcher::Outcome {
  bool ok = true;
  ErrorCode code = ErrorCode::internal;
  std::string message;
  std::vector<Field> fields;
  bool close = false;
  bool client_gone = false;  // nothing more can be written
  std::optional<int> exit_code;
  int signal = 0;

  static Outcome success(std::string msg, std::vector<Field> f = {}) {
    Outcome o;
    o.message = std::move(msg);
    o.fields = std::move(f);
    return o;
  }
  static Outcome failure(ErrorCode c, std::string msg, std::vector<Field> f = {}) {
    Outcome o;
    o.ok = false;
    o.code = c;
    o.message = std::move(msg);
    o.fields = std::move(f);
    return o;
  }
  static Outcome from(const Error& e) { return failure(e.code, e.message); }
  static Outcome busy_blocking_work(int limit) {
    return failure(ErrorCode::busy,
                   fmt::format("too many file operations in progress for this identity "
                               "(max_digests_per_identity {})",
                               limit));
  }
  static Outcome gone() {
    Outcome o = failure(ErrorCode::internal, "client disconnected");
    o.client_gone = true;
    return o;
  }
};

// Streams a child's output to the client as data lines; the await on send() is the back-pressure.
class Dispatcher::RunSink : public exec::OutputSink {
 public:
  explicit RunSink(Dispatcher& d) : d_(d) {}
  asio::awaitable<bool> deliver(exec::OutputStream stream,
                                std::vector<std::string> lines) override {
    co_return co_await d_.send_lines(
        stream == exec::OutputStream::out ? Channel::out : Channel::err, lines);
  }

 private:
  Dispatcher& d_;
};

Dispatcher::Dispatcher(ServerContext& ctx, const SessionInfo& info, ReplySink& sink)
    : ctx_(ctx), info_(info), sink_(sink) {}

void Dispatcher::cancel_active() noexcept {
  cancel_blocking_->store(true);
  if (active_run_ != nullptr) active_run_->cancel();
}

asio::awaitable<bool> Dispatcher::send(std::string bytes) {
  bytes_sent_ += bytes.size();
  co_return co_await sink_.send(std::move(bytes));
}

asio::awaitable<bool> Dispatcher::send_lines(Channel channel,
                                             const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& line : lines) fmt_.data(out, channel, line);
  co_return co_await send(std::move(out));
}

asio::awaitable<Dispatcher::Next> Dispatcher::handle_line(std::string_view line) {
  const auto started = std::chrono::steady_clock::now();
  bytes_sent_ = 0;

  // 1. Parse. A malformed line is answered and audited; the connection stays usable.
  auto parsed = protocol::parse_command(line);
  if (!parsed) {
    ctx_.audit.record("command_rejected", {{"conn", info_.id},
                                           {"principal", info_.principal.name},
                                           {"line", audit_text(line)},
                                           {"reason", parsed.error().message}});
    std::string out;
    fmt_.error(out, parsed.error().code, parsed.error().message);
    co_await send(std::move(out));
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
  const VerbSpec* spec = find_verb(cmd.verb);
  if (spec == nullptr) {
    early = Outcome::failure(ErrorCode::unknown,
                             fmt::format("command not found: {} (try help)", cmd.verb));
  } else if (cmd.args.size() < spec->min_args || cmd.args.size() > spec->max_args) {
    early = Outcome::failure(ErrorCode::usage, fmt::format("usage: {}", spec->usage));
  }

  // 4. Authorise against one policy snapshot, and audit the decision before acting on it.
  const auto policy = ctx_.policy.get();
  policy::Decision decision;
  if (!early) decision = policy::authorize(*policy, info_.principal, cmd.verb, cmd.args);
  const bool audited = ctx_.audit.record(
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
  } else if (!early && !audited && !policy::is_builtin(cmd.verb)) {
    // Fail closed: nothing runs that the audit trail cannot record.
    early = Outcome::failure(ErrorCode::internal, "audit log unavailable; commands are refused");
  }

  // 5. Execute.
  // (No co_await inside ?: : GCC 12 miscompiles the temporaries of such an expression.)
  Outcome outcome;
  if (early) {
    outcome = std::move(*early);
  } else {
    outcome = co_await execute(cmd, decision);
  }

  // 6. Final line and the result record.
  if (!outcome.client_gone) {
    std::string out;
    if (outcome.ok) {
      fmt_.ok(out, outcome.message, outcome.fields);
    } else {
      fmt_.error(out, outcome.code, outcome.message, outcome.fields);
    }
    const bool sent = co_await send(std::move(out));
    if (!sent) outcome.client_gone = true;
  }
  const auto duration = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started);
  nlohmann::json result = nlohmann::json::object();
  const JsonReleaser release(result);  // built with operator[]: see common/json_release.hpp
  result["conn"] = info_.id;
  result["principal"] = info_.principal.name;
  result["command"] = audit_text(cmd.verb);
  result["status"] = outcome.ok ? "ok" : std::string(to_string(outcome.code));
  result["bytes_out"] = bytes_sent_;
  result["duration_ms"] = duration.count();
  // Messages may quote client text ("command not found: <verb>"): cut like arguments.
  if (!outcome.ok) result["message"] = audit_text(outcome.message);
  if (outcome.exit_code) result["exit"] = *outcome.exit_code;
  if (outcome.signal != 0) result["signal"] = outcome.signal;
  if (outcome.client_gone) result["client_gone"] = true;
  ctx_.audit.record("command_end", std::move(result));
  co_return (outcome.close || outcome.client_gone) ? Next::close : Next::keep_open;
}

asio::awaitable<Dispatcher::Outcome> Dispatcher::execute(const protocol::Command& cmd,
                                                         const policy::Decision& d) {
  const std::string& v = cmd.verb;
  if (v == "help") co_return co_await do_help();
  if (v == "ping") co_return Outcome::success("pong");
  if (v == "whoami") co_return co_await do_whoami();
  if (v == "json") co_return co_await do_json(cmd);
  if (v == "exit" || v == "quit") {
    Outcome o = Outcome::success("bye");
    o.close = true;
    co_return o;
  }
  if (v == "lastlog") co_return co_await do_lastlog();
  if (v == "tail") co_return co_await do_tail(d.log_path, d.lines, cmd.args.front());
  if (v == "hash" || v == "comphash") co_return co_await do_hash(d, cmd.args.back());
  if (v == "run") {
    exec::RunLimits limits;
    limits.timeout = d.run->timeout;
    limits.max_output = d.run->max_output;
    limits.kill_grace = ctx_.config.timeouts.kill_grace;
    limits.drain = ctx_.config.timeouts.drain;
    co_return co_await do_run(d.argv, limits);
  }
  co_return Outcome::failure(ErrorCode::internal, "no handler for " + v);
}

asio::awaitable<Dispatcher::Outcome> Dispatcher::do_help() {
  const auto policy = ctx_.policy.get();
  std::vector<std::string> lines;
  for (const auto& verb : policy::allowed_verbs(*policy, info_.principal)) {
    if (const VerbSpec* spec = find_verb(verb)) {
      lines.push_back(fmt::format("{:<26} {}", spec->usage, spec->summary));
    }
  }
  const bool sent = co_await send_lines(Channel::out, lines);
  if (!sent) co_return Outcome::gone();
  co_return Outcome::success("help");
}

asio::awaitable<Dispatcher::Outcome> Dispatcher::do_whoami() {
  const auto& id = info_.identity;
  std::string roles;
  for (const auto& r : info_.principal.roles) roles += (roles.empty() ? "" : ",") + r;
  std::vector<std::string> lines = {
      "principal: " + info_.principal.name,
      "roles: " + roles,
      "identity rule: " + info_.principal.rule,
      "subject: " + id.subject,
      "issuer: " + id.issuer,
      "fingerprint: SHA256:" + id.fingerprint_sha256,
  };
  for (const auto& dns : id.san_dns) lines.push_back("san dns: " + dns);
  for (const auto& uri : id.san_uri) lines.push_back("san uri: " + uri);
  lines.push_back("peer: " + info_.peer);
  const bool sent = co_await send_lines(Channel::out, lines);
  if (!sent) co_return Outcome::gone();
  co_return Outcome::success(info_.principal.name, {{"roles", roles}});
}

asio::awaitable<Dispatcher::Outcome> Dispatcher::do_json(const protocol::Command& cmd) {
  const std::string& arg = cmd.args.front();
  if (arg == "on") {
    fmt_.set_mode(protocol::Mode::json);
  } else if (arg == "off") {
    fmt_.set_mode(protocol::Mode::text);
  } else {
    co_return Outcome::failure(ErrorCode::usage, "usage: json on|off");
  }
  co_return Outcome::success("json " + arg);
}

asio::awaitable<Dispatcher::Outcome> Dispatcher::do_tail(const std::filesystem::path& path,
                                                         int lines, std::string label) {
  const std::size_t max_bytes = exec::kTailWindowBytes;
  BlockingSlot slot(ctx_.registry, info_.principal.name);
  if (!slot.held())
    co_return Outcome::busy_blocking_work(ctx_.config.limits.max_digests_per_identity);
  // Named, not a temporary in the co_await: GCC 12 destroys such temporaries twice.
  auto work = [path, lines, max_bytes]() -> Result<std::vector<std::string>> {
    auto fd = exec::open_log_file(path);
    if (!fd) return fd.error();
    return exec::tail_lines(fd->get(), static_cast<std::size_t>(lines), max_bytes);
  };
  auto result = co_await run_blocking(ctx_.blocking_pool, std::move(work));
  if (!result) co_return Outcome::from(result.error());
  const bool sent = co_await send_lines(Channel::out, result.value());
  if (!sent) co_return Outcome::gone();
  co_return Outcome::success(std::move(label), {{"lines", std::to_string(result->size()), true}});
}

asio::awaitable<Dispatcher::Outcome> Dispatcher::do_lastlog() {
  const auto& settings = ctx_.config.lastlog;
  std::error_code ec;
  if (std::filesystem::exists(settings.path, ec)) {
    std::string label = "lastlog";
    co_return co_await do_tail(settings.path, settings.lines, std::move(label));
  }
  for (const char* journalctl : kJournalctlPaths) {
    if (settings.journal_fallback && ::access(journalctl, X_OK) == 0) {
      exec::RunLimits limits;
      limits.timeout = std::chrono::seconds(10);
      limits.kill_grace = ctx_.config.timeouts.kill_grace;
      limits.drain = ctx_.config.timeouts.drain;
      std::vector<std::string> argv;
      argv.emplace_back(journalctl);
      argv.emplace_back("-n");
      argv.push_back(std::to_string(settings.lines));
      argv.emplace_back("--no-pager");
      argv.emplace_back("-q");
      co_return co_await do_run(std::move(argv), limits);
    }
  }
  co_return Outcome::failure(
      ErrorCode::notfound,
      fmt::format(
          "no system log: {} does not exist and no journal is available on this host "
          "(journald-only hosts and containers: set lastlog.journal_fallback, or lastlog.path)",
          settings.path.string()));
}

asio::awaitable<Dispatcher::Outcome> Dispatcher::do_hash(const policy::Decision& d,
                                                         const std::string& shown_path) {
  BlockingSlot slot(ctx_.registry, info_.principal.name);
  if (!slot.held())
    co_return Outcome::busy_blocking_work(ctx_.config.limits.max_digests_per_identity);
  cancel_blocking_->store(false);
  const auto grant = *d.path;
  const std::string algorithm = d.algorithm;
  auto cancel = cancel_blocking_;
  const std::uint64_t max_bytes = ctx_.config.limits.max_hash_bytes;
  auto work = [grant, algorithm, cancel, max_bytes]() -> Result<exec::Digest> {
    auto fd = exec::open_beneath(grant.root, grant.relative);
    if (!fd) return fd.error();
    struct stat st {};
    if (::fstat(fd->get(), &st) == 0 && static_cast<std::uint64_t>(st.st_size) > max_bytes) {
      return Error{
          ErrorCode::limit,
          fmt::format("file is larger than max_hash_bytes ({} > {} bytes)", st.st_size, max_bytes)};
    }
    return exec::hash_fd(fd->get(), algorithm, *cancel, max_bytes);
  };
  auto digest = co_await run_blocking(ctx_.blocking_pool, std::move(work));
  if (!digest) co_return Outcome::from(digest.error());
  co_return Outcome::success(fmt::format("{} {}", algorithm, digest->hex),
                             {{"bytes", std::to_string(digest->bytes), true},
                              {"path", protocol::quote_argument(shown_path)}});
}

asio::awaitable<Dispatcher::Outcome> Dispatcher::do_run(std::vector<std::string> argv,
                                                        const exec::RunLimits& limits) {
  if (!ctx_.registry.try_reserve_child()) {
    co_return Outcome::failure(ErrorCode::busy,
                               fmt::format("too many running commands (max_children {})",
                                           ctx_.config.limits.max_children));
  }
  struct SlotGuard {
    SessionRegistry& r;
    ~SlotGuard() { r.release_child(); }
  } slot{ctx_.registry};

  exec::SpawnSpec spec;
  spec.argv = std::move(argv);
  spec.environment = ctx_.config.exec.environment;
  spec.working_directory = ctx_.config.exec.working_directory;
  spec.umask = ctx_.config.exec.umask;
  spec.guard = ctx_.config.exec.guard;
  spec.max_processes = static_cast<long>(ctx_.config.exec.max_processes);
  spec.uid = static_cast<long>(ctx_.config.exec.uid);
  spec.gid = static_cast<long>(ctx_.config.exec.gid);
  auto child = exec::spawn(spec);
  if (!child) co_return Outcome::from(child.error());
  spdlog::debug("conn {}: started {} as pid {}", info_.id, spec.argv.front(), child->pid());

  RunSink sink(*this);
  exec::RunControl control;
  // Reset however the run ends: should run_process() throw (std::bad_alloc), the session's
  // cancel_active() must not reach the destroyed `control` through a dangling pointer.
  struct ActiveRun {
    exec::RunControl*& slot;
    ~ActiveRun() { slot = nullptr; }
  } active{active_run_};
  active_run_ = &control;
  const exec::RunOutcome r =
      co_await exec::run_process(std::move(child.value()), limits, sink, control);

  std::vector<Field> fields;
  if (r.status.signal != 0) {
    fields.push_back({"signal", std::to_string(r.status.signal), true});
  } else {
    fields.push_back({"exit", std::to_string(r.status.code), true});
  }
  fields.push_back({"duration_ms", std::to_string(r.duration.count()), true});
  fields.push_back({"output_bytes", std::to_string(r.output_bytes), true});

  Outcome o;
  switch (r.end) {
    case exec::RunEnd::receiver_gone:
    case exec::RunEnd::cancelled:
      o = Outcome::gone();
      break;
    case exec::RunEnd::timed_out:
      o = Outcome::failure(
          ErrorCode::timeout,
          fmt::format("command exceeded its time limit of {}; killed", format_ms(limits.timeout)),
          fields);
      break;
    case exec::RunEnd::output_limit:
      o = Outcome::failure(
          ErrorCode::limit,
          fmt::format("command output exceeded {} bytes; killed", limits.max_output), fields);
      break;
    case exec::RunEnd::exited:
      if (r.status.signal != 0) {
        o = Outcome::failure(ErrorCode::failed,
                             fmt::format("command killed by signal {}", r.status.signal), fields);
      } else if (r.status.code != 0) {
        o = Outcome::failure(ErrorCode::failed,
                             fmt::format("command exited with status {}", r.status.code), fields);
      } else {
        o = Outcome::success("done", fields);
      }
      break;
  }
  if (r.status.signal != 0) {
    o.signal = r.status.signal;
  } else {
    o.exit_code = r.status.code;
  }
  co_return o;
}

}  // namespace opsagent::server

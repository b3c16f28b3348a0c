#include "agent/server/commands.hpp"

#include <array>
#include <chrono>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "agent/common/duration_text.hpp"
#include "agent/exec/child_process.hpp"
#include "agent/exec/file_hasher.hpp"
#include "agent/exec/log_tail.hpp"
#include "agent/exec/safe_open.hpp"
#include "agent/server/blocking.hpp"
#include "agent/server/help_reply.hpp"
#include "agent/server/privileges.hpp"

namespace opsagent::server {
namespace asio = boost::asio;
using protocol::Channel;
using protocol::Field;
using protocol::Verb;

namespace {

constexpr std::array<const char*, 2> kJournalctlPaths = {"/usr/bin/journalctl", "/bin/journalctl"};

// Holds one of the principal's blocking-work slots for the duration of a command.
class BlockingSlot {
 public:
  BlockingSlot(Admission& registry, const std::string& principal)
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
  Admission& registry_;
  std::string principal_;
  bool held_;
};

// Streams a child's output to the client as data lines; the await on send is the back-pressure.
class RunSink : public exec::OutputSink {
 public:
  explicit RunSink(ReplyStream& out) : out_(out) {}
  asio::awaitable<bool> deliver(exec::OutputStream stream, LineBatch lines) override {
    co_return co_await out_.send_lines(
        stream == exec::OutputStream::out ? Channel::out : Channel::err, lines);
  }

 private:
  ReplyStream& out_;
};

}  // namespace

void Commands::cancel() noexcept {
  cancel_blocking_->store(true);
  if (active_run_ != nullptr) active_run_->cancel();
}

Outcome Commands::busy_blocking_work() const {
  return Outcome::failure(ErrorCode::busy,
                          fmt::format("too many file operations in progress for this identity "
                                      "(max_file_ops_per_identity {})",
                                      ctx_.config.get()->limits.max_file_ops_per_identity));
}

// (An if-chain, not a switch: GCC 12 mishandles co_await inside switch bodies.)
asio::awaitable<Outcome> Commands::execute(const protocol::VerbSpec& verb,
                                           const protocol::Command& cmd, const policy::Decision& d,
                                           ReplyStream& out) {
  const Verb v = verb.verb;
  if (v == Verb::help) {
    co_return co_await help(cmd, out);
  }
  if (v == Verb::ping) co_return Outcome::success("pong");
  if (v == Verb::whoami) {
    co_return co_await whoami(out);
  }
  if (v == Verb::json) co_return json(cmd, out);
  if (verb.ends_session) {
    Outcome o = Outcome::success("bye");
    o.close = true;
    co_return o;
  }
  if (v == Verb::lastlog) {
    co_return co_await lastlog(out);
  }
  if (v == Verb::tail) {
    co_return co_await tail(d.log_path, d.lines, cmd.args.front(), out);
  }
  if (v == Verb::hash || v == Verb::comphash) {
    co_return co_await hash(d, cmd.args.back());
  }
  if (v == Verb::run) {
    exec::RunLimits limits;
    limits.timeout = d.run->timeout;
    limits.max_output = d.run->max_output;
    const auto config = ctx_.config.get();
    limits.kill_grace = config->timeouts.kill_grace;
    limits.drain = config->timeouts.drain;
    co_return co_await run(d.argv, limits, out);
  }
  co_return Outcome::failure(ErrorCode::internal, fmt::format("no handler for {}", verb.name));
}

asio::awaitable<Outcome> Commands::help(const protocol::Command& cmd, ReplyStream& out) {
  const auto policy = ctx_.policy.get();
  HelpReply reply = help_reply(*policy, info_.principal, cmd.args);
  const bool sent = co_await out.send_lines(Channel::out, reply.lines);
  if (!sent) co_return Outcome::gone();
  co_return std::move(reply.outcome);
}

asio::awaitable<Outcome> Commands::whoami(ReplyStream& out) {
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
  // The version audit records carry (policy_version): which policy answers this session now.
  const auto policy = ctx_.policy.get();
  lines.push_back("policy version: " + policy->version);
  lines.push_back("policy sha256: " + policy->sha256);
  const bool sent = co_await out.send_lines(Channel::out, lines);
  if (!sent) co_return Outcome::gone();
  co_return Outcome::success(info_.principal.name, {{"roles", roles}});
}

Outcome Commands::json(const protocol::Command& cmd, ReplyStream& out) {
  const std::string& arg = cmd.args.front();
  if (arg == "on") {
    out.set_mode(protocol::Mode::json);
  } else if (arg == "off") {
    out.set_mode(protocol::Mode::text);
  } else {
    return Outcome::failure(ErrorCode::usage, "usage: json on|off");
  }
  return Outcome::success("json " + arg);
}

asio::awaitable<Outcome> Commands::tail(const std::filesystem::path& path, int lines,
                                        std::string label, ReplyStream& out) {
  const std::size_t max_bytes = exec::kTailWindowBytes;
  BlockingSlot slot(ctx_.registry, info_.principal.name);
  if (!slot.held()) co_return busy_blocking_work();
  // Named, not a temporary in the co_await: GCC 12 destroys such temporaries twice.
  auto work = [path, lines, max_bytes]() -> Result<std::vector<std::string>> {
    auto fd = exec::open_log_file(path);
    if (!fd) return fd.error();
    return exec::tail_lines(fd->get(), static_cast<std::size_t>(lines), max_bytes);
  };
  metrics::Gauge* queued = &metrics::registry().blocking_queue;
  auto result = co_await run_blocking(ctx_.blocking_pool, std::move(work), queued);
  if (!result) co_return Outcome::from(result.error());
  const bool sent = co_await out.send_lines(Channel::out, result.value());
  if (!sent) co_return Outcome::gone();
  co_return Outcome::success(std::move(label), {{"lines", std::to_string(result->size()), true}});
}

asio::awaitable<Outcome> Commands::lastlog(ReplyStream& out) {
  const auto config = ctx_.config.get();
  const auto& settings = config->lastlog;
  std::error_code ec;
  if (std::filesystem::exists(settings.path, ec)) {
    std::string label(protocol::spec_of(Verb::lastlog).name);
    co_return co_await tail(settings.path, settings.lines, std::move(label), out);
  }
  for (const char* journalctl : kJournalctlPaths) {
    if (settings.journal_fallback && ::access(journalctl, X_OK) == 0) {
      exec::RunLimits limits;
      limits.timeout = std::chrono::seconds(10);
      limits.kill_grace = config->timeouts.kill_grace;
      limits.drain = config->timeouts.drain;
      std::vector<std::string> argv;
      argv.emplace_back(journalctl);
      argv.emplace_back("-n");
      argv.push_back(std::to_string(settings.lines));
      argv.emplace_back("--no-pager");
      argv.emplace_back("-q");
      Outcome o = co_await run(std::move(argv), limits, out);
      if (!o.ok || o.client_gone) co_return o;
      // With -q, journalctl prints nothing at all both for an empty journal and for one the
      // agent's user may not read: say so rather than answer an empty success.
      const std::uint64_t lines = out.out_lines_sent();
      if (lines == 0) {
        co_return Outcome::failure(
            ErrorCode::notfound,
            fmt::format("no system log: {} does not exist and the journal has no entries the "
                        "agent can read (empty, or the agent's user is not in the "
                        "systemd-journal or adm group)",
                        settings.path.string()));
      }
      co_return Outcome::success(std::string(protocol::spec_of(Verb::lastlog).name),
                                 {{"lines", std::to_string(lines), true}, {"source", "journal"}});
    }
  }
  co_return Outcome::failure(
      ErrorCode::notfound,
      fmt::format(
          "no system log: {} does not exist and no journal is available on this host "
          "(journald-only hosts and containers: set lastlog.journal_fallback, or lastlog.path)",
          settings.path.string()));
}

asio::awaitable<Outcome> Commands::hash(const policy::Decision& d, const std::string& shown_path) {
  BlockingSlot slot(ctx_.registry, info_.principal.name);
  if (!slot.held()) co_return busy_blocking_work();
  cancel_blocking_->store(false);
  const auto grant = *d.path;
  const std::string algorithm = d.algorithm;
  auto cancel = cancel_blocking_;
  const std::uint64_t max_bytes = ctx_.config.get()->limits.max_hash_bytes;
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
  metrics::Gauge* queued = &metrics::registry().blocking_queue;
  auto digest = co_await run_blocking(ctx_.blocking_pool, std::move(work), queued);
  if (!digest) co_return Outcome::from(digest.error());
  co_return Outcome::success(fmt::format("{} {}", algorithm, digest->hex),
                             {{"bytes", std::to_string(digest->bytes), true},
                              {"path", protocol::quote_argument(shown_path)}});
}

asio::awaitable<Outcome> Commands::run(std::vector<std::string> argv, const exec::RunLimits& limits,
                                       ReplyStream& out) {
  if (!ctx_.registry.try_reserve_child()) {
    co_return Outcome::failure(ErrorCode::busy,
                               fmt::format("too many running commands (max_children {})",
                                           ctx_.config.get()->limits.max_children));
  }
  struct SlotGuard {  // NOLINT(cppcoreguidelines-special-member-functions): an aggregate guard
    Admission& r;
    ~SlotGuard() { r.release_child(); }
  } slot{ctx_.registry};

  const auto config = ctx_.config.get();
  if (std::string why = command_refusal(*config); !why.empty()) {
    co_return Outcome::failure(ErrorCode::denied, std::move(why));
  }
  exec::SpawnSpec spec;
  spec.argv = std::move(argv);
  spec.environment = config->exec.environment;
  spec.working_directory = config->exec.working_directory;
  spec.umask = config->exec.umask;
  spec.guard = config->exec.guard;
  spec.max_processes = static_cast<long>(config->exec.max_processes);
  const CommandUser user = command_user(*config);  // -1 once the agent itself is that user
  spec.uid = user.uid;
  spec.gid = user.gid;
  auto child = exec::spawn(spec);
  if (!child) co_return Outcome::from(child.error());
  spdlog::debug("conn {}: started {} as pid {}", info_.id, spec.argv.front(), child->pid());

  RunSink sink(out);
  exec::RunControl control;
  // Reset however the run ends: should run_process() throw (std::bad_alloc), the session's
  // cancel_active() must not reach the destroyed `control` through a dangling pointer.
  struct ActiveRun {  // NOLINT(cppcoreguidelines-special-member-functions): an aggregate guard
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
      o = Outcome::failure(ErrorCode::timeout,
                           fmt::format("command exceeded its time limit of {}; killed",
                                       format_duration(limits.timeout)),
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

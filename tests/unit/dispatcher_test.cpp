// The command gate without the binary: a fake CommandHandlers behind the real Dispatcher, a real
// AuditLog in a temporary directory, a real policy. What the gate promises: every command past
// parsing is audited before it is executed, allowed or not; denials and rejections never reach
// a handler and keep the connection open; a non-built-in command is refused when its audit
// record cannot be written (fail closed).

#include "agent/server/dispatcher.hpp"

#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/resource.h>
#include <sys/stat.h>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "agent/policy/policy.hpp"

namespace opsagent::server {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;

constexpr const char* kPolicy = R"(
identities:
  - match: {cn: alice}
    principal: alice
    roles: [operator]
roles:
  operator:
    commands: [ping, whoami, lastlog]
    deny: [run]
)";

std::vector<nlohmann::json> read_records(const fs::path& file) {
  std::vector<nlohmann::json> out;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) {
    auto record = nlohmann::json::parse(line);
    if (record["event"] != "audit_file_start") out.push_back(std::move(record));  // chain header
  }
  return out;
}

// Collects what the gate writes to the client.
class RecordingSink : public ReplySink {
 public:
  asio::awaitable<bool> send(std::string bytes) override {
    written += bytes;
    co_return true;
  }
  std::string written;
};

// Stands in for the real handlers: remembers each call and the audit trail as it was then.
class FakeHandlers : public CommandHandlers {
 public:
  explicit FakeHandlers(fs::path audit_file) : audit_file_(std::move(audit_file)) {}
  asio::awaitable<Outcome> execute(const protocol::VerbSpec& verb, const protocol::Command& cmd,
                                   const policy::Decision& decision, ReplyStream& out) override {
    executed.push_back(cmd.verb);
    audit_when_executed = read_records(audit_file_);
    decision_rule = decision.rule;
    std::vector<std::string> lines{"data from " + std::string(verb.name)};
    co_await out.send_lines(protocol::Channel::out, lines);
    Outcome o = Outcome::success("done");
    o.close = verb.ends_session;
    co_return o;
  }
  void cancel() noexcept override { ++cancels; }

  std::vector<std::string> executed;
  std::vector<nlohmann::json> audit_when_executed;
  std::string decision_rule;
  int cancels = 0;

 private:
  fs::path audit_file_;
};

class Gate : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = (fs::temp_directory_path() / "opsagent-gate-XXXXXX").string();
    dir_ = ::mkdtemp(templ.data());
    const fs::path policy_file = dir_ / "policy.yaml";
    std::ofstream(policy_file) << kPolicy;
    ::chmod(policy_file.c_str(), 0600);
    policy_ = std::make_unique<Snapshot<const policy::Policy>>(policy::load_policy(policy_file));
    audit_file_ = dir_ / "audit.log";
    auto log = audit::AuditLog::open(audit_file_);
    ASSERT_TRUE(log) << log.error().message;
    audit_ = std::move(log.value());
    info_.id = 7;
    info_.peer = "127.0.0.1:40000";
    info_.principal = policy::Principal{"alice", {"operator"}, "identities[0]"};
    auto handlers = std::make_unique<FakeHandlers>(audit_file_);
    handlers_ = handlers.get();
    dispatcher_ =
        std::make_unique<Dispatcher>(*audit_, *policy_, info_, sink_, std::move(handlers));
  }
  void TearDown() override { fs::remove_all(dir_); }

  Dispatcher::Next handle(const std::string& line) {
    asio::io_context io;
    auto done = asio::co_spawn(io, dispatcher_->handle_line(line), asio::use_future);
    io.run();
    return done.get();
  }

  // The records of `event` written so far.
  std::vector<nlohmann::json> records(const std::string& event) const {
    std::vector<nlohmann::json> out;
    for (auto& r : read_records(audit_file_)) {
      if (r["event"] == event) out.push_back(r);
    }
    return out;
  }

  fs::path dir_;
  fs::path audit_file_;
  std::unique_ptr<Snapshot<const policy::Policy>> policy_;
  std::unique_ptr<audit::AuditLog> audit_;
  SessionInfo info_;
  RecordingSink sink_;
  FakeHandlers* handlers_ = nullptr;
  std::unique_ptr<Dispatcher> dispatcher_;
};

TEST_F(Gate, AuditsAnAllowedCommandBeforeExecutingIt) {
  EXPECT_EQ(handle("lastlog"), Dispatcher::Next::keep_open);
  ASSERT_EQ(handlers_->executed, std::vector<std::string>{"lastlog"});
  ASSERT_FALSE(handlers_->audit_when_executed.empty());
  const auto& decided = handlers_->audit_when_executed.back();
  EXPECT_EQ(decided["event"], "command");
  EXPECT_EQ(decided["decision"], "allow");
  EXPECT_EQ(decided["rule"], "roles.operator.commands");
  EXPECT_EQ(decided["principal"], "alice");
  EXPECT_EQ(sink_.written, "| data from lastlog\nOK done\n");

  const auto ends = records("command_end");
  ASSERT_EQ(ends.size(), 1U);
  EXPECT_EQ(ends[0]["status"], "ok");
  EXPECT_EQ(ends[0]["command"], "lastlog");
  EXPECT_EQ(ends[0]["args"], nlohmann::json::array());
  EXPECT_EQ(ends[0]["bytes_out"], sink_.written.size());
  EXPECT_EQ(dispatcher_->commands(), 1U);
}

TEST_F(Gate, AuditsAVerbThatRunsNothingInOneRecordWithItsOutcome) {
  EXPECT_EQ(handle("ping"), Dispatcher::Next::keep_open);
  EXPECT_EQ(sink_.written, "| data from ping\nOK done\n");
  const auto all = read_records(audit_file_);
  ASSERT_EQ(all.size(), 1U);
  EXPECT_EQ(all[0]["event"], "command");
  EXPECT_EQ(all[0]["command"], "ping");
  EXPECT_EQ(all[0]["decision"], "allow");
  EXPECT_EQ(all[0]["rule"], "roles.operator.commands");
  EXPECT_EQ(all[0]["status"], "ok");
  EXPECT_EQ(all[0]["bytes_out"], sink_.written.size());
}

// A session repeating a built-in reuses the encoded decision of the last one (pipelined pings):
// every record must still say exactly what its own decision was.
TEST_F(Gate, RecordsEachRepeatedBuiltinWithItsOwnDecision) {
  handle("ping");
  handle("ping");
  handle("whoami");
  handle("ping");
  const fs::path next_policy = dir_ / "policy-2.yaml";
  std::ofstream(next_policy) << kPolicy << "# another version\n";
  ::chmod(next_policy.c_str(), 0600);
  policy_->replace(policy::load_policy(next_policy));
  handle("ping");
  info_.principal = policy::Principal{"alice-2", {"operator"}, "identities[0]"};
  handle("ping");

  const auto all = records("command");
  ASSERT_EQ(all.size(), 6U);
  const std::vector<std::string> verbs{"ping", "ping", "whoami", "ping", "ping", "ping"};
  for (std::size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i]["command"], verbs[i]) << i;
    EXPECT_EQ(all[i]["conn"], 7) << i;
    EXPECT_EQ(all[i]["args"], nlohmann::json::array()) << i;
    EXPECT_EQ(all[i]["decision"], "allow") << i;
    EXPECT_EQ(all[i]["rule"], "roles.operator.commands") << i;
    EXPECT_EQ(all[i]["reason"], "role operator allows '" + verbs[i] + "'") << i;
    EXPECT_EQ(all[i]["status"], "ok") << i;
  }
  // The second ping's record is the first's but for where it sits in the log and what it cost.
  auto first = all[0];
  auto second = all[1];
  for (const char* varies : {"seq", "prev", "ts", "duration_ms"}) {
    first.erase(varies);
    second.erase(varies);
  }
  EXPECT_EQ(first, second);
  EXPECT_EQ(all[3]["policy_version"], all[0]["policy_version"]);
  EXPECT_NE(all[4]["policy_version"], all[3]["policy_version"]);
  EXPECT_EQ(all[4]["policy_version"], policy_->get()->version);
  EXPECT_EQ(all[4]["principal"], "alice");
  EXPECT_EQ(all[5]["principal"], "alice-2");
}

// The gate keeps the last decision for a verb without arguments (pipelined pings are decided
// once); a new policy, other roles or another verb must each be decided afresh.
TEST_F(Gate, DecidesAgainWhenThePolicyOrThePrincipalChanges) {
  handle("ping");
  const fs::path narrowed = dir_ / "policy-narrowed.yaml";
  std::string text = kPolicy;
  text.replace(text.find("[ping, "), 7, "[");
  std::ofstream(narrowed) << text;
  ::chmod(narrowed.c_str(), 0600);
  policy_->replace(policy::load_policy(narrowed));
  handle("ping");
  dispatcher_->policy_replaced();  // what a session does when a reload reaches it
  handle("ping");
  policy_->replace(policy::load_policy(dir_ / "policy.yaml"));
  handle("ping");
  info_.principal.roles.clear();  // a reload took the roles (the policy stays the same)
  handle("ping");
  info_.principal.roles = {"operator"};
  handle("ping");
  handle("whoami");

  const auto all = records("command");
  ASSERT_EQ(all.size(), 7U);
  const std::vector<std::string> decisions{"allow", "deny",  "deny", "allow",
                                           "deny",  "allow", "allow"};
  for (std::size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i]["decision"], decisions[i]) << i;
  }
  EXPECT_EQ(all[1]["rule"], "default-deny");
  EXPECT_EQ(all[4]["reason"], "no role of alice allows 'ping'");
  EXPECT_EQ(all[6]["command"], "whoami");
  EXPECT_EQ(handlers_->decision_rule, "roles.operator.commands");
  EXPECT_EQ(handlers_->executed, (std::vector<std::string>{"ping", "ping", "ping", "whoami"}));
}

TEST_F(Gate, AuditsADenialAndNeverExecutesIt) {
  EXPECT_EQ(handle("run uptime"), Dispatcher::Next::keep_open);
  EXPECT_TRUE(handlers_->executed.empty());
  const auto decided = records("command");
  ASSERT_EQ(decided.size(), 1U);
  EXPECT_EQ(decided[0]["decision"], "deny");
  EXPECT_EQ(decided[0]["rule"], "roles.operator.deny");
  EXPECT_EQ(sink_.written.rfind("ERR denied ", 0), 0U) << sink_.written;
  EXPECT_EQ(records("command_end").at(0)["status"], "denied");
}

TEST_F(Gate, RejectsUnknownVerbsAndWrongArityWithoutExecuting) {
  EXPECT_EQ(handle("frobnicate now"), Dispatcher::Next::keep_open);
  EXPECT_EQ(handle("ping extra"), Dispatcher::Next::keep_open);
  EXPECT_TRUE(handlers_->executed.empty());
  const auto decided = records("command");
  ASSERT_EQ(decided.size(), 2U);
  for (const auto& r : decided) {
    EXPECT_EQ(r["decision"], "reject");
    EXPECT_EQ(r["rule"], "protocol");
  }
  EXPECT_NE(sink_.written.find("ERR unknown command not found: frobnicate"), std::string::npos);
  EXPECT_NE(sink_.written.find("ERR usage usage: ping"), std::string::npos);
}

TEST_F(Gate, AnswersAndAuditsAnUnparsableLineAndStaysOpen) {
  EXPECT_EQ(handle("ping 'unterminated"), Dispatcher::Next::keep_open);
  EXPECT_TRUE(handlers_->executed.empty());
  EXPECT_EQ(records("command_rejected").size(), 1U);
  EXPECT_EQ(sink_.written.rfind("ERR usage ", 0), 0U) << sink_.written;
  EXPECT_EQ(dispatcher_->commands(), 0U);
}

TEST_F(Gate, IgnoresBlankLines) {
  EXPECT_EQ(handle("   "), Dispatcher::Next::keep_open);
  EXPECT_TRUE(sink_.written.empty());
  EXPECT_TRUE(read_records(audit_file_).empty());
}

TEST_F(Gate, ClosesAfterAVerbThatEndsTheSession) {
  EXPECT_EQ(handle("exit"), Dispatcher::Next::close);
  EXPECT_EQ(handlers_->executed, std::vector<std::string>{"exit"});
  EXPECT_EQ(handlers_->decision_rule, "builtin");
}

TEST_F(Gate, ForwardsCancelToTheHandlers) {
  dispatcher_->cancel_active();
  EXPECT_EQ(handlers_->cancels, 1);
}

// RLIMIT_FSIZE makes the audit write fail (EFBIG, with SIGXFSZ ignored as the agent does).
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    old_handler_ = std::signal(SIGXFSZ, SIG_IGN);
    ::getrlimit(RLIMIT_FSIZE, &old_);
    rlimit limited = old_;
    limited.rlim_cur = bytes;
    ::setrlimit(RLIMIT_FSIZE, &limited);
  }
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &old_);
    std::signal(SIGXFSZ, old_handler_);
  }
  FileSizeLimit(const FileSizeLimit&) = delete;
  FileSizeLimit& operator=(const FileSizeLimit&) = delete;

 private:
  rlimit old_{};
  void (*old_handler_)(int) = nullptr;
};

TEST_F(Gate, FailsClosedWhenTheAuditRecordCannotBeWritten) {
  Dispatcher::Next next{};
  {
    const FileSizeLimit full(fs::file_size(audit_file_));
    next = handle("lastlog");
  }
  EXPECT_EQ(next, Dispatcher::Next::keep_open);
  EXPECT_TRUE(handlers_->executed.empty());
  EXPECT_EQ(sink_.written, "ERR internal audit log unavailable; commands are refused\n");
  EXPECT_TRUE(read_records(audit_file_).empty());
}

TEST_F(Gate, NeverSaysOkForAVerbThatRunsNothingWhenItsRecordCannotBeWritten) {
  {
    const FileSizeLimit full(fs::file_size(audit_file_));
    handle("ping");
  }
  EXPECT_EQ(sink_.written,
            "| data from ping\nERR internal audit log unavailable; commands are refused\n");
  EXPECT_TRUE(read_records(audit_file_).empty());
}

TEST_F(Gate, StillServesBuiltinsWhenTheAuditLogFails) {
  {
    const FileSizeLimit full(fs::file_size(audit_file_));
    handle("help");
  }
  EXPECT_EQ(handlers_->executed, std::vector<std::string>{"help"});
}

}  // namespace
}  // namespace opsagent::server

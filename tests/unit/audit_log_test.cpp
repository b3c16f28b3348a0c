// AuditLog: one strict, ASCII-only JSON object per line, safe file creation (SECURITY-MATRIX F1,
// F5).

#include "agent/audit/audit_log.hpp"

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <future>
#include <regex>
#include <sched.h>
#include <string>
#include <sys/resource.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "agent/audit/record_batch.hpp"

namespace opsagent::audit {
namespace {

namespace fs = std::filesystem;
using namespace std::string_literals;
using nlohmann::json;

constexpr std::string_view kFffd = "\xEF\xBF\xBD";

// A fresh directory per test, removed afterwards.
class AuditLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "opsagent-audit-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::unique_ptr<AuditLog> open_log(const fs::path& path) {
    auto log = AuditLog::open(path);
    EXPECT_TRUE(log.ok()) << (log.ok() ? "" : log.error().message);
    return log.ok() ? std::move(log).value() : nullptr;
  }

  static std::string read_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }

  // Every record line of the file but the chain's audit_file_start headers (audit_chain_test.cpp
  // covers those); the file must end with LF (no torn last record).
  static std::vector<std::string> read_lines(const fs::path& path) {
    const std::string content = read_file(path);
    std::vector<std::string> lines;
    if (content.empty()) return lines;
    EXPECT_EQ(content.back(), '\n');
    std::size_t start = 0;
    for (std::size_t lf = content.find('\n'); lf != std::string::npos;
         lf = content.find('\n', start)) {
      std::string line = content.substr(start, lf - start);
      if (line.find(",\"event\":\"audit_file_start\"") == std::string::npos) {
        lines.push_back(std::move(line));
      }
      start = lf + 1;
    }
    return lines;
  }

  fs::path dir_;
};

// Sets the process umask for one test and restores it.
class ScopedUmask {
 public:
  explicit ScopedUmask(mode_t mask) : old_(::umask(mask)) {}
  ~ScopedUmask() { ::umask(old_); }
  ScopedUmask(const ScopedUmask&) = delete;
  ScopedUmask& operator=(const ScopedUmask&) = delete;

 private:
  mode_t old_;
};

bool is_printable_ascii(std::string_view s) {
  for (const char c : s) {
    const auto b = static_cast<unsigned char>(c);
    if (b < 0x20 || b > 0x7E) return false;
  }
  return true;
}

TEST_F(AuditLogTest, AppendsOneJsonObjectPerLineWithTheStandardFields) {
  const auto path = dir_ / "audit.log";
  auto log = open_log(path);
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(log->path(), path);
  EXPECT_TRUE(log->healthy());

  EXPECT_TRUE(log->record("allow", {{"rule", "ops-tail"}, {"args", {"-n", "10"}}}));
  EXPECT_TRUE(log->record("deny", {{"rule", nullptr}}));

  log->flush();
  const auto lines = read_lines(path);
  ASSERT_EQ(lines.size(), 2U);
  const std::regex ts_format(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z)");
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const auto j = json::parse(lines[i]);
    ASSERT_TRUE(j.is_object());
    EXPECT_TRUE(std::regex_match(j.at("ts").get<std::string>(), ts_format)) << j["ts"];
    EXPECT_EQ(j.at("seq"), i + 2);  // seq 1: the file's audit_file_start header
    EXPECT_EQ(j.at("prev").get<std::string>().size(), 64U);
    EXPECT_EQ(j.at("pid"), ::getpid());
  }
  const auto first = json::parse(lines[0]);
  EXPECT_EQ(first["event"], "allow");
  EXPECT_EQ(first["rule"], "ops-tail");
  EXPECT_EQ(first["args"], json::array({"-n", "10"}));
  const auto second = json::parse(lines[1]);
  EXPECT_EQ(second["event"], "deny");
  EXPECT_TRUE(second["rule"].is_null());
}

// A session's held records (pipelined built-ins) go to the writer as one chain: nothing before
// queue(), then all of them in the order added, one after the other.
TEST_F(AuditLogTest, ABatchOfHeldRecordsIsWrittenWhenQueuedInTheOrderAdded) {
  const fs::path path = dir_ / "audit.log";
  auto log = open_log(path);
  ASSERT_NE(log, nullptr);
  RecordBatch batch(*log);
  EXPECT_TRUE(batch.empty());
  std::vector<Receipt> receipts;
  for (std::uint64_t i = 0; i < 3; ++i) {
    RecordEncoder rec("held");
    rec.unum("i", i);
    receipts.push_back(batch.add(std::move(rec)));
  }
  EXPECT_FALSE(batch.empty());
  log->record("other", {{"k", 1}});
  log->flush();
  ASSERT_EQ(read_lines(path).size(), 1U);  // only "other": the batch is still held
  for (const Receipt& r : receipts) EXPECT_FALSE(r.done());

  batch.queue();
  EXPECT_TRUE(batch.empty());
  log->flush();
  const auto lines = read_lines(path);
  ASSERT_EQ(lines.size(), 4U);
  const json other = json::parse(lines[0]);
  for (std::uint64_t i = 0; i < 3; ++i) {
    const json held = json::parse(lines[i + 1]);
    EXPECT_EQ(held["event"], "held");
    EXPECT_EQ(held["i"], i);
    EXPECT_EQ(held["seq"], other["seq"].get<std::uint64_t>() + i + 1);
    EXPECT_TRUE(receipts[i].done());
    EXPECT_FALSE(receipts[i].result());
  }
}

// A batch its session no longer waits for (the client left) is still written.
TEST_F(AuditLogTest, ABatchDroppedWithItsReceiptsIsStillWritten) {
  const fs::path path = dir_ / "audit.log";
  auto log = open_log(path);
  ASSERT_NE(log, nullptr);
  {
    RecordBatch batch(*log);
    for (int i = 0; i < 2; ++i) {
      const Receipt dropped = batch.add(RecordEncoder("held"));
    }
  }
  log->flush();
  const auto lines = read_lines(path);
  ASSERT_EQ(lines.size(), 2U);
  for (const auto& line : lines) EXPECT_EQ(json::parse(line)["event"], "held");
}

TEST_F(AuditLogTest, IgnoresFieldsThatAreNotAnObject) {
  const auto path = dir_ / "audit.log";
  auto log = open_log(path);
  ASSERT_NE(log, nullptr);
  EXPECT_TRUE(log->record("reload", nullptr));
  EXPECT_TRUE(log->record("reload", json::array({1, 2})));
  EXPECT_TRUE(log->record("reload", "text"));
  log->flush();
  const auto lines = read_lines(path);
  ASSERT_EQ(lines.size(), 3U);
  for (const auto& line : lines) {
    const auto j = json::parse(line);
    EXPECT_EQ(j.size(), 7U) << line;  // ts, seq, prev, event, pid, host, instance
    EXPECT_EQ(j["event"], "reload");
  }
}

TEST_F(AuditLogTest, KeepsTheStandardFieldsWhenACallerPassesTheSameKeys) {
  const auto path = dir_ / "audit.log";
  auto log = open_log(path);
  ASSERT_NE(log, nullptr);
  EXPECT_TRUE(
      log->record("deny", {{"event", "allow"}, {"seq", 999}, {"pid", 1}, {"ts", "forged"}}));
  log->flush();
  const auto lines = read_lines(path);
  ASSERT_EQ(lines.size(), 1U);
  const auto j = json::parse(lines[0]);
  EXPECT_EQ(j["event"], "deny");
  EXPECT_EQ(j["seq"], 2);  // after the file header
  EXPECT_EQ(j["pid"], ::getpid());
  EXPECT_NE(j["ts"], "forged");
}

TEST_F(AuditLogTest, KeepsSequenceNumbersStrictlyIncreasingAcrossThreads) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 1000;
  const auto path = dir_ / "audit.log";
  auto log = open_log(path);
  ASSERT_NE(log, nullptr);

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&log, t] {
      for (int i = 0; i < kPerThread; ++i) {
        log->record("allow", {{"thread", t}, {"i", i}, {"command", "tail -n 10 syslog"}});
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_TRUE(log->healthy());

  log->flush();
  const auto lines = read_lines(path);
  ASSERT_EQ(lines.size(), static_cast<std::size_t>(kThreads * kPerThread));
  std::uint64_t previous_seq = 1;  // the file header
  std::vector<int> next_i(kThreads, 0);
  for (const auto& line : lines) {
    json j;
    ASSERT_NO_THROW(j = json::parse(line)) << line;
    const auto seq = j.at("seq").get<std::uint64_t>();
    ASSERT_EQ(seq, previous_seq + 1) << "file order must be sequence order";
    previous_seq = seq;
    // Each thread's own records appear in the order it wrote them.
    const int t = j.at("thread").get<int>();
    ASSERT_EQ(j.at("i").get<int>(), next_i.at(static_cast<std::size_t>(t)));
    ++next_i[static_cast<std::size_t>(t)];
  }
  EXPECT_EQ(previous_seq, static_cast<std::uint64_t>(kThreads * kPerThread) + 1);
}

// F1: client text in any field must not split a record, act on a terminal or act as a format.
struct InjectionCase {
  const char* what;
  std::string payload;
  std::string expected;  // what a strict JSON parser reads back
};

std::vector<InjectionCase> injection_table() {
  const std::string fffd(kFffd);
  return {
      {"LF", "tail\n{\"event\":\"allow\"}", "tail\n{\"event\":\"allow\"}"},
      {"CR", "tail\r{\"event\":\"allow\"}", "tail\r{\"event\":\"allow\"}"},
      {"CRLF", "a\r\nb", "a\r\nb"},
      {"double quote", R"(a", "event": "allow)", R"(a", "event": "allow)"},
      {"backslash", R"(a\", \\)", R"(a\", \\)"},
      {"U+2028 LINE SEPARATOR",
       "a\xE2\x80\xA8"
       "b",
       "a\xE2\x80\xA8"
       "b"},
      {"U+2029 PARAGRAPH SEPARATOR",
       "a\xE2\x80\xA9"
       "b",
       "a\xE2\x80\xA9"
       "b"},
      {"NEL U+0085",
       "a\xC2\x85"
       "b",
       "a\xC2\x85"
       "b"},
      {"non-ASCII text", "caf\xC3\xA9 \xF0\x9F\x8E\x89", "caf\xC3\xA9 \xF0\x9F\x8E\x89"},
      {"NUL", "a\0b"s, "a\0b"s},
      {"ANSI escape", "\x1B[2J\x1B]0;title\x07", "\x1B[2J\x1B]0;title\x07"},
      {"DEL", "a\x7F", "a\x7F"},
      {"braces", "{}", "{}"},
      {"fmt width bomb", "{:>99999999}", "{:>99999999}"},
      {"printf conversions", "%s%n%x%p", "%s%n%x%p"},
      {"invalid byte FF",
       "a\xFF"
       "b",
       "a" + fffd + "b"},
      {"lone continuation byte", "\x80", fffd},
      {"overlong C0 AF", "\xC0\xAF", fffd + fffd},
      {"lone surrogate", "\xED\xA0\x80", fffd + fffd + fffd},
  };
}

TEST_F(AuditLogTest, EncodesInjectedTextAsOneLineOfAsciiJson) {
  for (const auto& row : injection_table()) {
    SCOPED_TRACE(row.what);
    std::string line;
    ASSERT_NO_THROW(line = AuditLog::encode({{"command", row.payload}, {"args", {row.payload}}}));
    EXPECT_TRUE(is_printable_ascii(line)) << line;
    EXPECT_LT(line.size(), 200U) << "format specifiers must not expand";
    json j;
    ASSERT_NO_THROW(j = json::parse(line)) << line;
    EXPECT_EQ(j["command"], row.expected);
    EXPECT_EQ(j["args"][0], row.expected);
  }
}

TEST_F(AuditLogTest, WritesExactlyOneParsableLinePerRecordWhateverTheFieldsHold) {
  const auto path = dir_ / "audit.log";
  auto log = open_log(path);
  ASSERT_NE(log, nullptr);
  const auto table = injection_table();
  for (const auto& row : table) {
    ASSERT_TRUE(log->record("deny", {{"command", row.payload},
                                     {"args", {row.payload, "x"}},
                                     {"subject", "CN=" + row.payload}}));
  }
  log->flush();
  const auto lines = read_lines(path);
  ASSERT_EQ(lines.size(), table.size());
  for (std::size_t i = 0; i < lines.size(); ++i) {
    SCOPED_TRACE(table[i].what);
    EXPECT_TRUE(is_printable_ascii(lines[i])) << lines[i];
    json j;
    ASSERT_NO_THROW(j = json::parse(lines[i])) << lines[i];
    EXPECT_EQ(j["event"], "deny");
    EXPECT_EQ(j["seq"], i + 2);
    EXPECT_EQ(j["command"], table[i].expected);
    EXPECT_EQ(j["args"], json::array({table[i].expected, "x"}));
    EXPECT_EQ(j["subject"], "CN=" + table[i].expected);
  }
}

TEST_F(AuditLogTest, AppendsToAnExistingFile) {
  const auto path = dir_ / "audit.log";
  std::ofstream(path) << "{\"earlier\":true}\n";
  auto log = open_log(path);
  ASSERT_NE(log, nullptr);
  EXPECT_TRUE(log->record("start", {}));
  log->flush();
  const auto lines = read_lines(path);
  ASSERT_EQ(lines.size(), 2U);
  EXPECT_EQ(lines[0], "{\"earlier\":true}");
  EXPECT_EQ(json::parse(lines[1])["event"], "start");
}

TEST_F(AuditLogTest, CreatesTheFileWithMode0640EvenUnderUmaskZero) {
  const ScopedUmask umask_zero(0);
  const auto path = dir_ / "audit.log";
  auto log = open_log(path);
  ASSERT_NE(log, nullptr);
  struct stat st {};
  ASSERT_EQ(::lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0640U);
}

TEST_F(AuditLogTest, LetsTheUmaskNarrowTheMode) {
  const ScopedUmask umask_077(077);
  const auto path = dir_ / "audit.log";
  auto log = open_log(path);
  ASSERT_NE(log, nullptr);
  struct stat st {};
  ASSERT_EQ(::lstat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600U);
}

TEST_F(AuditLogTest, RefusesASymlinkAtThePath) {
  const auto target = dir_ / "target";
  std::ofstream(target) << "precious\n";
  const auto path = dir_ / "audit.log";
  fs::create_symlink(target, path);

  auto log = AuditLog::open(path);
  ASSERT_FALSE(log.ok());
  EXPECT_EQ(log.error().code, ErrorCode::internal);
  EXPECT_NE(log.error().message.find(path.string()), std::string::npos) << log.error().message;
  EXPECT_EQ(read_file(target), "precious\n");
  EXPECT_TRUE(fs::is_symlink(path));
}

TEST_F(AuditLogTest, RefusesADanglingSymlinkWithoutCreatingItsTarget) {
  const auto target = dir_ / "planted";
  const auto path = dir_ / "audit.log";
  fs::create_symlink(target, path);
  EXPECT_FALSE(AuditLog::open(path).ok());
  EXPECT_FALSE(fs::exists(target));
}

TEST_F(AuditLogTest, RefusesADirectory) {
  const auto path = dir_ / "audit.log";
  fs::create_directory(path);
  EXPECT_FALSE(AuditLog::open(path).ok());
}

TEST_F(AuditLogTest, RefusesACharacterDevice) {
  // /dev/full would make every write fail; it is refused before any record is lost to it.
  if (!fs::exists("/dev/full")) GTEST_SKIP() << "/dev/full is not available";
  const auto log = AuditLog::open("/dev/full");
  EXPECT_FALSE(log.ok());
}

TEST_F(AuditLogTest, RefusesAFifoWithoutBlocking) {
  const auto path = dir_ / "audit.log";
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  auto pending = std::async(std::launch::async, [&path] { return AuditLog::open(path).ok(); });
  if (pending.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
    // Unblock the open by appearing as a reader so the test can finish, then fail.
    const UniqueFd reader(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
    ADD_FAILURE() << "AuditLog::open blocked on a FIFO with no reader";
    EXPECT_FALSE(pending.get());
    return;
  }
  EXPECT_FALSE(pending.get());
}

TEST_F(AuditLogTest, RefusesAFifoThatHasAReader) {
  const auto path = dir_ / "audit.log";
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  const UniqueFd reader(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  ASSERT_TRUE(reader.valid());
  EXPECT_FALSE(AuditLog::open(path).ok());
}

TEST_F(AuditLogTest, RefusesAPathInAMissingDirectory) {
  EXPECT_FALSE(AuditLog::open(dir_ / "missing" / "audit.log").ok());
}

// A full disk is simulated with RLIMIT_FSIZE (write fails with EFBIG once the file reaches the
// limit; SIGXFSZ is ignored for the duration). /dev/full cannot be used: open() refuses it.
TEST_F(AuditLogTest, ReportsUnhealthyAfterAFailedWriteAndRecoversAfterASuccessfulOne) {
  const auto path = dir_ / "audit.log";
  auto log = open_log(path);
  ASSERT_NE(log, nullptr);
  ASSERT_TRUE(log->record("start", {}));
  log->flush();
  const auto size_before = fs::file_size(path);

  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
  if (saved.rlim_max != RLIM_INFINITY && saved.rlim_max < size_before) {
    GTEST_SKIP() << "RLIMIT_FSIZE hard limit too low";
  }
  const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  rlimit tight = saved;
  tight.rlim_cur = static_cast<rlim_t>(size_before);
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &tight), 0);
  log->record("allow", {{"command", "PING"}});
  log->flush();
  const bool written_when_full = log->healthy();
  const bool healthy_when_full = log->healthy();
  ::setrlimit(RLIMIT_FSIZE, &saved);
  std::signal(SIGXFSZ, old_handler);

  EXPECT_FALSE(written_when_full);
  EXPECT_FALSE(healthy_when_full);
  EXPECT_EQ(fs::file_size(path), size_before) << "no partial record may be left behind";

  log->record("allow", {{"command", "PING"}});  // false: queued while unhealthy
  log->flush();
  EXPECT_TRUE(log->healthy());
  log->flush();
  const auto lines = read_lines(path);
  ASSERT_EQ(lines.size(), 2U);
  json last;
  EXPECT_NO_THROW(last = json::parse(lines[1])) << lines[1];
  EXPECT_EQ(last["seq"], 3) << "a record that was not written takes no seq";
}

TEST_F(AuditLogTest, RemovesATornRecordAfterAShortWrite) {
  const auto path = dir_ / "audit.log";
  auto log = open_log(path);
  ASSERT_NE(log, nullptr);
  ASSERT_TRUE(log->record("start", {}));
  log->flush();
  const auto size_before = fs::file_size(path);

  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
  if (saved.rlim_max != RLIM_INFINITY && saved.rlim_max < size_before + 10) {
    GTEST_SKIP() << "RLIMIT_FSIZE hard limit too low";
  }
  const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  rlimit tight = saved;
  tight.rlim_cur = static_cast<rlim_t>(size_before + 10);  // room for 10 bytes of the record
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &tight), 0);
  log->record("allow", {{"command", "tail -n 10 syslog"}});
  log->flush();
  const bool written_when_full = log->healthy();
  ::setrlimit(RLIMIT_FSIZE, &saved);
  std::signal(SIGXFSZ, old_handler);

  EXPECT_FALSE(written_when_full);
  EXPECT_FALSE(log->healthy());
  EXPECT_EQ(fs::file_size(path), size_before) << "the partial record must be removed";
  log->record("allow", {{"command", "PING"}});  // false: queued while unhealthy
  log->flush();
  const auto lines = read_lines(path);
  ASSERT_EQ(lines.size(), 2U);
  for (const auto& line : lines) EXPECT_NO_THROW((void)json::parse(line).size()) << line;
}

// A session awaits its record without blocking its thread; the record is in the file (written)
// when the await completes, and it carries the standard fields first.
boost::asio::awaitable<std::string> commit_then_read(AuditLog& log, fs::path path) {
  RecordEncoder rec("command");
  rec.unum("conn", 3).str("principal", "alice").strings_cut("args", {"a\nb", "caf\xC3\xA9"}, 1024);
  const boost::system::error_code ec = co_await log.commit(std::move(rec));
  EXPECT_FALSE(ec) << ec.message();
  std::ifstream in(path, std::ios::binary);
  co_return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

TEST_F(AuditLogTest, CompletesAnAwaitedRecordOnceItIsInTheFile) {
  const auto path = dir_ / "audit.log";
  AuditLog::Options options;
  options.host = "web\n1";
  options.instance = "0123456789abcdef";
  auto opened = AuditLog::open(path, options);
  ASSERT_TRUE(opened.ok());
  auto& log = *opened.value();
  boost::asio::io_context io;
  auto done = boost::asio::co_spawn(io, commit_then_read(log, path), boost::asio::use_future);
  io.run();
  const std::string file = done.get();
  ASSERT_FALSE(file.empty());
  EXPECT_EQ(file.back(), '\n');
  EXPECT_EQ(file.rfind("{\"seq\":1,\"prev\":\"", 0), 0U) << file;  // the file header
  const std::string text = file.substr(file.find('\n') + 1);
  EXPECT_EQ(text.rfind("{\"seq\":2,\"prev\":\"", 0), 0U) << text;
  const auto j = json::parse(text);
  EXPECT_EQ(j["host"], "web\n1");
  EXPECT_EQ(j["instance"], "0123456789abcdef");
  EXPECT_EQ(j["event"], "command");
  EXPECT_EQ(j["args"], json::array({"a\nb", "caf\xC3\xA9"}));
  EXPECT_TRUE(is_printable_ascii(text.substr(0, text.size() - 1))) << text;
}

// The direct encoder reads back like the DOM encoder, and cuts long text with its length.
TEST_F(AuditLogTest, DirectlyEncodedRecordsMatchTheDomEncoding) {
  const std::string nasty = "x\x1b[2J\xE2\x80\xA8\xFF\\\"\t";
  std::string direct;
  append_json_string(direct, nasty);
  EXPECT_EQ(json::parse(direct), json::parse(AuditLog::encode(json(nasty))));
  std::string cut;
  append_json_string_cut(cut, std::string(2000, 'a'), 1024);
  EXPECT_EQ(json::parse(cut).get<std::string>(),
            std::string(1024, 'a') + "...[truncated, 2000 bytes]");
}

// The encoder scans eight bytes at a time: a byte that needs escaping is found at every position
// of strings of every length around the word size, and the bytes next to each special value
// (0x20 and 0x1F, 0x7E and 0x7F, '!' and '#' around '"', '[' and ']' around '\\') are told apart.
TEST_F(AuditLogTest, EscapesEveryByteThatNeedsItAtEveryPositionOfTheWord) {
  const std::string plain_neighbours = "\x20\x7E!#[]";
  const std::vector<std::string> specials = {"\x00"s, "\x1F", "\"", "\\", "\x7F", "\xC3\xA9", "\n"};
  for (std::size_t len = 0; len <= 25; ++len) {
    std::string all_plain(len, 'a');
    for (std::size_t i = 0; i < len; ++i)
      all_plain[i] = plain_neighbours[i % plain_neighbours.size()];
    std::string out;
    append_json_string(out, all_plain);
    EXPECT_EQ(out, "\"" + all_plain + "\"");
    for (std::size_t pos = 0; pos < len; ++pos) {
      for (const std::string& special : specials) {
        std::string text = all_plain;
        text.replace(pos, 1, special);
        out.clear();
        append_json_string(out, text);
        EXPECT_TRUE(is_printable_ascii(out)) << len << " " << pos;
        EXPECT_EQ(json::parse(out).get<std::string>(), text) << len << " " << pos;
        EXPECT_GT(out.size(), text.size() + 2) << "not escaped: " << out;
      }
    }
  }
}

// The writer thread runs under SCHED_BATCH, so that waking it does not preempt an I/O thread
// (its batches grow under load; scripts/bench-audit.sh measures it).
TEST_F(AuditLogTest, WriterThreadIsScheduledAsBatchWork) {
  auto log = open_log(dir_ / "audit.jsonl");
  ASSERT_NE(log, nullptr);
  int writers = 0;
  for (const auto& task : fs::directory_iterator("/proc/self/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    std::getline(comm, name);
    if (name != "audit-writer") continue;
    ++writers;
    const auto tid = static_cast<pid_t>(std::stol(task.path().filename().string()));
    // The thread sets its policy as it starts: give it a moment.
    int policy = -1;
    for (int i = 0; i < 200 && (policy = ::sched_getscheduler(tid)) != SCHED_BATCH; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    EXPECT_EQ(policy, SCHED_BATCH);
  }
  EXPECT_EQ(writers, 1);
}

}  // namespace
}  // namespace opsagent::audit

// The audit hash chain: HashChain, the writer's chain and file headers, read_chain_tail, and
// the verifier's diagnosis of each kind of damage on synthetic logs.

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <sys/resource.h>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "agent/audit/audit_log.hpp"
#include "agent/audit/chain_tail.hpp"
#include "agent/audit/chain_verifier.hpp"
#include "agent/audit/hash_chain.hpp"

namespace opsagent::audit {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string hex(const unsigned char* d, std::size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < n; ++i) {
    out += kHex[d[i] >> 4];
    out += kHex[d[i] & 0xf];
  }
  return out;
}

std::string sha256_hex(const std::string& s) {
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(s.data(), s.size(), d, &n, EVP_sha256(), nullptr);
  return hex(d, n);
}

std::string hmac_hex(const std::string& key, const std::string& s) {
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(s.data()), s.size(), d, &n);
  return hex(d, n);
}

std::string as_string(const ChainHash& h) { return {h.data(), h.size()}; }

TEST(HashChain, HashesLikeSha256AndKeepsDoingSoWhenReused) {
  HashChain chain;
  EXPECT_STREQ(chain.algorithm(), "sha256");
  EXPECT_TRUE(chain.key_id().empty());
  ChainHash h;
  for (const std::string& line :
       std::vector<std::string>{"", "abc", std::string(1000, 'x'), "{\"seq\":1}"}) {
    ASSERT_TRUE(chain.hash(line, h));
    EXPECT_EQ(as_string(h), sha256_hex(line)) << line;
  }
}

TEST(HashChain, HashesLikeHmacSha256WithAKeyAndNamesTheKeyOnlyByItsId) {
  const std::string key = "a secret key\n";
  HashChain chain(key);
  EXPECT_STREQ(chain.algorithm(), "hmac-sha256");
  EXPECT_EQ(chain.key_id(), sha256_hex(key).substr(0, 16));
  ChainHash h;
  for (const std::string& line :
       std::vector<std::string>{"", "abc", std::string(1000, 'y'), "abc"}) {
    ASSERT_TRUE(chain.hash(line, h));
    EXPECT_EQ(as_string(h), hmac_hex(key, line)) << line;
  }
}

class AuditChainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "opsagent-chain-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  static std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }
  static void write_file(const fs::path& p, const std::string& s) {
    std::ofstream(p, std::ios::binary | std::ios::trunc) << s;
  }
  static std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::size_t start = 0;
    for (auto lf = text.find('\n'); lf != std::string::npos; lf = text.find('\n', start)) {
      out.push_back(text.substr(start, lf - start));
      start = lf + 1;
    }
    return out;
  }
  static std::string join(const std::vector<std::string>& lines) {
    std::string out;
    for (const auto& l : lines) out += l + "\n";
    return out;
  }
  // Writes `n` records through a real AuditLog (one agent run).
  void run(const fs::path& path, int n, const std::string& key = {}) {
    AuditLog::Options options;
    options.chain_key = key;
    auto log = AuditLog::open(path, options);
    ASSERT_TRUE(log.ok());
    for (int i = 0; i < n; ++i) ASSERT_TRUE(log.value()->record("tick", {{"i", i}}));
    log.value()->flush();
  }
  ChainReport verify(const std::vector<std::pair<std::string, std::string>>& files,
                     const std::string& key = {}) {
    std::vector<ChainInput> in;
    for (const auto& [name, text] : files) in.push_back({name, text});
    return verify_chain(in, key);
  }
  fs::path dir_;
};

TEST_F(AuditChainTest, StartsEachFileWithAHeaderAndLinksEveryRecordToTheOneBefore) {
  const auto path = dir_ / "audit.jsonl";
  run(path, 5);
  const auto lines = lines_of(read_file(path));
  ASSERT_EQ(lines.size(), 6U);
  const auto header = json::parse(lines[0]);
  EXPECT_EQ(header["event"], "audit_file_start");
  EXPECT_EQ(header["reason"], "agent_start");
  EXPECT_EQ(header["chain"], "sha256");
  EXPECT_EQ(header["prev"], std::string(64, '0'));
  EXPECT_EQ(header["seq"], 1);
  for (std::size_t i = 1; i < lines.size(); ++i) {
    const auto j = json::parse(lines[i]);
    EXPECT_EQ(j["seq"], i + 1);
    EXPECT_EQ(j["prev"], sha256_hex(lines[i - 1]));
  }
  const auto report = verify({{"a", read_file(path)}});
  EXPECT_EQ(report.verdict, ChainVerdict::intact) << format_report(report);
  EXPECT_EQ(format_report(report), "OK: 6 records in 1 file, chain intact");
}

TEST_F(AuditChainTest, ARestartContinuesSeqAndLinksToTheLastRecord) {
  const auto path = dir_ / "audit.jsonl";
  run(path, 3);
  run(path, 2);
  const auto lines = lines_of(read_file(path));
  ASSERT_EQ(lines.size(), 7U);
  const auto header = json::parse(lines[4]);
  EXPECT_EQ(header["event"], "audit_file_start");
  EXPECT_EQ(header["seq"], 5);
  EXPECT_EQ(header["prev"], sha256_hex(lines[3]));
  EXPECT_FALSE(header.contains("previous_torn"));
  EXPECT_EQ(verify({{"a", read_file(path)}}).verdict, ChainVerdict::intact);
}

TEST_F(AuditChainTest, ATornTailIsEndedNotedInTheHeaderAndAcceptedByTheVerifier) {
  const auto path = dir_ / "audit.jsonl";
  run(path, 3);
  const std::string whole = read_file(path);
  write_file(path, whole + "{\"seq\":5,\"prev\":\"00");  // a crash mid-write
  ChainTail tail;
  {
    HashChain chain;
    tail = read_chain_tail(path, chain);
  }
  EXPECT_TRUE(tail.found);
  EXPECT_TRUE(tail.torn);
  EXPECT_EQ(tail.seq, 4U);
  EXPECT_EQ(verify({{"a", read_file(path)}}).verdict, ChainVerdict::torn_tail);
  run(path, 2);
  const auto lines = lines_of(read_file(path));
  ASSERT_EQ(lines.size(), 8U);
  EXPECT_EQ(lines[4], "{\"seq\":5,\"prev\":\"00");
  const auto header = json::parse(lines[5]);
  EXPECT_EQ(header["previous_torn"], true);
  EXPECT_EQ(header["seq"], 5);
  EXPECT_EQ(header["prev"], sha256_hex(lines[3]));
  const auto report = verify({{"a", read_file(path)}});
  EXPECT_EQ(report.verdict, ChainVerdict::intact) << format_report(report);
  EXPECT_EQ(report.torn_acknowledged, 1U);
}

TEST_F(AuditChainTest, ARotationStartsTheNewFileWithAHeaderLinkedToTheOldOne) {
  const auto path = dir_ / "audit.jsonl";
  auto log = AuditLog::open(path);
  ASSERT_TRUE(log.ok());
  ASSERT_TRUE(log.value()->record("tick", {}));
  log.value()->flush();
  ASSERT_TRUE(log.value()->reopen().ok());  // same file: no header
  fs::rename(path, dir_ / "audit.jsonl.1");
  ASSERT_TRUE(log.value()->reopen().ok());
  ASSERT_TRUE(log.value()->record("tick", {}));
  log.value()->flush();
  const auto old_lines = lines_of(read_file(dir_ / "audit.jsonl.1"));
  const auto new_lines = lines_of(read_file(path));
  ASSERT_EQ(old_lines.size(), 2U);
  ASSERT_EQ(new_lines.size(), 2U);
  const auto header = json::parse(new_lines[0]);
  EXPECT_EQ(header["reason"], "reopen");
  EXPECT_EQ(header["seq"], 3);
  EXPECT_EQ(header["prev"], sha256_hex(old_lines[1]));
  const auto report = verify(
      {{"audit.jsonl.1", read_file(dir_ / "audit.jsonl.1")}, {"audit.jsonl", read_file(path)}});
  EXPECT_EQ(report.verdict, ChainVerdict::intact) << format_report(report);
  EXPECT_EQ(report.records, 4U);
}

TEST_F(AuditChainTest, AKeyedChainNeedsItsKey) {
  const auto path = dir_ / "audit.jsonl";
  run(path, 3, "k1");
  const auto header = json::parse(lines_of(read_file(path))[0]);
  EXPECT_EQ(header["chain"], "hmac-sha256");
  EXPECT_EQ(header["key_id"], sha256_hex("k1").substr(0, 16));
  EXPECT_EQ(verify({{"a", read_file(path)}}, "k1").verdict, ChainVerdict::intact);
  const auto without = verify({{"a", read_file(path)}});
  EXPECT_EQ(without.verdict, ChainVerdict::broken);
  EXPECT_EQ(without.kind, "key");
  const auto wrong = verify({{"a", read_file(path)}}, "k2");
  EXPECT_EQ(wrong.verdict, ChainVerdict::broken);
  EXPECT_EQ(wrong.kind, "key");
}

// A full disk (RLIMIT_FSIZE, as in AuditLogTest) fails a batch, even part way through: the
// chain goes on from the last record that is in the file once writes succeed again.
TEST_F(AuditChainTest, AFailedWriteLeavesTheChainIntactAfterRecovery) {
  const auto path = dir_ / "audit.jsonl";
  auto log = AuditLog::open(path);
  ASSERT_TRUE(log.ok());
  ASSERT_TRUE(log.value()->record("tick", {}));
  log.value()->flush();
  const auto size_before = fs::file_size(path);
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
  if (saved.rlim_max != RLIM_INFINITY && saved.rlim_max < size_before + 100) {
    GTEST_SKIP() << "RLIMIT_FSIZE hard limit too low";
  }
  const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  rlimit tight = saved;
  tight.rlim_cur = static_cast<rlim_t>(size_before + 100);  // a short write: part of a record
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &tight), 0);
  log.value()->record("lost", {{"pad", std::string(300, 'x')}});
  log.value()->flush();
  const bool healthy_when_full = log.value()->healthy();
  ::setrlimit(RLIMIT_FSIZE, &saved);
  std::signal(SIGXFSZ, old_handler);
  EXPECT_FALSE(healthy_when_full);
  EXPECT_EQ(fs::file_size(path), size_before);
  log.value()->record("after", {});
  log.value()->record("after", {});
  log.value()->flush();
  EXPECT_TRUE(log.value()->healthy());
  const auto report = verify({{"a", read_file(path)}});
  EXPECT_EQ(report.verdict, ChainVerdict::intact) << format_report(report);
  EXPECT_EQ(report.records, 4U);
}

// Damage done to a 10-record file (header + 9), each located by line.
class AuditChainDamage : public AuditChainTest {
 protected:
  void SetUp() override {
    AuditChainTest::SetUp();
    run(dir_ / "a", 9);
    lines_ = lines_of(read_file(dir_ / "a"));
    ASSERT_EQ(lines_.size(), 10U);
  }
  ChainReport check(const std::vector<std::string>& lines) { return verify({{"a", join(lines)}}); }
  std::vector<std::string> lines_;
};

TEST_F(AuditChainDamage, FindsAnEditedByte) {
  auto lines = lines_;
  lines[4][lines[4].size() - 3] ^= 1;
  const auto r = check(lines);
  EXPECT_EQ(r.kind, "edited") << format_report(r);
  EXPECT_EQ(r.line, 5U);
}

TEST_F(AuditChainDamage, FindsADeletedLine) {
  auto lines = lines_;
  lines.erase(lines.begin() + 4);
  const auto r = check(lines);
  EXPECT_EQ(r.kind, "deleted") << format_report(r);
  EXPECT_EQ(r.line, 5U);
}

TEST_F(AuditChainDamage, FindsAnInsertedLine) {
  auto lines = lines_;
  lines.insert(lines.begin() + 5, lines[4]);
  const auto r = check(lines);
  EXPECT_EQ(r.kind, "inserted") << format_report(r);
  EXPECT_EQ(r.line, 6U);
}

TEST_F(AuditChainDamage, FindsTwoSwappedLines) {
  auto lines = lines_;
  std::swap(lines[3], lines[4]);
  const auto r = check(lines);
  EXPECT_EQ(r.kind, "reordered") << format_report(r);
  EXPECT_EQ(r.line, 4U);
}

TEST_F(AuditChainDamage, ReportsATornLastLineAsTornNotTampered) {
  std::string text = join(lines_);
  text.resize(text.size() - 20);
  const auto r = verify({{"a", text}});
  EXPECT_EQ(r.verdict, ChainVerdict::torn_tail) << format_report(r);
  EXPECT_EQ(r.line, 10U);
}

TEST_F(AuditChainDamage, FindsAFileCutInTheMiddleOrMissing) {
  std::vector<std::string> first(lines_.begin(), lines_.begin() + 5);
  std::vector<std::string> second(lines_.begin() + 5, lines_.end());
  // A middle file that lost its tail: cut in the middle of a line.
  std::string cut = join(first);
  cut.resize(cut.size() - 10);
  EXPECT_EQ(verify({{"1", cut}, {"2", join(second)}}).kind, "truncated");
  // A later file that does not start with its header.
  const auto r = verify({{"1", join(first)}, {"2", join(second)}});
  EXPECT_EQ(r.kind, "truncated") << format_report(r);
  EXPECT_EQ(r.file, "2");
  EXPECT_EQ(r.line, 1U);
}

TEST(ChainVerifier, NeverCrashesOnGarbage) {
  for (const std::string& text : std::vector<std::string>{
           std::string("\n\n\n"), std::string("{\"seq\":"),
           std::string("{\"seq\":1,\"prev\":\"zz\"}\n"), std::string(1000, '{'),
           std::string("{\"seq\":18446744073709551615,\"prev\":\"") + std::string(64, 'a') +
               "\"}\n{\"seq\":1,\"prev\":\"" + std::string(64, 'a') + "\"}\n"}) {
    const auto r = verify_chain({{"x", text}}, "");
    EXPECT_FALSE(format_report(r).empty());
  }
}

}  // namespace
}  // namespace opsagent::audit

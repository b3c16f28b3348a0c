// SECURITY-MATRIX I5, I8 and I9: what one client (or one source address) can take from others.
// I5: one principal filling the blocking-work pool with the shipped defaults delays neither
// another principal's file work nor a reload. I8: failed handshakes from one source are counted,
// not audited one record each. I9: a flood of slow handshakes from one source evicts its own
// handshakes, not another source's.

#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/integration/test_policy.hpp"
#include "tests/support/agent_process.hpp"
#include "tests/support/raw_connection.hpp"
#include "tests/support/tls_client.hpp"

namespace opsagent::testing {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Sanitizer builds run everything several times slower; time bounds that are the behaviour
// itself ("within a second") get this much more room there.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr int kSlowdown = 3;
#else
constexpr int kSlowdown = 1;
#endif

// Records with `event` whose `field` (when given) equals `value`.
std::size_t count_records(const AgentProcess& agent, const std::string& event,
                          const std::string& field = "", const json& value = nullptr) {
  std::size_t n = 0;
  for (const auto& r : agent.audit()) {
    if (r.value("event", "") == event && (field.empty() || r.value(field, json()) == value)) ++n;
  }
  return n;
}

bool wait_for_records(const AgentProcess& agent, std::size_t n, const std::string& event,
                      const std::string& field, const json& value,
                      std::chrono::milliseconds timeout = 10s) {
  const auto deadline = Clock::now() + timeout;
  while (count_records(agent, event, field, value) < n) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

// ============================================================================================
// I5 One identity fills the blocking pool.

TEST(MatrixI, I5_OneIdentityFillingTheFilePoolDelaysNeitherAnotherIdentityNorAReload) {
  // The shipped hash_threads and max_file_ops_per_identity: the defaults must make this true.
  AgentProcess agent{AgentSpec{kTestPolicy, {{"limits", "{max_hash_bytes: 64GiB}"}}}};
  ASSERT_NE(agent.port(), 0);
  fs::create_directories(agent.dir() / "files");
  const fs::path big = agent.dir() / "files" / "huge.img";
  { std::ofstream(big) << ""; }
  fs::resize_file(big, std::uintmax_t{6} << 30);  // sparse: each digest reads 6 GiB of zeros

  // Two sessions of one principal, each hashing: as much of the pool as alice may take.
  auto first = agent.connect("alice");
  auto second = agent.connect("alice");
  ASSERT_TRUE(first && second);
  ASSERT_TRUE(first->write("hash sha256 " + big.string() + "\n"));
  ASSERT_TRUE(second->write("hash sha512 " + big.string() + "\n"));
  ASSERT_TRUE(wait_for_records(agent, 2, "command", "command", "hash")) << agent.log();
  std::this_thread::sleep_for(300ms);  // both digests are on the pool now

  // Another principal's file work is served at once.
  auto other = agent.connect("ci-bot");
  ASSERT_TRUE(other);
  auto started = Clock::now();
  EXPECT_EQ(other->command("tail app 1"),
            (std::vector<std::string>{"| syslog line 15", "OK app lines=1"}));
  EXPECT_LT(Clock::now() - started, kSlowdown * 1s) << "tail waited behind alice's digests";

  // So is a reload (its own thread, never behind client work).
  started = Clock::now();
  ASSERT_TRUE(agent.signal(SIGHUP));
  const json reloaded = agent.wait_for_audit("policy_reload", "", nullptr, 10s);
  EXPECT_FALSE(reloaded.is_null()) << agent.log();
  EXPECT_LT(Clock::now() - started, kSlowdown * 1s) << "the reload waited behind the digests";

  // The digests were still running throughout: the pool really was as full as alice can make it.
  EXPECT_EQ(count_records(agent, "command_end", "command", "hash"), 0U)
      << "a 6 GiB digest finished early; the test did not load the pool";
  first->reset();
  second->reset();
  EXPECT_TRUE(wait_for_records(agent, 2, "command_end", "command", "hash"));
}

TEST(MatrixI, I5_OnePrincipalMayNeverBeGivenTheWholePool) {
  // A configuration that would let one principal take every blocking thread is refused, with
  // the position of the key.
  AgentProcess probe{AgentSpec{kTestPolicy, {}}};
  ASSERT_NE(probe.port(), 0);
  const fs::path config = probe.dir() / "bad-agent.yaml";
  {
    std::ifstream in(probe.dir() / "agent.yaml");
    std::ofstream out(config);
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("limits:", 0) != 0) out << line << "\n";
    }
    out << "limits: {hash_threads: 2, max_digests_per_identity: 2}\n";
  }
  const RunResult r = run_agent_binary({"--config", config.string(), "--check-config"});
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("max_digests_per_identity (2) must be less than hash_threads (2)"),
            std::string::npos)
      << r.output;
}

// ============================================================================================
// I8 Unauthenticated audit flood.

TEST(MatrixI, I8_FailedHandshakesFromOneSourceAreCountedNotAuditedOneByOne) {
  constexpr int kTlsWithoutCertificate = 100;
  constexpr int kRaw = 1900;  // cheaper for the test, the same to the agent: no certificate
  constexpr int kConnections = kTlsWithoutCertificate + kRaw;
  constexpr std::uintmax_t kAuditBudget = 50 * 1024;
  AgentProcess agent{AgentSpec{kTestPolicy, {}}};
  ASSERT_NE(agent.port(), 0);
  auto before = agent.connect("alice");
  ASSERT_TRUE(before);
  const std::uintmax_t size_before = fs::file_size(agent.audit_path());

  for (int i = 0; i < kTlsWithoutCertificate; ++i) {
    TlsClient c(agent.client_options(""));
    c.connect("127.0.0.1", agent.port());  // TLS 1.3: the client may finish before the alert
    ASSERT_FALSE(c.read_line(10s).has_value()) << "a client without a certificate was served";
  }
  for (int i = 0; i < kRaw; ++i) {
    RawConnection c(agent.port());
    ASSERT_TRUE(c.connected()) << i;
    c.send("GET / HTTP/1.0\r\n\r\n");
    ASSERT_TRUE(c.wait_closed(10s)) << i;
  }

  // Authenticated sessions are still audited as always, before and after the flood.
  EXPECT_EQ(before->command("ping"), std::vector<std::string>{"OK pong"});
  auto after = agent.connect("ci-bot");
  ASSERT_TRUE(after);
  EXPECT_EQ(after->command("ping"), std::vector<std::string>{"OK pong"});
  EXPECT_EQ(count_records(agent, "auth_ok"), 2U);
  EXPECT_EQ(count_records(agent, "connection_accepted") - count_records(agent, "tls_failure"), 2U);
  before.reset();
  after.reset();
  EXPECT_EQ(agent.stop(), 0) << agent.log();  // writes the counts of the interval cut short

  const std::uintmax_t growth = fs::file_size(agent.audit_path()) - size_before;
  EXPECT_LT(growth, kAuditBudget) << "audit grew by " << growth << " bytes";
  std::size_t in_full = 0;
  std::uint64_t counted = 0;
  std::set<std::uint64_t> accepted;
  for (const auto& r : agent.audit()) {
    const std::string event = r.value("event", "");
    if (event == "connection_accepted") accepted.insert(r["conn"].get<std::uint64_t>());
    if (event == "tls_failure" || event == "connection_refused") {
      EXPECT_EQ(r.value("peer", "").rfind("127.0.0.1:", 0), 0U) << r.dump();
      if (event == "tls_failure") {
        EXPECT_EQ(accepted.count(r["conn"].get<std::uint64_t>()), 1U) << r.dump();
      }
      ++in_full;
    }
    if (event == "tls_failures_suppressed") {
      EXPECT_EQ(r.value("peer", ""), "127.0.0.1") << r.dump();
      counted += r.value("failures", std::uint64_t{0});
    }
  }
  EXPECT_GT(in_full, 0U) << "the first failures are audited in full";
  EXPECT_GT(counted, 0U) << "no tls_failures_suppressed record";
  EXPECT_EQ(in_full + counted, static_cast<std::uint64_t>(kConnections))
      << in_full << " audited in full, " << counted << " counted";
}

// ============================================================================================
// I9 Handshake eviction is fair per source.

TEST(MatrixI, I9_ASlowHandshakeFloodFromOneSourceCannotEvictAnotherSourcesClient) {
  constexpr int kMaxHandshakes = 8;
  constexpr int kMaxFlood = 400;
  AgentProcess agent{
      AgentSpec{kTestPolicy,
                {{"limits", "{max_handshakes: " + std::to_string(kMaxHandshakes) + "}"},
                 {"timeouts", "{handshake: 10s}"}}}};
  ASSERT_NE(agent.port(), 0);

  // Silent connections from 127.0.0.2 (never a ClientHello), one every few milliseconds, for
  // as long as the legitimate client takes.
  std::atomic<bool> stop{false};
  std::atomic<int> opened{0};
  std::vector<std::unique_ptr<RawConnection>> flood;
  std::thread flooder([&] {
    while (!stop && opened < kMaxFlood) {
      flood.push_back(std::make_unique<RawConnection>(agent.port(), "127.0.0.2"));
      if (!flood.back()->connected()) break;
      ++opened;
      std::this_thread::sleep_for(5ms);
    }
  });
  const auto flood_started = Clock::now();
  while (opened < 2 * kMaxHandshakes && Clock::now() - flood_started < 10s) {
    std::this_thread::sleep_for(5ms);
  }

  // A slow but legitimate client from 127.0.0.3: a second before its ClientHello.
  ClientOptions slow = agent.client_options("alice");
  slow.source_address = "127.0.0.3";
  slow.hello_delay = 1s;
  TlsClient client(slow);
  const std::string err = client.connect("127.0.0.1", agent.port());
  const int flood_during = opened;
  const auto greeting = err.empty() ? client.read_line(10s) : std::nullopt;
  stop = true;
  flooder.join();

  EXPECT_EQ(err, "") << "evicted by the flood (" << flood_during << " flood connections)";
  EXPECT_EQ(greeting.value_or("").rfind("OK ", 0), 0U) << greeting.value_or("<none>");
  EXPECT_GT(flood_during, 3 * kMaxHandshakes) << "the flood was too small to prove anything";
  // The flood churned through its own slots.
  std::size_t closed = 0;
  for (auto& c : flood) closed += c->wait_closed(5ms) ? 1 : 0;
  EXPECT_GT(closed, 0U) << "no flood connection was evicted";
  if (greeting) {
    EXPECT_EQ(client.command("ping"), std::vector<std::string>{"OK pong"});
  }
}

}  // namespace
}  // namespace opsagent::testing

// SECURITY-MATRIX rows B7, B8, C8, E1, E4 and G5 against the real agent. Named after their rows.

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "tests/integration/test_policy.hpp"
#include "tests/support/agent_process.hpp"
#include "tests/support/sanitizer.hpp"

namespace opsagent::testing {
namespace {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

TEST(MatrixB, B7_PartialLineThenDisconnectRunsNothing) {
  AgentProcess agent{AgentSpec{kTestPolicy, {}}};
  const std::string marker = unique_marker("partial");
  for (const bool reset : {false, true}) {
    auto c = agent.connect("alice");
    ASSERT_TRUE(c->write("run forker " + marker));  // no LF
    if (reset) {
      c->reset();
    } else {
      c->close();
    }
  }
  agent.wait_for_audit("disconnect", "partial_line_bytes",
                       std::string("run forker ").size() + marker.size());
  EXPECT_TRUE(wait_no_process_with_marker(marker, 500ms));
  for (const auto& r : agent.audit()) EXPECT_NE(r["event"], "command") << r.dump();
}

TEST(MatrixB, B8_SlowLinesRunWithinTheIdleTimeoutAndAreCutBeyondIt) {
  AgentProcess agent{AgentSpec{kTestPolicy, {{"timeouts", "{idle: 2s}"}}}};
  auto c = agent.connect("alice");
  for (const char ch : std::string("ping\n")) {  // one byte per TLS record, 100 ms apart
    ASSERT_TRUE(c->write(std::string(1, ch)));
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(c->read_reply(), std::vector<std::string>{"OK pong"});
  // The idle timeout is also the line timeout: a line still unfinished after it is cut off.
  const auto started = std::chrono::steady_clock::now();
  bool cut = false;
  for (const char ch : std::string("whoami\n")) {
    if (!c->write(std::string(1, ch))) {
      cut = true;
      break;
    }
    std::this_thread::sleep_for(700ms);
  }
  const auto r = c->read_reply(scaled(5s));
  EXPECT_TRUE(cut || (!r.empty() && r.back() == "ERR timeout idle for 2 s; bye")) << r.size();
  // Cut at the 2 s idle timeout, with a margin that grows under the sanitizers.
  EXPECT_LT(std::chrono::steady_clock::now() - started, 2s + scaled(4s));
  for (const auto& rec : agent.audit()) EXPECT_NE(rec.value("command", ""), "whoami");
}

TEST(MatrixC, C8_SwappingAFileForASymlinkNeverLeaksTheCanary) {
  AgentProcess agent{AgentSpec{kTestPolicy, {}}};
  const fs::path files = agent.dir() / "files";
  fs::create_directories(files);
  std::ofstream(agent.dir() / "canary.txt") << "canary secret\n";
  const fs::path target = files / "x";
  std::atomic<bool> stop{false};
  std::thread flipper([&] {
    std::error_code ec;
    for (int i = 0; i < 100000 && !stop; ++i) {
      fs::remove(target, ec);
      if (i % 2 == 0) {
        std::ofstream(target) << "ordinary file\n";
      } else {
        fs::create_symlink(agent.dir() / "canary.txt", target, ec);
      }
    }
  });
  std::string canary_digest;
  ASSERT_EQ(run_shell("openssl dgst -sha256 -r " + (agent.dir() / "canary.txt").string() +
                          " | cut -d' ' -f1",
                      &canary_digest),
            0);
  canary_digest.pop_back();
  auto c = agent.connect("alice");
  int ok = 0;
  for (int i = 0; i < 1000; ++i) {
    const auto r = c->command("hash sha256 " + target.string());
    ASSERT_EQ(r.size(), 1U);
    EXPECT_EQ(r[0].find(canary_digest), std::string::npos) << "canary digest returned";
    ok += r[0].rfind("OK ", 0) == 0 ? 1 : 0;
  }
  stop = true;
  flipper.join();
  EXPECT_TRUE(process_alive(agent.pid()));
  std::printf("C8: %d of 1000 digests succeeded (the rest hit the symlink or a missing file)\n",
              ok);
}

TEST(MatrixE, E1_SlotsReturnAfterThousandsOfConnections) {
  AgentProcess agent{
      AgentSpec{kTestPolicy, {{"limits", "{max_clients: 2, max_clients_per_identity: 2}"}}}};
  for (int i = 0; i < 500; ++i) {
    TlsClient c(agent.client_options(i % 2 == 0 ? "alice" : "ci-bot"));
    ASSERT_EQ(c.connect("127.0.0.1", agent.port()), "") << i;
    ASSERT_TRUE(c.read_line().has_value()) << i;
    if (i % 3 == 0) {
      c.reset();
    } else if (i % 3 == 1) {
      c.close();
    } else {
      EXPECT_EQ(c.command("exit"), std::vector<std::string>{"OK bye"});
    }
  }
  // All 500 slots came back: both places are free again.
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  std::size_t disconnects = 0;
  while (disconnects < 500 && std::chrono::steady_clock::now() < deadline) {
    disconnects = 0;
    for (const auto& r : agent.audit()) disconnects += r["event"] == "disconnect" ? 1 : 0;
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(disconnects, 500U);
  auto a = agent.connect("alice");
  auto b = agent.connect("alice");
  EXPECT_EQ(a->command("ping"), std::vector<std::string>{"OK pong"});
  EXPECT_EQ(b->command("ping"), std::vector<std::string>{"OK pong"});
}

TEST(MatrixE, E4_OneIdentityCannotMonopoliseTheDigestPool) {
  AgentProcess agent{
      AgentSpec{kTestPolicy, {{"limits", "{max_digests_per_identity: 1, hash_threads: 2}"}}}};
  fs::create_directories(agent.dir() / "files");
  const fs::path big = agent.dir() / "files" / "big.img";
  { std::ofstream(big) << ""; }
  // Sparse, and just under the default max_hash_bytes (16 GiB): hashing reads 15 GiB of zeros.
  fs::resize_file(big, std::uintmax_t{15} << 30);
  auto first = agent.connect("alice");
  ASSERT_TRUE(first->write("hash sha256 " + big.string() + "\n"));
  agent.wait_for_audit("command", "command", "hash");
  auto second = agent.connect("alice");
  const auto r = second->command("hash sha256 " + big.string());
  ASSERT_EQ(r.size(), 1U);
  EXPECT_EQ(r[0].rfind("ERR busy too many file operations in progress", 0), 0U) << r[0];
  // Another identity is still served while the digest runs (until its client leaves, below),
  // not after it.
  auto other = agent.connect("ci-bot");
  EXPECT_EQ(other->command("tail app 1"),
            (std::vector<std::string>{"| syslog line 15", "OK app lines=1"}));
  for (const auto& rec : agent.audit()) {
    EXPECT_FALSE(rec.value("event", "") == "command_end" && rec.value("command", "") == "hash" &&
                 rec.value("principal", "") == "alice" && rec.value("status", "") == "ok")
        << "the other identity was served only after the digest: " << rec.dump();
  }
  // Disconnecting stops the digest: the agent's CPU goes quiet.
  first->reset();
  agent.wait_for_audit("command_end", "command", "hash", 10s);
}

TEST(MatrixG, G5_EveryDecisionMatchesExactlyOnePolicyVersionDuringReloads) {
  AgentProcess agent{AgentSpec{kTestPolicy, {}}};
  // Version B removes the reader's tail grant; flipping between A and B while clients work.
  std::string a = std::regex_replace(kTestPolicy, std::regex("@DIR@"), agent.dir().string());
  a = std::regex_replace(a, std::regex("@HELPERS@"), std::string(OPSAGENT_HELPER_DIR));
  std::string b = a;
  const std::string grant = "commands: [ping, whoami, tail]\n    deny: [run]\n    logs: [app]\n";
  b.replace(b.find(grant), grant.size(), "commands: [ping, whoami]\n    deny: [run]\n");

  std::atomic<bool> stop{false};
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&] {
      TlsClient c(agent.client_options("ci-bot"));
      if (!c.connect("127.0.0.1", agent.port()).empty() || !c.read_line()) return;
      while (!stop) c.command("tail app 1");
    });
  }
  const auto install = [&](const std::string& text) {
    const fs::path tmp = agent.dir() / "policy.yaml.new";
    std::ofstream(tmp) << text;
    fs::rename(tmp, agent.dir() / "policy.yaml");
    agent.signal(SIGHUP);
  };
  for (int i = 0; i < 100; ++i) {
    install(i % 2 == 0 ? b : a);
    std::this_thread::sleep_for(10ms);
  }
  // Reloads coalesce, so on a slow machine the storm may have decided everything under one
  // version. End with each version in force until a client's tail was decided under it.
  install(b);
  agent.wait_for_audit("command", "decision", "deny", scaled(20s));
  install(a);
  agent.wait_for_audit("command", "decision", "allow", scaled(20s));
  stop = true;
  for (auto& t : clients) t.join();

  // Each version seen in a decision allows or denies tail consistently.
  std::map<std::string, std::set<std::string>> decisions;  // policy_version -> decisions on tail
  for (const auto& r : agent.audit()) {
    if (r["event"] == "command" && r["command"] == "tail") {
      decisions[r["policy_version"]].insert(r["decision"].get<std::string>());
    }
  }
  EXPECT_EQ(decisions.size(), 2U);
  for (const auto& [version, seen] : decisions) EXPECT_EQ(seen.size(), 1U) << version;
}

}  // namespace
}  // namespace opsagent::testing

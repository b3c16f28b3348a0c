// Security matrix group I, TLS rows: I3 (revocation of an intermediate CA) and I13 (key exchange
// cost: DHEat), plus TLS 1.3 session tickets switched off, against the real agent on
// 127.0.0.1. Certificates come from the in-process CertFactory zoo.

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <deque>
#include <fcntl.h>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include "tests/support/agent_process.hpp"
#include "tests/support/cert_factory.hpp"
#include "tests/support/proc_probe.hpp"
#include "tests/support/raw_connection.hpp"
#include "tests/support/sanitizer.hpp"
#include "tests/support/zoo_agent.hpp"

namespace opsagent::testing {
namespace {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

const std::string kPolicy = R"(
identities:
  - match: {cn: alice}
    principal: alice
    roles: [operator]
roles:
  operator:
    commands: [ping, whoami]
)";

const std::vector<std::string> kFiniteFieldGroups = {"ffdhe2048", "ffdhe3072", "ffdhe4096",
                                                     "ffdhe6144", "ffdhe8192"};
// Every group OpenSSL 3.0 can name in a TLS 1.3 ClientHello.
const std::vector<std::string> kEveryGroup = {"X25519",    "P-256",     "P-384",     "P-521",
                                              "X448",      "ffdhe2048", "ffdhe3072", "ffdhe4096",
                                              "ffdhe6144", "ffdhe8192"};

CertFactory& zoo() { return matrix_zoo(); }

AgentSpec spec_with(const std::string& tls_extra = "",
                    std::map<std::string, std::string> sections = {}) {
  return zoo_spec(kPolicy, tls_extra, std::move(sections));
}

ClientOptions as(const std::string& name, const std::vector<std::string>& chain = {}) {
  return zoo_client(name, chain);
}

ClientOptions alice_with_groups(const std::string& groups) {
  ClientOptions o = as("alice");
  o.groups = groups;
  o.min_version = TLS1_3_VERSION;
  return o;
}

struct Attempt {
  bool handshake_ok = false;
  std::optional<std::string> first_line;
  std::string error;
  std::string group;  ///< negotiated key exchange group
  [[nodiscard]] bool greeted() const {
    return first_line && first_line->rfind("OK opsagent", 0) == 0;
  }
};

// The handshake, then the agent's first line (a refused certificate shows up there in TLS 1.3).
Attempt attempt(const AgentProcess& agent, const ClientOptions& options) {
  TlsClient c(options);
  Attempt a;
  a.error = c.connect("127.0.0.1", agent.port());
  if (!a.error.empty()) return a;
  a.handshake_ok = true;
  a.group = c.group();
  a.first_line = c.read_line(5s);
  if (!a.first_line) a.error = c.last_error();
  return a;
}

// Like AgentProcess::wait_for_audit, but a missing record is a value, not a test failure.
std::optional<json> find_audit(const AgentProcess& agent, const std::string& event,
                               const std::string& field, const json& value,
                               std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    for (const auto& r : agent.audit()) {
      if (r.value("event", "") == event && (field.empty() || r.value(field, json()) == value)) {
        return r;
      }
    }
    if (Clock::now() > deadline) return std::nullopt;
    std::this_thread::sleep_for(20ms);
  }
}

std::size_t count_events(const AgentProcess& agent, const std::string& event) {
  const auto records = agent.audit();
  return static_cast<std::size_t>(std::count_if(records.begin(), records.end(), [&](const json& r) {
    return r.value("event", "") == event;
  }));
}

// The handshake must fail X.509 verification with `code` (audited), and admit no session.
void expect_verify_failure(const AgentProcess& agent, const ClientOptions& options, long code) {
  const std::size_t admitted_before = count_events(agent, "auth_ok");
  const Attempt a = attempt(agent, options);
  EXPECT_FALSE(a.greeted()) << a.first_line.value_or("");
  const auto rec = find_audit(agent, "tls_failure", "verify_code", code, 10s);
  ASSERT_TRUE(rec.has_value()) << "no tls_failure with verify_code " << code << "\n" << agent.log();
  EXPECT_EQ((*rec)["verify_error"], X509_verify_cert_error_string(code)) << rec->dump();
  EXPECT_EQ(count_events(agent, "auth_ok"), admitted_before);
}

// Concatenates PEM files into `out` (written beside it, then renamed: a reload never sees half).
fs::path write_concatenation(const fs::path& out, const std::vector<fs::path>& parts) {
  const fs::path tmp = out.string() + ".tmp";
  {
    std::ofstream o(tmp, std::ios::binary | std::ios::trunc);
    for (const auto& p : parts) o << slurp(p);
  }
  fs::rename(tmp, out);
  return out;
}

// The bytes of a real TLS 1.3 ClientHello offering only `groups`, made with memory BIOs.
std::string client_hello(const std::string& groups) {
  struct CtxFree {
    void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
  };
  struct SslFree {
    void operator()(SSL* s) const { SSL_free(s); }
  };
  std::unique_ptr<SSL_CTX, CtxFree> ctx(SSL_CTX_new(TLS_client_method()));
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_3_VERSION);
  // SSL_CTX_set1_groups_list is a macro with a C cast; call what it expands to.
  EXPECT_EQ(SSL_CTX_ctrl(ctx.get(), SSL_CTRL_SET_GROUPS_LIST, 0, const_cast<char*>(groups.c_str())),
            1);
  std::unique_ptr<SSL, SslFree> ssl(SSL_new(ctx.get()));
  BIO* rbio = BIO_new(BIO_s_mem());
  BIO* wbio = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl.get(), rbio, wbio);  // the SSL owns both now
  SSL_set_connect_state(ssl.get());
  (void)SSL_do_handshake(ssl.get());  // wants to read: the ClientHello is in wbio
  std::string out;
  char buf[4096];
  int n = 0;
  while ((n = BIO_read(wbio, buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
  return out;
}

// ============================================================================================
// I13 Key exchange: only ECDHE groups, explicit suites and signature algorithms (DHEat).

TEST(MatrixI, I13_RefusesEveryFiniteFieldGroupNamedAlone) {
  AgentProcess agent{spec_with()};
  ASSERT_NE(agent.port(), 0);
  for (const auto& group : kFiniteFieldGroups) {
    const Attempt a = attempt(agent, alice_with_groups(group));
    EXPECT_FALSE(a.handshake_ok) << group << " was accepted (negotiated " << a.group << ")";
    EXPECT_FALSE(a.greeted()) << group;
  }
  // Offered after the ECDHE groups, a finite-field group is never chosen either.
  const Attempt mixed = attempt(agent, alice_with_groups("ffdhe8192:ffdhe2048:P-256"));
  EXPECT_TRUE(mixed.greeted()) << mixed.error;
  EXPECT_EQ(mixed.group, "prime256v1");
  EXPECT_TRUE(attempt(agent, as("alice")).greeted());
}

TEST(MatrixI, I13_CompletesHandshakesNamingEachConfiguredGroupAndNoOther) {
  {
    SCOPED_TRACE("default groups: X25519, P-256");
    AgentProcess agent{spec_with()};
    ASSERT_NE(agent.port(), 0);
    const Attempt x25519 = attempt(agent, alice_with_groups("X25519"));
    EXPECT_TRUE(x25519.greeted()) << x25519.error;
    EXPECT_EQ(x25519.group, "X25519");
    const Attempt p256 = attempt(agent, alice_with_groups("P-256"));
    EXPECT_TRUE(p256.greeted()) << p256.error;
    EXPECT_EQ(p256.group, "prime256v1");
    for (const std::string group : {"P-384", "P-521", "X448"}) {
      EXPECT_FALSE(attempt(agent, alice_with_groups(group)).handshake_ok) << group;
    }
    // A client with OpenSSL's defaults gets X25519 (its first key share).
    const Attempt plain = attempt(agent, as("alice"));
    EXPECT_TRUE(plain.greeted()) << plain.error;
    EXPECT_EQ(plain.group, "X25519");
  }
  {
    SCOPED_TRACE("groups: [P-384]");
    AgentProcess agent{spec_with(", groups: [P-384]")};
    ASSERT_NE(agent.port(), 0);
    const Attempt p384 = attempt(agent, alice_with_groups("P-384"));
    EXPECT_TRUE(p384.greeted()) << p384.error;
    EXPECT_EQ(p384.group, "secp384r1");
    EXPECT_FALSE(attempt(agent, alice_with_groups("X25519")).handshake_ok);
    // A default client offers P-384 too: the agent asks it for a P-384 share (HelloRetryRequest).
    const Attempt plain = attempt(agent, as("alice"));
    EXPECT_TRUE(plain.greeted()) << plain.error;
    EXPECT_EQ(plain.group, "secp384r1");
  }
}

// Agent CPU (clock ticks) for up to `count` full handshakes naming `group`, each followed by the
// greeting; stops early after `budget`. Returns ticks per handshake.
double ticks_per_handshake(const AgentProcess& agent, const std::string& group, int count,
                           std::chrono::seconds budget) {
  const ClientOptions options = alice_with_groups(group);
  const auto deadline = Clock::now() + budget;
  const long long before = cpu_ticks(agent.pid());
  int done = 0;
  while (done < count && Clock::now() < deadline) {
    const Attempt a = attempt(agent, options);
    EXPECT_TRUE(a.greeted()) << group << ": " << a.error;
    if (!a.greeted()) break;
    ++done;
  }
  const long long after = cpu_ticks(agent.pid());
  return done == 0 ? 0.0 : static_cast<double>(after - before) / done;
}

TEST(MatrixI, I13_ServerCpuPerHandshakeForEveryGroupAClientCanNameIsNearX25519s) {
  constexpr int kHandshakes = 200;
  constexpr double kFactor = 10.0;
  // Below this the tick clock (10 ms) is too coarse to compare: a floor for the X25519 cost.
  constexpr double kMinTicksPerHandshake = 0.05;
  AgentProcess agent{spec_with(", groups: [X25519, P-256, P-384]")};  // the widest choice
  ASSERT_NE(agent.port(), 0);
  std::vector<std::string> nameable;
  for (const auto& group : kEveryGroup) {
    if (attempt(agent, alice_with_groups(group)).handshake_ok) nameable.push_back(group);
  }
  EXPECT_EQ(nameable, (std::vector<std::string>{"X25519", "P-256", "P-384"}));
  ASSERT_FALSE(nameable.empty());

  const double x25519 = ticks_per_handshake(agent, "X25519", kHandshakes, 60s);
  const double bound = kFactor * std::max(x25519, kMinTicksPerHandshake);
  for (const auto& group : nameable) {
    const double cost = ticks_per_handshake(agent, group, kHandshakes, 60s);
    std::cout << "[ measure  ] " << group << ": " << cost << " ticks per handshake (X25519 "
              << x25519 << ", " << ::sysconf(_SC_CLK_TCK) << " ticks/s)\n";
    EXPECT_LE(cost, bound) << group << " costs the agent " << cost
                           << " ticks per handshake against X25519's " << x25519;
  }
}

TEST(MatrixI, I13_AuthenticatedPingIsAnsweredDuringAHandshakeFloodFromAnotherAddress) {
  constexpr int kPings = 20;
  constexpr std::size_t kOpenFloodConnections = 256;
  // Served during the flood: within 2 s, scaled like every margin under the sanitizers.
  const auto max_ping_latency = scaled(2s);
  AgentProcess agent{
      spec_with(", groups: [X25519, P-256, P-384]", {{"limits", "{max_handshakes: 64}"}})};
  ASSERT_NE(agent.port(), 0);
  TlsClient alice(as("alice"));
  ASSERT_EQ(alice.connect("127.0.0.1", agent.port()), "");
  ASSERT_TRUE(alice.read_line().has_value()) << alice.last_error();

  {  // 127.0.0.2 must be usable as a source address (it is on Linux loopback).
    RawConnection probe(agent.port(), "127.0.0.2");
    if (!probe.connected()) GTEST_SKIP() << "cannot connect from 127.0.0.2";
  }

  // The flood: ClientHellos naming the most expensive group the agent allows, each making the
  // agent do a key exchange and sign, then left incomplete; the oldest are closed as new ones
  // open, so the agent keeps evicting and accepting.
  const std::string hello = client_hello("P-384");
  ASSERT_FALSE(hello.empty());
  std::atomic<bool> stop{false};
  std::atomic<int> sent{0};
  std::thread flood([&] {
    std::deque<std::unique_ptr<RawConnection>> open;
    while (!stop.load()) {
      auto c = std::make_unique<RawConnection>(agent.port(), "127.0.0.2");
      if (c->connected() && c->send(hello)) sent.fetch_add(1);
      open.push_back(std::move(c));
      if (open.size() > kOpenFloodConnections) open.pop_front();
    }
  });

  std::vector<double> latencies;
  for (int i = 0; i < kPings; ++i) {
    std::this_thread::sleep_for(100ms);
    const auto started = Clock::now();
    const auto reply = alice.command("ping", 10s);
    latencies.push_back(std::chrono::duration<double>(Clock::now() - started).count());
    EXPECT_EQ(reply, std::vector<std::string>{"OK pong"}) << "ping " << i;
    EXPECT_LT(latencies.back(), std::chrono::duration<double>(max_ping_latency).count())
        << "ping " << i;
  }
  stop = true;
  flood.join();
  std::cout << "[ measure  ] " << sent.load() << " flood ClientHellos; slowest ping "
            << *std::max_element(latencies.begin(), latencies.end()) << " s\n";
  EXPECT_GE(sent.load(), kPings) << "the flood did not run";
  EXPECT_TRUE(process_alive(agent.pid()));
  EXPECT_EQ(alice.command("ping"), std::vector<std::string>{"OK pong"});
}

TEST(MatrixI, I13_OnlyTheListedSuitesAndSignatureAlgorithmsAreNegotiated) {
  AgentProcess agent{spec_with(", min_version: \"1.2\"")};
  ASSERT_NE(agent.port(), 0);
  {
    TlsClient c(as("alice"));
    ASSERT_EQ(c.connect("127.0.0.1", agent.port()), "");
    EXPECT_EQ(c.version(), "TLSv1.3");
    EXPECT_EQ(c.cipher(), "TLS_AES_256_GCM_SHA384");
  }
  for (const std::string suite : {"TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_GCM_SHA256"}) {
    ClientOptions o = as("alice");
    o.ciphersuites = suite;
    TlsClient c(o);
    EXPECT_EQ(c.connect("127.0.0.1", agent.port()), "") << suite;
    EXPECT_EQ(c.cipher(), suite);
  }
  for (const std::string suite : {"TLS_AES_128_CCM_SHA256", "TLS_AES_128_CCM_8_SHA256"}) {
    ClientOptions o = as("alice");
    o.min_version = TLS1_3_VERSION;
    o.ciphersuites = suite;
    EXPECT_FALSE(attempt(agent, o).handshake_ok) << suite;
  }
  // SHA-1 signatures only, in TLS 1.3 and in TLS 1.2 (the client at security level 0 so that it
  // really offers them): no signature algorithm in common.
  for (const int version : {TLS1_3_VERSION, TLS1_2_VERSION}) {
    ClientOptions o = as("alice");
    o.min_version = version;
    o.max_version = version;
    o.security_level = 0;
    o.sigalgs = "ECDSA+SHA1:RSA+SHA1";
    EXPECT_FALSE(attempt(agent, o).handshake_ok) << "version " << version;
  }
  ClientOptions ecdsa = as("alice");
  ecdsa.sigalgs = "ecdsa_secp256r1_sha256";
  EXPECT_TRUE(attempt(agent, ecdsa).greeted());
}

TEST(MatrixI, I13_TlsGroupsNamingAFiniteFieldGroupIsRefusedWithFileLineColumn) {
  const fs::path dir = zoo().dir() / "i13-config";
  fs::create_directories(dir);
  const fs::path policy = dir / "policy.yaml";
  std::ofstream(policy) << kPolicy;
  ::chmod(policy.c_str(), 0600);
  const fs::path config = dir / "agent.yaml";
  const auto write_config = [&](const std::string& groups) {
    std::ofstream(config, std::ios::trunc)
        << "listen: [\"127.0.0.1:0\"]\n"
        << "tls:\n"
        << "  certificate: " << zoo().cert("server").string() << "\n"
        << "  private_key: " << zoo().key("server").string() << "\n"
        << "  client_ca: " << zoo().cert("root").string() << "\n"
        << "  groups: " << groups << "\n"
        << "audit: {path: " << (dir / "audit.jsonl").string() << "}\n"
        << "policy: " << policy.string() << "\n";
  };
  write_config("[ffdhe2048]");
  const RunResult r = run_agent_binary({"--config", config.string(), "--check-config"});
  EXPECT_EQ(r.exit_code, 78) << r.output;
  EXPECT_NE(r.output.find(config.string() + ":6:12: tls.groups[0]: finite-field group ffdhe2048"),
            std::string::npos)
      << r.output;

  write_config("[X25519, ffdhe8192]");
  const RunResult second = run_agent_binary({"--config", config.string(), "--check-config"});
  EXPECT_EQ(second.exit_code, 78) << second.output;
  EXPECT_NE(second.output.find(config.string() + ":6:20: tls.groups[1]: finite-field group"),
            std::string::npos)
      << second.output;

  write_config("[X25519, P-999]");
  const RunResult unknown = run_agent_binary({"--config", config.string(), "--check-config"});
  EXPECT_EQ(unknown.exit_code, 78) << unknown.output;
  EXPECT_NE(unknown.output.find(config.string() + ":6:20: tls.groups[1]: unknown"),
            std::string::npos)
      << unknown.output;

  write_config("[P-384, X25519]");
  const RunResult good = run_agent_binary({"--config", config.string(), "--check-config"});
  EXPECT_EQ(good.exit_code, 0) << good.output;
}

// opsctl, run through the shell with alice's zoo files and a HOME without a config file.
struct OpsctlResult {
  int exit_code = -1;
  std::string output;  ///< stdout + stderr
};

OpsctlResult run_opsctl(std::uint16_t port, const std::string& command,
                        const std::string& handshake_timeout = "10s") {
  const fs::path home = zoo().dir() / "i13-home";
  fs::create_directories(home);
  const std::string line =
      "env -u XDG_CONFIG_HOME -u OPSCTL_CONFIG -u OPSCTL_INVENTORY HOME=" + home.string() +
      " OPSCTL_CERT=" + zoo().cert("alice").string() +
      " OPSCTL_KEY=" + zoo().key("alice").string() +
      " OPSCTL_CA=" + zoo().cert("server-ca").string() + " " + OPSCTL_BINARY +
      " --handshake-timeout " + handshake_timeout + " 127.0.0.1:" + std::to_string(port) + " " +
      command + " 2>&1";
  OpsctlResult r;
  FILE* out = ::popen(line.c_str(), "r");
  if (out == nullptr) return r;
  char buf[4096];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, out)) > 0) r.output.append(buf, n);
  const int status = ::pclose(out);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// `openssl s_server -www` with the agent's certificate, offering only `groups`: it completes a
// handshake, then waits for an HTTP request (so opsctl never gets a greeting). Stopped on
// destruction.
class OpensslServer {
 public:
  explicit OpensslServer(const std::string& groups) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return;
    std::vector<std::string> args = {"openssl", "s_server",
                                     "-www",    "-tls1_3",
                                     "-accept", "127.0.0.1:0",
                                     "-cert",   zoo().cert("server").string(),
                                     "-key",    zoo().key("server").string(),
                                     "-groups", groups};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    if (::posix_spawnp(&pid_, "openssl", &fa, nullptr, argv.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&fa);
    ::close(fds[1]);
    // "ACCEPT 127.0.0.1:PORT" once it listens.
    std::string& text = output_;
    const auto deadline = Clock::now() + 10s;
    while (pid_ > 0 && port_ == 0 && Clock::now() < deadline) {
      pollfd p{fds[0], POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char buf[512];
      const ssize_t got = ::read(fds[0], buf, sizeof buf);
      if (got <= 0) break;
      text.append(buf, static_cast<std::size_t>(got));
      const auto at = text.find("ACCEPT 127.0.0.1:");
      const auto eol = at == std::string::npos ? at : text.find('\n', at);
      if (eol != std::string::npos) {
        port_ = static_cast<std::uint16_t>(std::stoi(text.substr(at + 17, eol - at - 17)));
      }
    }
    ::close(fds[0]);
  }
  ~OpensslServer() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
  }
  OpensslServer(const OpensslServer&) = delete;
  OpensslServer& operator=(const OpensslServer&) = delete;
  [[nodiscard]] std::uint16_t port() const { return port_; }
  [[nodiscard]] const std::string& output() const { return output_; }

 private:
  std::string output_;
  pid_t pid_ = -1;
  std::uint16_t port_ = 0;
};

TEST(MatrixI, I13_OpsctlOffersEveryAllowedEcdheGroupAndNoFiniteFieldGroup) {
  {
    AgentProcess agent{spec_with(", groups: [P-384]")};
    ASSERT_NE(agent.port(), 0);
    const OpsctlResult r = run_opsctl(agent.port(), "ping");
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("pong"), std::string::npos) << r.output;
  }
  // Against a server that is not an agent: with X25519 the handshake completes and opsctl waits
  // for a greeting (exit 69, timeout); with finite-field groups only, the key exchange is refused
  // (exit 67, TLS failure).
  {
    OpensslServer server("X25519");
    ASSERT_NE(server.port(), 0) << "openssl s_server did not start:\n" << server.output();
    const OpsctlResult r = run_opsctl(server.port(), "ping", "1s");
    EXPECT_EQ(r.exit_code, 69) << r.output;
  }
  OpensslServer server("ffdhe2048:ffdhe8192");
  ASSERT_NE(server.port(), 0) << "openssl s_server did not start:\n" << server.output();
  const OpsctlResult r = run_opsctl(server.port(), "ping", "5s");
  EXPECT_EQ(r.exit_code, 67) << r.output;
  EXPECT_NE(r.output.find("tls_error: TLS handshake failed"), std::string::npos) << r.output;
}

// ============================================================================================
// TLS 1.3 session tickets: none are sent when `session_tickets: false` (resumption is on by
// default; tests/integration/tls_resumption_test.cpp).

TEST(TlsTickets, ServerSendsNoneWhenTicketsAreOff) {
  AgentProcess agent{spec_with(", session_tickets: false")};
  ASSERT_NE(agent.port(), 0);
  TlsClient c(as("alice"));
  ASSERT_EQ(c.connect("127.0.0.1", agent.port()), "");
  ASSERT_TRUE(c.read_line().has_value()) << c.last_error();  // tickets would arrive by now
  EXPECT_EQ(c.command("ping"), std::vector<std::string>{"OK pong"});
  EXPECT_EQ(c.command("whoami").back().rfind("OK", 0), 0U);
  EXPECT_EQ(c.sessions_received(), 0);
  EXPECT_EQ(SSL_session_reused(c.stream().native_handle()), 0);
}

// ============================================================================================
// I3 Revocation of an intermediate CA: every certificate of the chain is checked.

// The agent's CRL file for the chain root -> inter -> alice-via-inter.
struct ChainCrls {
  fs::path file;
  void write(bool inter_revoked, bool with_inter_crl) {
    std::vector<fs::path> parts;
    CrlSpec root_spec;
    if (inter_revoked) root_spec.revoked.push_back("inter");
    parts.push_back(zoo().write_crl("i3-root", "root", root_spec));
    if (with_inter_crl) parts.push_back(zoo().write_crl("i3-inter", "inter", CrlSpec{}));
    file = write_concatenation(zoo().dir() / "i3-crls.pem", parts);
  }
};

std::string crl_option(const fs::path& crl) { return ", crl: " + crl.string(); }

ClientOptions via_inter() { return as("alice-via-inter", {"inter"}); }

TEST(MatrixI, I3_RefusesALeafWhoseIntermediateIsRevokedByTheRoot) {
  ChainCrls crls;
  crls.write(/*inter_revoked=*/true, /*with_inter_crl=*/true);
  AgentProcess agent{spec_with(crl_option(crls.file))};
  ASSERT_NE(agent.port(), 0);
  expect_verify_failure(agent, via_inter(), X509_V_ERR_CERT_REVOKED);  // 23, at depth 1
  EXPECT_TRUE(attempt(agent, as("alice")).greeted()) << "a leaf directly under the root";
}

TEST(MatrixI, I3_AcceptsTheChainWhenEveryCaHasACrlRevokingNothing) {
  ChainCrls crls;  // one file, two CRLs: the root's and the intermediate's
  crls.write(/*inter_revoked=*/false, /*with_inter_crl=*/true);
  AgentProcess agent{spec_with(crl_option(crls.file))};
  ASSERT_NE(agent.port(), 0);
  const Attempt a = attempt(agent, via_inter());
  EXPECT_TRUE(a.greeted()) << a.error << "\n" << agent.log();
  EXPECT_TRUE(attempt(agent, as("alice")).greeted());
}

TEST(MatrixI, I3_FailsClosedWhenTheIntermediateIssuedNoCrl) {
  ChainCrls crls;  // only the root's CRL: nothing says whether alice-via-inter is revoked
  crls.write(/*inter_revoked=*/false, /*with_inter_crl=*/false);
  AgentProcess agent{spec_with(crl_option(crls.file))};
  ASSERT_NE(agent.port(), 0);
  expect_verify_failure(agent, via_inter(), X509_V_ERR_UNABLE_TO_GET_CRL);  // 3, at depth 0
  EXPECT_TRUE(attempt(agent, as("alice")).greeted()) << "the root's own leaves are covered";
}

TEST(MatrixI, I3_FailsClosedWhenNoCrlCoversTheIntermediate) {
  // Only the intermediate's CRL: the leaf is covered, but nothing says whether the
  // intermediate itself is revoked. Checking the leaf alone would let it in.
  const fs::path crl = write_concatenation(zoo().dir() / "i3-inter-only.pem",
                                           {zoo().write_crl("i3-inter", "inter", CrlSpec{})});
  AgentProcess agent{spec_with(crl_option(crl))};
  ASSERT_NE(agent.port(), 0);
  expect_verify_failure(agent, via_inter(), X509_V_ERR_UNABLE_TO_GET_CRL);  // 3, at depth 1
}

TEST(MatrixI, I3_EndsAnOpenSessionWhoseIntermediateIsRevokedOnReload) {
  ChainCrls crls;
  crls.write(/*inter_revoked=*/false, /*with_inter_crl=*/true);
  AgentProcess agent{spec_with(crl_option(crls.file))};
  ASSERT_NE(agent.port(), 0);
  TlsClient open_via_inter(via_inter());
  ASSERT_EQ(open_via_inter.connect("127.0.0.1", agent.port()), "");
  ASSERT_TRUE(open_via_inter.read_line().has_value()) << open_via_inter.last_error();
  TlsClient open_alice(as("alice"));
  ASSERT_EQ(open_alice.connect("127.0.0.1", agent.port()), "");
  ASSERT_TRUE(open_alice.read_line().has_value()) << open_alice.last_error();

  crls.write(/*inter_revoked=*/true, /*with_inter_crl=*/true);
  ASSERT_TRUE(agent.signal(SIGHUP));
  ASSERT_TRUE(find_audit(agent, "tls_reload", "", nullptr, 10s).has_value()) << agent.log();

  const auto revoked = find_audit(agent, "session_revoked", "", nullptr, 10s);
  ASSERT_TRUE(revoked.has_value()) << agent.log();
  EXPECT_EQ((*revoked)["verify_code"], X509_V_ERR_CERT_REVOKED);
  const auto bye = open_via_inter.read_line();
  ASSERT_TRUE(bye.has_value()) << open_via_inter.last_error();
  EXPECT_EQ(bye->rfind("ERR denied certificate no longer valid", 0), 0U) << *bye;
  EXPECT_TRUE(open_via_inter.wait_closed(5s));
  EXPECT_EQ(open_alice.command("ping"), std::vector<std::string>{"OK pong"});
  expect_verify_failure(agent, via_inter(), X509_V_ERR_CERT_REVOKED);
}

}  // namespace
}  // namespace opsagent::testing

// Identity rules that require the issuing CA (policy `match.issuer`, `match.ca_fingerprint`):
// two CAs trusted in one client_ca bundle each issue a certificate with CN "alice"; only the one
// the rule names becomes the principal, against the real agent on 127.0.0.1.

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <string>
#include <unistd.h>

#include <gtest/gtest.h>

#include "tests/support/agent_process.hpp"
#include "tests/support/cert_factory.hpp"
#include "tests/support/zoo_agent.hpp"

namespace opsagent::testing {
namespace {
namespace fs = std::filesystem;

struct TwoCas {
  TwoCas() : pki(temp_dir(), /*remove_on_destruction=*/true) {
    pki.issue("ca-a", ca_spec("Team A CA"), "");
    pki.issue("ca-b", ca_spec("Team B CA"), "");
    pki.issue("ca-c", ca_spec("Team C CA"), "");
    pki.issue("alice-a", client_spec("alice"), "ca-a");
    pki.issue("alice-b", client_spec("alice"), "ca-b");
    pki.issue("alice-c", client_spec("alice"), "ca-c");
    bundle = pki.write_bundle("client-cas", {"ca-a", "ca-b", "ca-c"});
  }
  static fs::path temp_dir() {
    std::string tmpl = (fs::temp_directory_path() / "opsagent-issuer-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    return tmpl;
  }
  [[nodiscard]] ClientOptions client(const std::string& name) const {
    ClientOptions o = zoo_client("");
    o.cert = pki.cert(name);
    o.key = pki.key(name);
    return o;
  }
  CertFactory pki;
  fs::path bundle;
};

std::string whoami_line(TlsClient& client, const std::string& prefix) {
  const auto reply = client.command("whoami");
  std::string all;
  for (const auto& line : reply) {
    if (line.rfind("| " + prefix, 0) == 0) return line.substr(2 + prefix.size());
    all += line + "\n";
  }
  return "<no " + prefix + "line in: " + all + ">";
}

TEST(IdentityIssuer, OnlyTheNamedCaCanMintThePrincipal) {
  const TwoCas cas;
  AgentSpec spec;
  spec.sections["tls"] = "{certificate: " + matrix_zoo().cert("server").string() +
                         ", private_key: " + matrix_zoo().key("server").string() +
                         ", client_ca: " + cas.bundle.string() + "}";
  spec.policy_yaml = R"(
identities:
  - match: {cn: alice, ca_fingerprint: ")" +
                     cas.pki.fingerprint_sha256("ca-a") + R"("}
    principal: alice
    roles: [operator]
  - match: {cn: alice, issuer: "CN=Team B CA,O=opsagent tests"}
    principal: alice-from-b
    roles: [viewer]
roles:
  operator:
    commands: [ping, whoami]
  viewer:
    commands: [whoami]
)";
  AgentProcess agent(spec);
  ASSERT_NE(agent.port(), 0) << agent.log();

  TlsClient from_a(cas.client("alice-a"));
  ASSERT_EQ(from_a.connect("127.0.0.1", agent.port()), "");
  ASSERT_TRUE(from_a.read_line().has_value());
  EXPECT_EQ(whoami_line(from_a, "principal: "), "alice");
  EXPECT_EQ(whoami_line(from_a, "identity rule: "), "identities[0]");

  TlsClient from_b(cas.client("alice-b"));
  ASSERT_EQ(from_b.connect("127.0.0.1", agent.port()), "");
  ASSERT_TRUE(from_b.read_line().has_value());
  EXPECT_EQ(whoami_line(from_b, "principal: "), "alice-from-b");

  // Trusted by the TLS layer (its CA is in the bundle), but no rule accepts its issuer.
  TlsClient from_c(cas.client("alice-c"));
  ASSERT_EQ(from_c.connect("127.0.0.1", agent.port()), "");
  const auto refusal = from_c.read_line();
  ASSERT_TRUE(refusal.has_value());
  EXPECT_EQ(refusal->rfind("ERR", 0), 0u) << *refusal;
  EXPECT_TRUE(from_c.wait_closed());
  // The audit names the CA chain, so an auditor sees which CA the refused certificate came from.
  const auto denied = agent.wait_for_audit("auth_denied");
  EXPECT_EQ(denied["identity"]["ca_fingerprints_sha256"],
            nlohmann::json::array({cas.pki.fingerprint_sha256("ca-c")}))
      << denied.dump();
}

}  // namespace
}  // namespace opsagent::testing

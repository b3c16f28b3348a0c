#include "agent/app/explain_main.hpp"

#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "agent/app/agent_flags.hpp"
#include "agent/config/agent_config.hpp"
#include "agent/config/config_error.hpp"
#include "agent/policy/authorizer.hpp"
#include "agent/policy/explain.hpp"
#include "agent/protocol/command_parser.hpp"
#include "agent/server/tls_setup.hpp"
#include "agent/tls/chain_check.hpp"
#include "agent/tls/peer_certificate.hpp"
#include "agent/tls/tls_context.hpp"

namespace opsagent::app {
namespace {

constexpr int kExitConfig = 78;  // EX_CONFIG
constexpr const char* kExplainUsage =
    "usage: opsagent explain --config FILE (--principal NAME | --cert FILE) [--] COMMAND...\n\n"
    "  Prints what the agent would decide for this principal and command line, and the rule\n"
    "  of the policy (file:line:column) that decides it. Runs nothing.\n"
    "  --principal NAME  as the principal NAME of the policy's identities\n"
    "  --cert FILE       as the holder of this client certificate (PEM, leaf first, then any\n"
    "                    intermediates), verified and mapped as a live connection would be\n"
    "  COMMAND...        one protocol line ('run disk-usage /') or its words\n"
    "Exit: 0 allow, 1 deny, 2 unknown command or usage, 64 bad flags, 78 configuration error.\n";

struct Flags {
  std::string config;
  std::string principal;
  std::string cert;
  std::vector<std::string> words;
};

int explain_usage_error(const std::string& problem) {
  (void)std::fprintf(stderr, "opsagent explain: %s\n%s", problem.c_str(), kExplainUsage);
  return kExitUsage;
}

struct X509StackFree {
  void operator()(STACK_OF(X509) * s) const { sk_X509_pop_free(s, X509_free); }
};

// Every certificate of a PEM file, leaf first. Throws ConfigError naming the file.
std::unique_ptr<STACK_OF(X509), X509StackFree> read_certificates(const std::string& file) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_file(file.c_str(), "r"), &BIO_free);
  if (!bio) throw config::ConfigError(file + ": cannot open " + tls::drain_openssl_errors());
  std::unique_ptr<STACK_OF(X509), X509StackFree> certs(sk_X509_new_null());
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    sk_X509_push(certs.get(), cert);
  }
  tls::drain_openssl_errors();  // the end of the file reads as an error
  if (sk_X509_num(certs.get()) == 0) {
    throw config::ConfigError(file + ": no PEM certificate in this file");
  }
  return certs;
}

void print(const std::vector<std::string>& lines) {
  for (const auto& l : lines) std::printf("%s\n", l.c_str());
}

// The principal a connection with this certificate would be admitted as; nullopt (and the
// reason printed) when the handshake or the identity mapping would refuse it.
std::optional<policy::Principal> principal_from_certificate(const config::AgentConfig& cfg,
                                                            const policy::Policy& policy,
                                                            const std::string& file) {
  auto certs = read_certificates(file);
  X509* leaf = sk_X509_value(certs.get(), 0);
  std::unique_ptr<STACK_OF(X509), X509StackFree> chain(sk_X509_new_null());
  for (int i = 1; i < sk_X509_num(certs.get()); ++i) {
    X509* c = sk_X509_value(certs.get(), i);
    X509_up_ref(c);
    sk_X509_push(chain.get(), c);
  }
  auto ctx = server::make_agent_tls_context(cfg.tls);
  std::vector<std::string> ca_fingerprints;
  if (const auto failure =
          tls::verify_chain(leaf, chain.get(), ctx.native_handle(), &ca_fingerprints)) {
    print({"certificate: " + file, "decision: deny (the TLS handshake would fail: " +
                                       failure->text + "; the connection is refused)"});
    return std::nullopt;
  }
  auto identity = tls::identity_from_certificate(leaf);
  if (!identity) {
    print({"certificate: " + file,
           "decision: deny (the connection is refused: " + identity.error().message + ")"});
    return std::nullopt;
  }
  identity.value().ca_fingerprints_sha256 = std::move(ca_fingerprints);  // as a handshake would
  auto principal = policy::map_identity(policy, identity.value());
  if (!principal) {
    print({"certificate: " + file + " (" + identity->subject + ")",
           "decision: deny (no rule under identities: maps this certificate; the connection "
           "is refused with ERR denied)"});
    return std::nullopt;
  }
  std::printf("certificate: %s (%s)\n", file.c_str(), identity->subject.c_str());
  return principal;
}

std::optional<policy::Principal> principal_by_name(const policy::Policy& policy,
                                                   const std::string& name) {
  for (const auto& rule : policy.identities) {
    if (rule.principal == name) return policy::Principal{rule.principal, rule.roles, rule.rule};
  }
  print({"principal: " + name,
         "decision: deny (no rule under identities: names principal '" + name + "')"});
  return std::nullopt;
}

}  // namespace

int explain_main(int argc, char** argv) {
  Flags flags;
  int i = 1;
  for (; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--") {
      ++i;
      break;
    }
    if (arg == "--config" && has_value) {
      flags.config = argv[++i];
    } else if (arg == "--principal" && has_value) {
      flags.principal = argv[++i];
    } else if (arg == "--cert" && has_value) {
      flags.cert = argv[++i];
    } else if (arg == "--help" || arg == "-h") {
      (void)std::fputs(kExplainUsage, stdout);
      return 0;
    } else if (arg.starts_with("-")) {
      return explain_usage_error("unknown argument '" + arg + "'");
    } else {
      break;
    }
  }
  for (; i < argc; ++i) flags.words.emplace_back(argv[i]);
  if (flags.config.empty()) return explain_usage_error("--config FILE is required");
  if (flags.principal.empty() == flags.cert.empty()) {
    return explain_usage_error("give exactly one of --principal NAME and --cert FILE");
  }
  if (flags.words.empty()) return explain_usage_error("no command line to explain");
  // One argument is one protocol line, quoting and all, as a client would type it.
  if (flags.words.size() == 1) {
    auto parsed = protocol::parse_command(flags.words.front());
    if (!parsed) {
      return explain_usage_error("cannot parse the command line: " + parsed.error().message);
    }
    flags.words = {parsed->verb};
    flags.words.insert(flags.words.end(), parsed->args.begin(), parsed->args.end());
  }

  try {
    const config::AgentConfig cfg = config::load_agent_config(flags.config);
    const auto policy = policy::load_policy(cfg.policy_path);
    const auto principal = flags.cert.empty()
                               ? principal_by_name(*policy, flags.principal)
                               : principal_from_certificate(cfg, *policy, flags.cert);
    if (!principal) return kExplainDeny;
    const policy::Explanation e = policy::explain(*policy, *principal, flags.words);
    print(e.lines);
    if (e.verdict == policy::Explanation::Verdict::allow) return kExplainAllow;
    if (e.verdict == policy::Explanation::Verdict::deny) return kExplainDeny;
    return kExplainReject;
  } catch (const config::ConfigError& e) {
    (void)std::fprintf(stderr, "opsagent explain: configuration error: %s\n", e.what());
    return kExitConfig;
  } catch (const std::exception& e) {  // a TLS file OpenSSL cannot use
    (void)std::fprintf(stderr, "opsagent explain: %s\n", e.what());
    return kExitConfig;
  }
}

}  // namespace opsagent::app

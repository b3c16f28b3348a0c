#pragma once
// An agent and clients on the certificate zoo (matrix_zoo()) instead of the dev PKI: the agent's
// tls section and a client presenting one of the zoo's certificates.

#include <map>
#include <string>
#include <vector>

#include "tests/support/agent_process.hpp"
#include "tests/support/cert_factory.hpp"
#include "tests/support/tls_client.hpp"

namespace opsagent::testing {

/// The agent's `tls` section (flow-style YAML) with the zoo's server certificate and key and
/// `root` as client CA, followed by `extra` (", crl: /path", ...).
std::string zoo_tls_section(const std::string& extra = "");

/// An agent with `policy`, zoo_tls_section(`tls_extra`) and the other agent.yaml `sections`.
AgentSpec zoo_spec(const std::string& policy, const std::string& tls_extra = "",
                   std::map<std::string, std::string> sections = {});

/// A client trusting the zoo's server CA and presenting certificate `name` ("" = none) with the
/// zoo certificates `chain` after it.
ClientOptions zoo_client(const std::string& name, const std::vector<std::string>& chain = {});

}  // namespace opsagent::testing

#pragma once
// An agent and clients on the certificate zoo (matrix_zoo()) instead of the dev PKI: the agent's
// tls section and a client presenting one of the zoo's certificates.

#include <string>
#include <vector>

#include "tests/support/cert_factory.hpp"
#include "tests/support/tls_client.hpp"

namespace opsagent::testing {

/// The agent's `tls` section (flow-style YAML) with the zoo's server certificate and key and
/// `root` as client CA, followed by `extra` (", crl: /path", ...).
std::string zoo_tls_section(const std::string& extra = "");

/// A client trusting the zoo's server CA and presenting certificate `name` ("" = none) with the
/// zoo certificates `chain` after it.
ClientOptions zoo_client(const std::string& name, const std::vector<std::string>& chain = {});

}  // namespace opsagent::testing

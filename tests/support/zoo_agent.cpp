#include "tests/support/zoo_agent.hpp"

#include <utility>

namespace opsagent::testing {

std::string zoo_tls_section(const std::string& extra) {
  CertFactory& zoo = matrix_zoo();
  return "{certificate: " + zoo.cert("server").string() +
         ", private_key: " + zoo.key("server").string() +
         ", client_ca: " + zoo.cert("root").string() + extra + "}";
}

AgentSpec zoo_spec(const std::string& policy, const std::string& tls_extra,
                   std::map<std::string, std::string> sections) {
  sections["tls"] = zoo_tls_section(tls_extra);
  AgentSpec spec;
  spec.policy_yaml = policy;
  spec.sections = std::move(sections);
  return spec;
}

ClientOptions zoo_client(const std::string& name, const std::vector<std::string>& chain) {
  CertFactory& zoo = matrix_zoo();
  ClientOptions o;
  o.ca = zoo.cert("server-ca");
  if (!name.empty()) {
    o.cert = zoo.cert(name);
    o.key = zoo.key(name);
  }
  for (const auto& c : chain) o.extra_chain.push_back(zoo.cert(c));
  return o;
}

}  // namespace opsagent::testing

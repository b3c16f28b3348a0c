#pragma once
// Certificates for integration tests, generated once per test binary with the project's own
// scripts/gen-dev-certs.sh (the same script operators use), into a temporary directory.

#include <filesystem>
#include <string>

namespace opsagent::testing {

struct TestPki {
  std::filesystem::path dir;        ///< the trusted CA and its leaves
  std::filesystem::path rogue_dir;  ///< another CA with leaves of the same names

  [[nodiscard]] std::filesystem::path ca() const { return dir / "ca.crt"; }
  [[nodiscard]] std::filesystem::path cert(const std::string& name) const {
    return dir / (name + ".crt");
  }
  [[nodiscard]] std::filesystem::path key(const std::string& name) const {
    return dir / (name + ".key");
  }
  [[nodiscard]] std::filesystem::path rogue_cert(const std::string& name) const {
    return rogue_dir / (name + ".crt");
  }
  [[nodiscard]] std::filesystem::path rogue_key(const std::string& name) const {
    return rogue_dir / (name + ".key");
  }

  /// The process-wide instance; generated on first use (aborts the test run if that fails).
  static const TestPki& get();
};

/// Runs `command` through /bin/sh (test code only), returns its exit status and stdout.
int run_shell(const std::string& command, std::string* output = nullptr);

}  // namespace opsagent::testing

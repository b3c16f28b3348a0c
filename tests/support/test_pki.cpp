#include "tests/support/test_pki.hpp"

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

namespace opsagent::testing {

int run_shell(const std::string& command, std::string* output) {
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return -1;
  std::array<char, 4096> buf{};
  std::size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) {
    if (output != nullptr) output->append(buf.data(), n);
  }
  const int status = ::pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

const TestPki& TestPki::get() {
  static const TestPki pki = [] {
    TestPki p;
    char tmpl[] = "/tmp/opsagent-pki-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
    const std::filesystem::path base = tmpl;
    p.dir = base / "trusted";
    p.rogue_dir = base / "rogue";
    const std::string script = std::string(OPSAGENT_SOURCE_DIR) + "/scripts/gen-dev-certs.sh";
    std::string out;
    if (run_shell(script + " " + p.dir.string() + " 2>&1", &out) != 0 ||
        run_shell(script + " --ca-name 'opsagent rogue CA' " + p.rogue_dir.string() + " 2>&1", &out) != 0) {
      std::fprintf(stderr, "certificate generation failed:\n%s\n", out.c_str());
      std::abort();
    }
    return p;
  }();
  return pki;
}

}  // namespace opsagent::testing

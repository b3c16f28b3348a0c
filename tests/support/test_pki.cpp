#include "tests/support/test_pki.hpp"

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <stdexcept>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

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
    // Generated once per build tree and reused by every test process (the script is a no-op
    // when valid certificates exist); an exclusive lock keeps parallel test runs from racing.
    TestPki p;
    const std::filesystem::path base = std::filesystem::path(OPSAGENT_TEST_PKI_DIR);
    std::filesystem::create_directories(base);
    p.dir = base / "trusted";
    p.rogue_dir = base / "rogue";
    const int lock = ::open((base / ".lock").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0600);
    if (lock < 0 || ::flock(lock, LOCK_EX) != 0)
      throw std::runtime_error("cannot lock " + base.string());
    const std::string script = std::string(OPSAGENT_SOURCE_DIR) + "/scripts/gen-dev-certs.sh";
    std::string out;
    if (run_shell(script + " " + p.dir.string() + " 2>&1", &out) != 0 ||
        run_shell(script + " --ca-name 'opsagent rogue CA' " + p.rogue_dir.string() + " 2>&1",
                  &out) != 0) {
      std::fprintf(stderr, "certificate generation failed:\n%s\n", out.c_str());
      std::abort();
    }
    ::close(lock);  // releases the lock
    return p;
  }();
  return pki;
}

}  // namespace opsagent::testing

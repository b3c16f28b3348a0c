#pragma once
// opsagent's command line: --config FILE [--check-config], check --config FILE, --version,
// --help. (`opsagent explain ...` has its own flags: explain_main.hpp.)

#include <cstdio>
#include <string>
#include <variant>

namespace opsagent::app {

constexpr int kExitUsage = 64;  // EX_USAGE
constexpr const char* kUsage =
    "usage: opsagent --config FILE [--check-config]\n"
    "       opsagent check --config FILE\n"
    "       opsagent explain --config FILE (--principal NAME | --cert FILE) COMMAND...\n"
    "       opsagent --version\n\n"
    "  --config FILE    agent configuration (YAML); see docs/configuration.md\n"
    "  --check-config   validate the configuration, policy and TLS files, then exit\n"
    "  check            the same as --check-config\n"
    "  explain          what the policy decides for a principal and a command line, and\n"
    "                   which rule decides it; runs nothing (opsagent explain --help)\n"
    "Runs in the foreground and logs to stderr; the audit trail goes to audit.path.\n";

inline int usage_error(const std::string& problem) {
  (void)std::fprintf(stderr, "opsagent: %s\n%s", problem.c_str(), kUsage);
  return kExitUsage;
}

// The config file, or an exit status when the flags say to stop (help, version, bad usage).
inline std::variant<std::string, int> parse_args(int argc, char** argv, bool& check_only) {
  std::string config;
  int first = 1;
  if (argc > 1 && std::string(argv[1]) == "check") {  // the name users look for
    check_only = true;
    first = 2;
  }
  for (int i = first; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--config" && i + 1 < argc) {
      config = argv[++i];
    } else if (arg.starts_with("--config=")) {
      config = arg.substr(9);
    } else if (arg == "--check-config") {
      check_only = true;
    } else if (arg == "--version") {
      std::printf("opsagent %s\n", OPSAGENT_VERSION);
      return 0;
    } else if (arg == "--help" || arg == "-h") {
      (void)std::fputs(kUsage, stdout);
      return 0;
    } else {
      return usage_error("unknown argument '" + arg + "'");
    }
  }
  if (config.empty()) return usage_error("--config FILE is required");
  return config;
}

}  // namespace opsagent::app

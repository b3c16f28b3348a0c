#include "agent/app/audit_main.hpp"

#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>
#include <vector>

#include "agent/audit/chain_key.hpp"
#include "agent/audit/chain_verifier.hpp"

namespace opsagent::app {
namespace {

int usage() {
  (void)std::fputs(
      "usage: opsagent audit verify [--key-file FILE] AUDIT_FILE...\n"
      "  Checks the audit hash chain across the files, oldest first (audit.jsonl.2 audit.jsonl.1\n"
      "  audit.jsonl). Exit 0 intact, 1 tampered or broken, 2 only a torn last line (a crash),\n"
      "  64 usage, 66 a file cannot be read.\n",
      stderr);
  return kVerifyUsage;
}

}  // namespace

int audit_main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) != "verify") return usage();
  std::filesystem::path key_file;
  std::vector<std::filesystem::path> files;
  bool options_done = false;
  for (int i = 2; i < argc; ++i) {
    const std::string arg = argv[i];
    if (!options_done && arg == "--") {
      options_done = true;
    } else if (!options_done && arg == "--key-file") {
      if (i + 1 >= argc) return usage();
      key_file = argv[++i];
    } else if (!options_done && arg.rfind("--key-file=", 0) == 0) {
      key_file = arg.substr(11);
    } else if (!options_done && (arg == "-h" || arg == "--help")) {
      usage();
      return kVerifyIntact;
    } else if (!options_done && arg.size() > 1 && arg[0] == '-') {
      (void)std::fprintf(stderr, "opsagent audit verify: unknown option %s\n", arg.c_str());
      return usage();
    } else {
      files.emplace_back(arg);
    }
  }
  if (files.empty()) return usage();
  std::string key;
  if (!key_file.empty()) {
    auto read = audit::read_chain_key_file(key_file, false);
    if (!read) {
      (void)std::fprintf(stderr, "opsagent audit verify: %s\n", read.error().message.c_str());
      return kVerifyNoInput;
    }
    key = std::move(read.value());
  }
  try {
    const auto report = audit::verify_chain_files(files, key);
    if (!report) {
      (void)std::fprintf(stderr, "opsagent audit verify: %s\n", report.error().message.c_str());
      return kVerifyNoInput;
    }
    std::printf("%s\n", audit::format_report(report.value()).c_str());
    switch (report.value().verdict) {
      case audit::ChainVerdict::intact:
        return kVerifyIntact;
      case audit::ChainVerdict::torn_tail:
        return kVerifyTornTail;
      case audit::ChainVerdict::broken:
        return kVerifyBroken;
    }
  } catch (const std::exception& e) {
    (void)std::fprintf(stderr, "opsagent audit verify: %s\n", e.what());
  }
  return kVerifyBroken;
}

}  // namespace opsagent::app

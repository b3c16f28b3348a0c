#pragma once
// `opsagent audit verify [--key-file F] FILE...`: flags, read the key, audit::verify_chain_files,
// print one line. The checks are in agent/audit/chain_verifier.hpp.

namespace opsagent::app {

/// Exit codes of `opsagent audit verify` (docs/audit.md#verifying-the-chain).
constexpr int kVerifyIntact = 0;
constexpr int kVerifyBroken = 1;    ///< tampered with, or the files are not one chain
constexpr int kVerifyTornTail = 2;  ///< intact but for a torn last line (a crash mid-write)
constexpr int kVerifyUsage = 64;    ///< EX_USAGE
constexpr int kVerifyNoInput = 66;  ///< EX_NOINPUT: a file or the key cannot be read

/// `argv[0]` is "audit". Returns the exit code.
int audit_main(int argc, char** argv);

}  // namespace opsagent::app

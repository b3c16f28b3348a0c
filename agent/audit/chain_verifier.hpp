#pragma once
// Checks the audit hash chain (hash_chain.hpp) across an ordered list of audit files and names
// the first problem: which file, which line, and what it looks like (an edited, deleted,
// inserted or reordered record, a file cut short or missing from the sequence), or only a torn
// last line, which a crash mid-write leaves and which is not tampering. `opsagent audit
// verify` is a thin shell over it; docs/audit.md describes the checks and the exit codes.
//
// Fast by construction: lines are found with memchr, and only `seq` and `prev`, which every
// record starts with, are read by position; no line is parsed as JSON.

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "agent/common/error.hpp"

namespace opsagent::audit {

/// One audit file's bytes, oldest file first.
struct ChainInput {
  std::string name;       ///< for messages
  std::string_view data;  ///< the whole file
};

enum class ChainVerdict {
  intact,     ///< every record links to the one before
  torn_tail,  ///< intact, except that the last file ends with an unterminated line (a crash)
  broken,     ///< the first problem is in `problem`
};

struct ChainReport {
  ChainVerdict verdict = ChainVerdict::intact;
  std::uint64_t records = 0;  ///< whole records checked (up to the problem)
  std::size_t files = 0;
  std::string file;        ///< where the problem (or torn line) is
  std::uint64_t line = 0;  ///< 1-based
  std::string kind;        ///< edited, deleted, inserted, reordered, truncated, missing_file,
                           ///< unlinked, malformed, key (broken); torn (torn_tail)
  std::string why;         ///< one sentence
  std::uint64_t torn_acknowledged = 0;  ///< torn lines a later header accounted for (crashes)
};

/// The one-line summary `opsagent audit verify` prints: "OK: N records in M files, chain
/// intact", "TORN: ..." or "FAIL: FILE:LINE: KIND: WHY".
std::string format_report(const ChainReport& report);

/// Pure: verifies `files` in order. `key` empty: an unkeyed (SHA-256) chain is expected; else
/// an HMAC-SHA-256 chain under `key`. Throws std::runtime_error only when OpenSSL cannot set up.
ChainReport verify_chain(const std::vector<ChainInput>& files, std::string_view key);

/// Maps `paths` and verifies them; an error names a file that cannot be read.
Result<ChainReport> verify_chain_files(const std::vector<std::filesystem::path>& paths,
                                       std::string_view key);

}  // namespace opsagent::audit

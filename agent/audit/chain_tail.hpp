#pragma once
// Reads where an existing audit file's chain ends, so that a new agent run links to it: the
// last whole record's hash and seq, and whether a torn line (a crash mid-write) follows it.
// A bounded read of the file's end; blocking (agent start, never an I/O thread).

#include <cstdint>
#include <filesystem>

#include "agent/audit/hash_chain.hpp"

namespace opsagent::audit {

struct ChainTail {
  bool found = false;  ///< a whole record was found: `hash` and `seq` are its
  ChainHash hash = zero_chain_hash();
  std::uint64_t seq = 0;  ///< 0 when the record has no readable seq
  bool torn = false;      ///< the file ends with an unterminated line (after `hash`'s record)
};

/// The last at most 1 MiB of `path` (a missing or empty file: nothing found). A last line
/// longer than that is treated as absent (`found` false).
ChainTail read_chain_tail(const std::filesystem::path& path, HashChain& chain);

/// Parses `{"seq":N,` at the start of a record line; 0 when it is not there.
std::uint64_t leading_seq(std::string_view line) noexcept;

}  // namespace opsagent::audit

// Fuzz target: protocol::LineFramer fed in random chunk sizes (SECURITY-MATRIX B1-B4).
// Input: byte 0-1 pick the line limit, byte 2 seeds the chunk sizes, the rest is the stream.
// Properties: the framer never holds more than the limit; every line has no LF and fits the
// limit; it never stalls (refuses bytes with no line ready and no overflow); and the lines it
// yields are exactly the LF-separated prefix of what it consumed, byte for byte.

#include "agent/protocol/line_framer.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "tests/fuzz/fuzz_support.hpp"

using opsagent::fuzz::expect;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  opsagent::fuzz::ByteReader in(data, size);
  // Small limits reach the boundaries (limit-1, limit, limit+1) quickly; 0 is legal too.
  const std::size_t limit = in.u16() % 300U;
  std::uint32_t state = in.byte() | 1U;
  std::string_view stream = in.rest();

  opsagent::protocol::LineFramer framer(limit);
  std::string consumed;  // every byte the framer accepted
  std::string rebuilt;   // every line it returned, each followed by its LF
  while (!stream.empty() && !framer.overflowed()) {
    // xorshift: chunk sizes 1..limit+2, so chunks straddle LFs and the limit.
    state ^= state << 13U;
    state ^= state >> 17U;
    state ^= state << 5U;
    const std::size_t chunk = 1 + state % (limit + 2);
    std::string_view piece = stream.substr(0, chunk);
    stream.remove_prefix(piece.size());
    while (!piece.empty() && !framer.overflowed()) {
      const std::size_t n = framer.feed(piece);
      expect(n <= piece.size(), "feed consumed more than it was given");
      consumed.append(piece.substr(0, n));
      piece.remove_prefix(n);
      expect(framer.pending_bytes() <= limit, "pending bytes exceed the line limit");
      bool got_line = false;
      while (auto line = framer.next_line()) {
        got_line = true;
        expect(line->find('\n') == std::string::npos, "line contains LF", *line);
        expect(line->size() <= limit, "line longer than the limit");
        rebuilt += *line;
        rebuilt += '\n';
      }
      expect(n > 0 || got_line || framer.overflowed(), "framer stalled");
    }
  }
  // What was returned is exactly what was consumed up to its last LF.
  const std::size_t last_lf = consumed.rfind('\n');
  const std::string complete = last_lf == std::string::npos ? "" : consumed.substr(0, last_lf + 1);
  expect(rebuilt == complete, "returned lines differ from the consumed bytes");
  expect(framer.pending_bytes() == consumed.size() - complete.size(),
         "pending bytes differ from the unterminated tail");
  return 0;
}

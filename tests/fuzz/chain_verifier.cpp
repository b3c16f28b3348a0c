// Fuzz target: audit::verify_chain (issue 11), the code that reads audit files an attacker may
// have edited.
// Input: byte 0 chooses the mode and the number of files, byte 1 a key (none or one of two).
//   mode even: the rest, cut into up to three files, is verified as it is. Properties: no crash,
//     no hang; a problem names one of the files and a line that exists; records counted never
//     exceed the lines given.
//   mode odd: the rest becomes the bodies of a chain the verifier must accept (built with
//     HashChain as the writer builds it); then one byte of one record is changed and the
//     verifier must no longer say intact, unless the change hit the very last record.

#include "agent/audit/chain_verifier.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "agent/audit/hash_chain.hpp"

#include "tests/fuzz/fuzz_support.hpp"

using opsagent::audit::ChainInput;
using opsagent::audit::ChainVerdict;
using opsagent::audit::format_report;
using opsagent::audit::verify_chain;
using opsagent::fuzz::expect;

namespace {

std::size_t count_lines(std::string_view s) {
  std::size_t n = 0;
  for (const char c : s) n += c == '\n' ? 1 : 0;
  return n + (s.empty() || s.back() == '\n' ? 0 : 1);
}

void check_raw(std::string_view rest, std::size_t files, const std::string& key) {
  std::vector<ChainInput> in;
  std::size_t lines = 0;
  const std::size_t part = files == 0 ? rest.size() : rest.size() / files + 1;
  for (std::size_t i = 0; i < files; ++i) {
    const std::string_view data = rest.substr(std::min(i * part, rest.size()), part);
    in.push_back({"f" + std::to_string(i), data});
    lines += count_lines(data);
  }
  const auto report = verify_chain(in, key);
  expect(report.records <= lines, "counted more records than lines", format_report(report));
  if (report.verdict != ChainVerdict::intact) {
    bool named = false;
    for (const auto& f : in) {
      if (f.name == report.file) named = report.line >= 1 && report.line <= count_lines(f.data);
    }
    expect(named, "a problem names a file and line that do not exist", format_report(report));
  }
  expect(!format_report(report).empty(), "empty report");
}

void check_built(std::string_view rest, const std::string& key) {
  opsagent::audit::HashChain chain(key);
  opsagent::audit::ChainHash prev = opsagent::audit::zero_chain_hash();
  std::vector<std::string> lines;
  std::string header =
      std::string(R"("event":"audit_file_start","reason":"agent_start","chain":")") +
      chain.algorithm() + "\"";
  if (chain.keyed()) header += ",\"key_id\":\"" + chain.key_id() + "\"";
  std::vector<std::string> bodies{header};
  for (std::size_t at = 0; at < rest.size(); at += 24) {
    std::string text(rest.substr(at, 24));
    for (char& c : text) c = (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') ? c : '_';
    bodies.push_back("\"event\":\"command\",\"t\":\"" + text + "\"");
  }
  std::string file;
  for (std::size_t i = 0; i < bodies.size(); ++i) {
    std::string line =
        "{\"seq\":" + std::to_string(i + 1) + ",\"prev\":\"" +
        std::string(prev.data(), prev.size()) +
        R"(","ts":"2026-12-03T09:00:00.000000Z","host":"h","instance":"0123456789abcdef","pid":1,)" +
        bodies[i] + "}";
    expect(chain.hash(line, prev), "hash failed");
    lines.push_back(line);
    file += line + "\n";
  }
  const auto ok = verify_chain({{"f", file}}, key);
  expect(ok.verdict == ChainVerdict::intact, "a chain built like the writer's does not verify",
         format_report(ok));
  expect(ok.records == lines.size(), "wrong record count", format_report(ok));
  // Change one byte of one record (chosen by the input) inside its body.
  const std::size_t which = rest.empty() ? 0 : static_cast<unsigned char>(rest[0]) % lines.size();
  std::size_t offset = 0;
  for (std::size_t i = 0; i < which; ++i) offset += lines[i].size() + 1;
  const std::size_t pos = offset + lines[which].size() - 3;
  file[pos] = static_cast<char>(file[pos] ^ 0x01);
  if (file[pos] == '\n') return;
  const auto bad = verify_chain({{"f", file}}, key);
  if (which + 1 < lines.size()) {
    expect(bad.verdict == ChainVerdict::broken, "an edited record went unnoticed",
           format_report(bad));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  opsagent::fuzz::ByteReader in(data, size);
  const std::uint8_t mode = in.byte();
  const std::uint8_t key_choice = in.byte();
  const std::string key = key_choice % 3 == 0 ? "" : key_choice % 3 == 1 ? "k1" : "another key";
  const std::string_view rest = in.rest();
  if (mode % 2 == 0) {
    check_raw(rest, (mode / 2) % 3 + 1, key);
  } else {
    check_built(rest.substr(0, 4096), key);
  }
  return 0;
}

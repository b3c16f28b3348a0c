// Fuzz target: policy::split_client_path + policy::PathPattern (SECURITY-MATRIX C6).
// Input: a client path, or "PATTERN\nPATH" to also try a fuzzed pattern next to the fixed ones.
// Properties: split_client_path only yields clean components ("", ".", ".." and NUL never
// appear) that rejoin to the input; a match implies the path's components start with the
// pattern root's components, with something left beneath the root for a wildcard pattern; and
// matches() agrees with a naive recursive matcher (a differential oracle) on small inputs.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "agent/policy/path_pattern.hpp"

#include "tests/fuzz/fuzz_support.hpp"

using opsagent::fuzz::expect;
using opsagent::policy::PathPattern;

namespace {

const std::vector<PathPattern>& fixed_patterns() {
  static const std::vector<PathPattern> kPatterns = [] {
    std::vector<PathPattern> out;
    for (const char* text :
         {"/etc/**", "/var/log/*.log", "/var/log", "/srv/data/x?/**/file", "/opt/app/config.yaml",
          "/home/*/public/**", "/a/**/b/**/c", "/data/%2e%2e/*", "/tmp/[x]/*"}) {
      out.emplace_back(text);
    }
    return out;
  }();
  return kPatterns;
}

// Naive, exponential-in-the-worst-case reference matchers; only used on small inputs.
bool naive_component(std::string_view pat, std::string_view name) {
  if (pat.empty()) return name.empty();
  if (pat[0] == '*') {
    for (std::size_t k = 0; k <= name.size(); ++k) {
      if (naive_component(pat.substr(1), name.substr(k))) return true;
    }
    return false;
  }
  if (name.empty()) return false;
  if (pat[0] != '?' && pat[0] != name[0]) return false;
  return naive_component(pat.substr(1), name.substr(1));
}

bool naive_path(const std::vector<std::string>& pat, std::size_t i,
                const std::vector<std::string>& comps, std::size_t j) {
  if (i == pat.size()) return j == comps.size();
  if (pat[i] == "**") {
    for (std::size_t k = j; k <= comps.size(); ++k) {
      if (naive_path(pat, i + 1, comps, k)) return true;
    }
    return false;
  }
  return j < comps.size() && naive_component(pat[i], comps[j]) &&
         naive_path(pat, i + 1, comps, j + 1);
}

std::vector<std::string> components_of(const std::filesystem::path& root) {
  std::vector<std::string> out;
  for (const auto& part : root.relative_path()) out.push_back(part.string());
  return out;
}

void check_pattern(const PathPattern& pattern, const std::vector<std::string>& comps) {
  const std::vector<std::string> root = components_of(pattern.root());
  expect(root.size() == pattern.root_depth(), "root_depth disagrees with root()");
  for (const auto& part : root) {
    expect(part.find_first_of("*?") == std::string::npos, "wildcard in the root", part);
  }
  const std::vector<std::string> parts = opsagent::fuzz::split(pattern.text().substr(1), '/');
  expect(root.size() < parts.size(), "root is the whole pattern", pattern.text());

  const bool matched = pattern.matches(comps);
  if (matched) {
    for (const auto& c : comps) {
      expect(!c.empty() && c != "." && c != "..", "match on an unclean component", c);
    }
    expect(comps.size() >= root.size(), "match shorter than the root");
    for (std::size_t i = 0; i < root.size(); ++i) {
      expect(comps[i] == root[i], "match outside the root", pattern.text());
    }
  }
  // Differential check, bounded so the naive matcher stays fast: at most three '*' per
  // component, three "**" and short names.
  bool small = comps.size() <= 12 && std::count(parts.begin(), parts.end(), "**") <= 3;
  for (const auto& p : parts) {
    small = small && (p == "**" || std::count(p.begin(), p.end(), '*') <= 3);
  }
  for (const auto& c : comps) small = small && c.size() <= 24;
  if (small) {
    expect(matched == naive_path(parts, 0, comps, 0), "matches() disagrees with the oracle",
           pattern.text());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::optional<PathPattern> fuzzed;
  if (const auto lf = input.find('\n'); lf != std::string_view::npos) {
    try {
      fuzzed.emplace(input.substr(0, lf));
    } catch (const std::invalid_argument&) {
    }
    input.remove_prefix(lf + 1);
  }

  const auto split = opsagent::policy::split_client_path(input);
  if (!split) return 0;
  const std::vector<std::string>& comps = split.value();
  std::string rejoined;
  for (const auto& c : comps) {
    expect(!c.empty() && c != "." && c != "..", "unclean component accepted", c);
    expect(c.find('/') == std::string::npos && c.find('\0') == std::string::npos,
           "component holds '/' or NUL", c);
    rejoined += '/';
    rejoined += c;
  }
  expect(rejoined == input, "components do not rejoin to the path", input);

  for (const auto& pattern : fixed_patterns()) check_pattern(pattern, comps);
  if (fuzzed) check_pattern(*fuzzed, comps);
  return 0;
}

#include "agent/policy/path_pattern.hpp"

#include <stdexcept>

namespace opsagent::policy {
namespace {

// PATH_MAX on Linux; longer names cannot be opened anyway, so they are refused before any work.
constexpr std::size_t kMaxPathBytes = 4096;

bool has_wildcard(std::string_view component) {
  return component.find_first_of("*?") != std::string_view::npos;
}

Error usage(std::string message) { return Error{ErrorCode::usage, std::move(message)}; }

}  // namespace

Result<std::vector<std::string>> split_client_path(std::string_view path) {
  if (path.size() > kMaxPathBytes) {
    return Error{ErrorCode::limit,
                 "path is longer than " + std::to_string(kMaxPathBytes) + " bytes"};
  }
  if (path.find('\0') != std::string_view::npos) return usage("path contains a NUL byte");
  if (path.empty() || path.front() != '/') return usage("path must be absolute");
  if (path.size() == 1) return usage("path names no file");

  // Lexical checks only, and nothing is decoded: "%2e%2e" is a file literally called "%2e%2e".
  // Containment is then decided on these components, never on a string prefix.
  std::vector<std::string> components;
  std::size_t start = 1;
  while (true) {
    const std::size_t slash = path.find('/', start);
    const std::string_view part = path.substr(
        start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (part.empty()) {
      return usage(slash == std::string_view::npos ? "path must not end with '/'"
                                                   : "path must not contain '//'");
    }
    if (part == "." || part == "..") return usage("path must not contain '.' or '..' components");
    components.emplace_back(part);
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return components;
}

bool glob_match_component(std::string_view pattern, std::string_view name) {
  // Classic greedy match with one backtrack point: linear in practice, never exponential,
  // because a later '*' always supersedes the earlier one.
  std::size_t p = 0;
  std::size_t n = 0;
  std::size_t star = std::string_view::npos;
  std::size_t star_n = 0;
  while (n < name.size()) {
    // '*' is tested first: a file name may itself contain '*', which must not make the
    // pattern's '*' a literal one-byte match ("*.log" must match "*x.log").
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      star_n = n;
    } else if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == name[n])) {
      ++p;
      ++n;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      n = ++star_n;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

PathPattern::PathPattern(std::string_view text) : text_(text) {
  if (text.empty() || text.front() != '/') {
    throw std::invalid_argument("path pattern must be absolute");
  }
  auto split = split_client_path(text);
  if (!split) throw std::invalid_argument("path pattern: " + split.error().message);
  parts_ = std::move(split).value();

  bool wildcard_seen = false;
  for (std::size_t i = 0; i < parts_.size(); ++i) {
    const std::string& part = parts_[i];
    if (part.find("**") != std::string::npos && part != "**") {
      throw std::invalid_argument("'**' must be a whole path component");
    }
    if (has_wildcard(part)) {
      // The root directory is what files are opened beneath; "/*" or "/**" would make it "/".
      if (i == 0) throw std::invalid_argument("the first path component may not contain wildcards");
      wildcard_seen = true;
    } else if (!wildcard_seen) {
      root_depth_ = i + 1;
    }
  }
  // A literal file name: its directory is the root, so the file itself is opened beneath it.
  if (!wildcard_seen) root_depth_ = parts_.size() - 1;

  root_ = "/";
  for (std::size_t i = 0; i < root_depth_; ++i) root_ /= parts_[i];
}

bool PathPattern::matches(const std::vector<std::string>& components) const {
  // Dynamic programming over (pattern part, component): O(parts * components) even with
  // several '**', where naive backtracking would be exponential.
  const std::size_t np = parts_.size();
  const std::size_t nc = components.size();
  // reach[j] == true: pattern parts [0, i) can consume components [0, j).
  std::vector<char> reach(nc + 1, 0);
  reach[0] = 1;
  for (std::size_t i = 0; i < np; ++i) {
    std::vector<char> next(nc + 1, 0);
    if (parts_[i] == "**") {
      // Zero or more components: once reachable, everything after is reachable.
      char any = 0;
      for (std::size_t j = 0; j <= nc; ++j) {
        any = static_cast<char>(any | reach[j]);
        next[j] = any;
      }
    } else {
      for (std::size_t j = 0; j < nc; ++j) {
        if (reach[j] != 0 && glob_match_component(parts_[i], components[j])) next[j + 1] = 1;
      }
    }
    reach.swap(next);
  }
  return reach[nc] != 0;
}

}  // namespace opsagent::policy

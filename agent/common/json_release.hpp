#pragma once
// Destroying JSON documents without allocating (SECURITY-MATRIX H5).
//
// nlohmann::json 3.11 destroys a non-empty object or array by first moving its children into a
// heap-allocated std::vector (to avoid deep recursion). That allocation happens inside a noexcept
// destructor: if it fails, the process ends in std::terminate. The same happens to the two-element
// arrays its initializer-list constructor makes for every {"key", value} pair. So a document the
// agent builds and drops while memory runs out could end the whole agent, not one connection.
//
// release_json() empties a document leaf-first, which needs no memory; what remains is an empty
// container, whose destructor allocates nothing. Build documents with operator[] (or through
// audit::AuditLog's field list), not from {{"key", value}, ...} initializer lists, and release
// them before they are destroyed. Recursion depth is the document's depth: only for the shallow
// documents the agent builds itself, never for parsed input.

#include <nlohmann/json.hpp>

namespace opsagent {

// NOLINTNEXTLINE(bugprone-exception-escape): iteration and clear() throw nothing
inline void release_json(nlohmann::json& j) noexcept {
  if (!j.is_structured()) return;
  for (auto& child : j) release_json(child);
  j.clear();  // children are now scalars or empty containers: nothing to flatten, no allocation
}

/// Releases `j` (release_json) when the scope ends, also during unwinding. Declare it right after
/// the document so that it runs before the document's own destructor.
class JsonReleaser {
 public:
  explicit JsonReleaser(nlohmann::json& j) noexcept : j_(j) {}
  // NOLINTNEXTLINE(bugprone-exception-escape): release_json() throws nothing
  ~JsonReleaser() { release_json(j_); }
  JsonReleaser(const JsonReleaser&) = delete;
  JsonReleaser& operator=(const JsonReleaser&) = delete;

 private:
  nlohmann::json& j_;
};

}  // namespace opsagent

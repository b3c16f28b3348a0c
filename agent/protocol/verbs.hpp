#pragma once
// Every verb of the protocol, in one table: its name, arity, usage, summary and whether the policy
// grants it. The dispatcher, `help`, the authoriser, the policy loader and opsctl all read this
// table; adding a verb is one row here, one handler and one authorisation rule. Pure data.

#include <cstddef>
#include <limits>
#include <span>
#include <string_view>

namespace opsagent::protocol {

enum class Verb { help, ping, whoami, lastlog, tail, comphash, hash, run, json, exit, quit };

/// How the policy treats a verb.
enum class Grant {
  builtin,    ///< every authenticated principal may use it; a policy may not grant or deny it
  grantable,  ///< only through a role's `commands`, and a role's `deny` removes it
};

struct VerbSpec {
  Verb verb;
  std::string_view name;
  std::size_t min_args;
  std::size_t max_args;
  std::string_view usage;    ///< "tail <log> [lines]"
  std::string_view summary;  ///< one line for `help`
  Grant grant;
  bool ends_session;  ///< the agent closes the connection after answering (exit, quit)
};

inline constexpr std::size_t kAnyCount = std::numeric_limits<std::size_t>::max();

/// Every verb, in the order `help` lists them.
std::span<const VerbSpec> all_verbs() noexcept;

/// The verb called `name`, or nullptr.
const VerbSpec* find_verb(std::string_view name) noexcept;

/// The row of `verb`.
const VerbSpec& spec_of(Verb verb) noexcept;

/// Whether `count` arguments fit the verb.
[[nodiscard]] constexpr bool arity_fits(const VerbSpec& spec, std::size_t count) noexcept {
  return count >= spec.min_args && count <= spec.max_args;
}

/// The digest algorithms `hash` offers, by the name clients and the policy use. An allow-list:
/// weak digests (md5, ...) are not offered even where OpenSSL has them.
struct HashAlgorithm {
  std::string_view name;  ///< "sha256"
  const char* openssl;    ///< the OpenSSL 3 fetch name, "SHA2-256"
};
std::span<const HashAlgorithm> hash_algorithms() noexcept;

/// The algorithm called `name`, or nullptr.
const HashAlgorithm* find_hash_algorithm(std::string_view name) noexcept;

/// The algorithm `comphash` uses (the Twisted tutorial's SHA-1).
inline constexpr std::string_view kComphashAlgorithm = "sha1";

}  // namespace opsagent::protocol

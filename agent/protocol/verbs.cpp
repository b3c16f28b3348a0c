#include "agent/protocol/verbs.hpp"

#include <array>

namespace opsagent::protocol {
namespace {

constexpr std::array kVerbs = {
    VerbSpec{Verb::help, "help", 0, 1, "help [command]",
             "the commands you may use; with a command, what it accepts", Grant::builtin, false},
    VerbSpec{Verb::ping, "ping", 0, 0, "ping", "check that the agent answers", Grant::grantable,
             false},
    VerbSpec{Verb::whoami, "whoami", 0, 0, "whoami", "show the identity the agent sees",
             Grant::grantable, false},
    VerbSpec{Verb::lastlog, "lastlog", 0, 0, "lastlog", "the last lines of the system log",
             Grant::grantable, false},
    VerbSpec{Verb::tail, "tail", 1, 2, "tail <log> [lines]",
             "the last lines of a log named in the policy", Grant::grantable, false},
    VerbSpec{Verb::comphash, "comphash", 1, 1, "comphash <path>", "SHA-1 of a file",
             Grant::grantable, false},
    VerbSpec{Verb::hash, "hash", 2, 2, "hash <algorithm> <path>", "digest of a file",
             Grant::grantable, false},
    VerbSpec{Verb::run, "run", 1, kAnyCount, "run <name> [args...]",
             "run a command named in the policy", Grant::grantable, false},
    VerbSpec{Verb::json, "json", 1, 1, "json on|off", "switch replies to JSON lines",
             Grant::builtin, false},
    VerbSpec{Verb::exit, "exit", 0, 0, "exit", "close the connection", Grant::builtin, true},
    VerbSpec{Verb::quit, "quit", 0, 0, "quit", "close the connection", Grant::builtin, true},
};

constexpr std::array kHashAlgorithms = {
    HashAlgorithm{"sha1", "SHA1"},         HashAlgorithm{"sha224", "SHA2-224"},
    HashAlgorithm{"sha256", "SHA2-256"},   HashAlgorithm{"sha384", "SHA2-384"},
    HashAlgorithm{"sha512", "SHA2-512"},   HashAlgorithm{"sha3-256", "SHA3-256"},
    HashAlgorithm{"sha3-512", "SHA3-512"},
};

// spec_of() indexes the table by the enum: every row in enum order.
constexpr bool table_in_enum_order() {
  for (std::size_t i = 0; i < kVerbs.size(); ++i) {
    if (static_cast<std::size_t>(kVerbs[i].verb) != i) return false;
  }
  return true;
}
static_assert(table_in_enum_order(), "kVerbs rows must follow the order of enum Verb");

}  // namespace

std::span<const VerbSpec> all_verbs() noexcept { return kVerbs; }

const VerbSpec* find_verb(std::string_view name) noexcept {
  for (const auto& spec : kVerbs) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

const VerbSpec& spec_of(Verb verb) noexcept { return kVerbs[static_cast<std::size_t>(verb)]; }

std::span<const HashAlgorithm> hash_algorithms() noexcept { return kHashAlgorithms; }

const HashAlgorithm* find_hash_algorithm(std::string_view name) noexcept {
  for (const auto& a : kHashAlgorithms) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

}  // namespace opsagent::protocol

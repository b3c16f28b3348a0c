#pragma once
// Inventories: opsctl's native YAML and Ansible's YAML inventory, read by the strict YAML reader,
// and target patterns resolved against them. Pure apart from reading the file.

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/client/target.hpp"
#include "agent/common/error.hpp"

namespace opsagent::client {

/// One host as the inventory describes it.
struct InventoryHost {
  std::string name;                   ///< inventory name ("web1")
  std::string address;                ///< where to connect (ansible_host / address; default: name)
  std::optional<std::uint16_t> port;  ///< agent port, when the inventory sets one
  std::string server_name;            ///< certificate name to expect, when it differs from address
  std::string pin_sha256;             ///< pinned certificate fingerprint "AB:CD:..." (empty: none)
};

/// A loaded inventory. Immutable after construction; safe to share between threads.
class Inventory {
 public:
  enum class Format { native, ansible };

  /// Reads and validates `path`; the format is detected (docs/opsctl.md): an executable file
  /// is run with `--list` (Ansible dynamic inventory JSON), an INI-looking or *.ini file is an
  /// Ansible INI inventory; else YAML: a file whose top-level keys are all among `defaults`,
  /// `hosts`, `groups` is native, anything else an Ansible YAML inventory. Throws
  /// config::ConfigError "FILE:LINE:COL: key.path: message".
  static Inventory load(const std::filesystem::path& path);
  /// Same from text (tests); `file` names the source in messages.
  static Inventory parse(const std::string& text, const std::string& file);

  [[nodiscard]] Format format() const noexcept { return format_; }
  /// The port for hosts given on the command line that the inventory does not list:
  /// `defaults.port` (native) or `opsagent_port` in `all`'s vars (Ansible).
  [[nodiscard]] std::optional<std::uint16_t> default_port() const noexcept { return default_port_; }
  /// Hosts in the order they first appear in the file.
  [[nodiscard]] const std::vector<InventoryHost>& hosts() const noexcept { return hosts_; }
  /// The host called `name`, or nullptr.
  [[nodiscard]] const InventoryHost* find_host(std::string_view name) const;
  /// Group name -> its hosts, including those of child groups (inventory order). Always has
  /// `all`; Ansible inventories also have `ungrouped`.
  [[nodiscard]] const std::map<std::string, std::vector<std::string>, std::less<>>& groups()
      const noexcept {
    return groups_;
  }

 private:
  friend class InventoryBuilder;
  Format format_ = Format::native;
  std::optional<std::uint16_t> default_port_;
  std::vector<InventoryHost> hosts_;
  std::map<std::string, std::vector<std::string>, std::less<>> groups_;
};

/// Hosts chosen by a target pattern.
struct Selection {
  std::vector<Target> targets;  ///< each host once, in pattern order then inventory order
  bool single_host = false;     ///< the pattern named exactly one host (not a group, glob or list)
};

/// Resolves `pattern` with Ansible's semantics (docs/opsctl.md "Targets"): terms separated by
/// `,` (or `:` when there is no comma), each a host name, a group name, `all`, a glob (fnmatch:
/// *, ?, [...]) or `~regex` (searched) over host and group names, or a literal HOST[:PORT] /
/// [IPv6]:PORT; `&TERM` keeps only hosts also in TERM, `!TERM` removes hosts, both applied after
/// the plain terms; with only `!`/`&` terms the plain part is `all`. `limit` (may be empty) is
/// a second pattern the result is intersected with (--limit). `inventory` may be null.
/// Inventory hosts without a port take `default_port`; literal hosts take the inventory's
/// default port, else `default_port`. Errors (ErrorCode::usage): an empty result, a glob,
/// regex or lone exclusion without an inventory, a bare name that is neither in the inventory
/// nor looks like an address (contains '.' or ':' or is "localhost"), a host without any port.
Result<Selection> select_targets(const Inventory* inventory, std::string_view pattern,
                                 std::optional<std::uint16_t> default_port,
                                 std::string_view limit = {});

/// Reads a --limit @FILE (a retry file): one host name per line, blank lines and `#` comments
/// ignored; returns them as a pattern ("a,b,c"). Errors name FILE:LINE.
Result<std::string> read_limit_file(const std::filesystem::path& path);

/// Expands Ansible host ranges: "web[01:03].example.com" -> web01..., "db-[a:c]" -> db-a, db-b,
/// db-c, "[1:9:2]" with a stride. Names without brackets are returned as they are.
Result<std::vector<std::string>> expand_host_range(std::string_view name);

}  // namespace opsagent::client

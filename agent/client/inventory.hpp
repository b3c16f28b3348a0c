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
};

/// A loaded inventory. Immutable after construction; safe to share between threads.
class Inventory {
 public:
  enum class Format { native, ansible };

  /// Reads and validates `path`; the format is detected (docs/opsctl.md): a file whose
  /// top-level keys are all among `defaults`, `hosts`, `groups` is native, anything else is an
  /// Ansible YAML inventory. Throws config::ConfigError "FILE:LINE:COL: key.path: message".
  static Inventory load(const std::filesystem::path& path);
  /// Same from text (tests); `file` names the source in messages.
  static Inventory parse(const std::string& text, const std::string& file);

  [[nodiscard]] Format format() const noexcept { return format_; }
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
  std::vector<InventoryHost> hosts_;
  std::map<std::string, std::vector<std::string>, std::less<>> groups_;
};

/// Hosts chosen by a target pattern.
struct Selection {
  std::vector<Target> targets;  ///< each host once, in pattern order then inventory order
  bool single_host = false;     ///< the pattern named exactly one host (not a group, glob or list)
};

/// Resolves `pattern` (docs/opsctl.md "Targets"): comma-separated terms, each a host name, a
/// group name, `all`, a glob (fnmatch: *, ?, [...]) over host and group names, or a literal
/// HOST[:PORT] / [IPv6]:PORT; a term starting with `!` removes hosts. `inventory` may be null.
/// Hosts without a port take `default_port`. Errors (ErrorCode::usage): an empty result, a glob
/// or exclusion without an inventory, a bare name that is neither in the inventory nor looks
/// like an address (contains '.' or ':' or is "localhost"), a host without any port.
Result<Selection> select_targets(const Inventory* inventory, std::string_view pattern,
                                 std::optional<std::uint16_t> default_port);

/// Expands Ansible host ranges: "web[01:03].example.com" -> web01..., "db-[a:c]" -> db-a, db-b,
/// db-c, "[1:9:2]" with a stride. Names without brackets are returned as they are.
Result<std::vector<std::string>> expand_host_range(std::string_view name);

}  // namespace opsagent::client

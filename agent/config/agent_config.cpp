#include "agent/config/agent_config.hpp"

#include <arpa/inet.h>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <grp.h>
#include <initializer_list>
#include <netinet/in.h>
#include <pwd.h>
#include <stdexcept>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include "agent/audit/chain_key.hpp"
#include "agent/audit/syslog_encoder.hpp"
#include "agent/common/errno_text.hpp"
#include "agent/common/trusted_file.hpp"
#include "agent/config/config_error.hpp"
#include "agent/config/config_file.hpp"
#include "agent/config/metrics_config.hpp"
#include "agent/config/strict_yaml.hpp"
#include "agent/config/yaml_reader.hpp"

namespace opsagent::config {
namespace {

using namespace std::chrono_literals;

// A null node stands in for an absent optional section, so MapReader sees an empty map.
const YamlNode kAbsent{};

constexpr std::int64_t kMaxCount = 100'000;

// A user or group named in the configuration. getpwnam() and getgrnam() return a buffer that
// every thread shares, and the configuration is read again on each reload (SIGHUP) while the
// agent serves: the reentrant lookups here.
struct Account {
  uid_t uid = 0;
  gid_t gid = 0;
};

bool not_found(int rc) noexcept {
  return rc == 0 || rc == ENOENT || rc == ESRCH || rc == EBADF || rc == EPERM;
}

// Calls getpwnam_r or getgrnam_r with a buffer that grows until the entry fits; `use` takes
// what it needs from the entry before the buffer goes. Returns 0, or ENOENT for a name that
// does not exist, or the errno of a lookup that failed.
template <typename Entry, typename Use>
int lookup_entry(int (*lookup)(const char*, Entry*, char*, std::size_t, Entry**),
                 const std::string& name, Use use) {
  std::vector<char> buf(std::size_t{16} * 1024);
  for (;;) {
    Entry entry{};
    Entry* found = nullptr;
    const int rc = lookup(name.c_str(), &entry, buf.data(), buf.size(), &found);
    if (rc == ERANGE && buf.size() < std::size_t{1} << 20) {
      buf.resize(buf.size() * 2);
      continue;
    }
    if (found == nullptr) return not_found(rc) ? ENOENT : rc;
    use(entry);
    return 0;
  }
}

int lookup_user(const std::string& name, Account& out) {
  return lookup_entry(::getpwnam_r, name, [&](const struct passwd& e) {
    out = {e.pw_uid, e.pw_gid};
  });
}

int lookup_group(const std::string& name, gid_t& out) {
  return lookup_entry(::getgrnam_r, name, [&](const struct group& e) { out = e.gr_gid; });
}

std::string lookup_failure(const char* what, const std::string& name, int rc) {
  if (rc == ENOENT) return std::string("no such ") + what + ": " + name;
  return std::string("cannot look up ") + what + " " + name + ": " + common::errno_text(rc);
}

// Rejects unknown keys before anything else is read, so a misspelt key ("polcy:") is reported
// as such rather than as the required key it was meant to be.
int as_count(const YamlNode& n, const NodeContext& ctx, int min, int max) {
  return static_cast<int>(as_int(n, ctx, min, max));
}

// What the agent will do with a file decides how it is checked: everything named in the config
// must exist and be readable now, so a typo fails at start-up and not at the first connection.
struct stat require_readable_file(const std::filesystem::path& path, const NodeContext& ctx,
                                  const YamlNode& node) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    fail(ctx, node, "cannot open " + path.string() + ": " + common::errno_text(errno));
  }
  struct stat st {};
  const int rc = ::fstat(fd, &st);
  const int saved_errno = errno;
  ::close(fd);
  if (rc != 0) {
    fail(ctx, node, "cannot stat " + path.string() + ": " + common::errno_text(saved_errno));
  }
  if (!S_ISREG(st.st_mode)) fail(ctx, node, path.string() + " is not a regular file");
  return st;
}

std::filesystem::path read_existing_file(MapReader& map, std::string_view key,
                                         const std::filesystem::path& base_dir) {
  const YamlNode& node = map.require(key);
  auto path = as_path(node, map.ctx(key), base_dir);
  require_readable_file(path, map.ctx(key), node);
  return path;
}

std::string ascii_lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// The canonical name of an allowed key exchange group, accepting OpenSSL's aliases in any case;
// "" when `name` is not allowed.
std::string canonical_group(std::string_view name) {
  const std::string lower = ascii_lower(name);
  if (lower == "x25519") return "X25519";
  if (lower == "p-256" || lower == "prime256v1" || lower == "secp256r1") return "P-256";
  if (lower == "p-384" || lower == "secp384r1") return "P-384";
  return "";
}

std::vector<std::string> read_groups(const YamlNode& node, const NodeContext& ctx) {
  if (node.kind != YamlNode::Kind::sequence || node.items.empty()) {
    fail(ctx, node, "expected a non-empty list of key exchange groups, e.g. [X25519, P-256]");
  }
  std::vector<std::string> groups;
  for (std::size_t i = 0; i < node.items.size(); ++i) {
    const YamlNode& item = node.items[i];
    const std::string name = as_string(item, ctx.index(i));
    // Finite-field Diffie-Hellman costs the server up to ~90x an X25519 handshake, before any
    // certificate is checked: a client naming it can burn the agent's CPU (DHEat).
    if (ascii_lower(name).rfind("ffdhe", 0) == 0) {
      fail(ctx.index(i), item,
           "finite-field group " + name +
               " is not allowed (its key exchange lets unauthenticated clients burn the "
               "agent's CPU: DHEat); use X25519, P-256 or P-384");
    }
    std::string group = canonical_group(name);
    if (group.empty()) {
      fail(ctx.index(i), item,
           "unknown or unsupported key exchange group '" + name +
               "'; allowed: X25519, P-256, P-384");
    }
    for (std::size_t j = 0; j < groups.size(); ++j) {
      if (groups[j] == group) {
        fail(ctx.index(i), item,
             "group " + group + " is listed twice (also at line " +
                 std::to_string(node.items[j].mark.line) + ")");
      }
    }
    groups.push_back(std::move(group));
  }
  return groups;
}

void read_tls(const YamlNode& node, const NodeContext& ctx, const std::filesystem::path& base_dir,
              TlsSettings& tls, std::vector<std::string>& warnings) {
  MapReader map(node, ctx);
  map.expect_keys({"certificate", "private_key", "client_ca", "crl", "min_version", "verify_depth",
                   "groups", "session_tickets", "ticket_lifetime", "ticket_key_rotation",
                   "session_cache_size"});
  tls.certificate = read_existing_file(map, "certificate", base_dir);

  const YamlNode& key_node = map.require("private_key");
  tls.private_key = as_path(key_node, map.ctx("private_key"), base_dir);
  const struct stat key_status =
      require_readable_file(tls.private_key, map.ctx("private_key"), key_node);
  if (auto s = check_private_key_mode(tls.private_key, key_status); !s) {
    fail(map.ctx("private_key"), key_node, s.error().message);
  }

  tls.client_ca = read_existing_file(map, "client_ca", base_dir);

  if (const YamlNode* crl = map.find("crl")) {
    // `crl: ""` (or an empty value) means "no CRL", so the key can stay in the file as a hint.
    const bool empty = crl->kind == YamlNode::Kind::null ||
                       (crl->kind == YamlNode::Kind::scalar && crl->scalar.empty());
    if (!empty) {
      tls.crl = as_path(*crl, map.ctx("crl"), base_dir);
      require_readable_file(tls.crl, map.ctx("crl"), *crl);
    }
  }

  if (const YamlNode* v = map.find("min_version")) {
    if (v->kind == YamlNode::Kind::scalar && v->scalar == "1.3") {
      tls.allow_tls12 = false;
    } else if (v->kind == YamlNode::Kind::scalar && v->scalar == "1.2") {
      tls.allow_tls12 = true;
    } else {
      fail(map.ctx("min_version"), *v, R"(expected "1.3" or "1.2")");
    }
  }
  if (const YamlNode* v = map.find("verify_depth")) {
    tls.verify_depth = as_count(*v, map.ctx("verify_depth"), 1, 10);
  }
  if (const YamlNode* v = map.find("groups")) tls.groups = read_groups(*v, map.ctx("groups"));
  if (const YamlNode* v = map.find("session_tickets")) {
    tls.session_tickets = as_bool(*v, map.ctx("session_tickets"));
  }
  if (const YamlNode* v = map.find("ticket_lifetime")) {
    tls.ticket_lifetime = as_duration(*v, map.ctx("ticket_lifetime"), 1s, 24h);
  }
  if (const YamlNode* v = map.find("session_cache_size")) {
    tls.session_cache_size = as_count(*v, map.ctx("session_cache_size"), 1, 1'000'000);
  }
  if (const YamlNode* v = map.find("ticket_key_rotation")) {
    tls.ticket_key_rotation = as_duration(*v, map.ctx("ticket_key_rotation"), 1s, 24h);
    warnings.push_back(located(map.ctx("ticket_key_rotation"), *v,
                               "has no effect: tickets carry no sealed state, so there are no "
                               "ticket keys to rotate (the key can be removed)"));
  }
  map.finish();
}

void read_timeouts(const YamlNode& node, const NodeContext& ctx, Timeouts& t) {
  MapReader map(node, ctx);
  map.expect_keys({"handshake", "idle", "kill_grace", "drain", "write_stall"});
  if (const YamlNode* v = map.find("handshake")) {
    t.handshake = as_duration(*v, map.ctx("handshake"), 100ms, 5min);
  }
  if (const YamlNode* v = map.find("idle")) t.idle = as_duration(*v, map.ctx("idle"), 1s, 24h);
  if (const YamlNode* v = map.find("kill_grace")) {
    t.kill_grace = as_duration(*v, map.ctx("kill_grace"), 0ms, 1min);
  }
  if (const YamlNode* v = map.find("drain")) t.drain = as_duration(*v, map.ctx("drain"), 0ms, 1min);
  if (const YamlNode* v = map.find("write_stall")) {
    t.write_stall = as_duration(*v, map.ctx("write_stall"), 100ms, 1h);
  }
  map.finish();
}

// The key a file uses for a setting that was renamed: `name`, or `old_name` (still accepted where
// users have it), never both.
const char* renamed_key(MapReader& map, const char* name, const char* old_name) {
  if (map.find(old_name) == nullptr) return name;
  if (const YamlNode* both = map.find(name)) {
    fail(map.ctx(name), *both,
         std::string(name) + " and " + old_name + " (its old name) are both given; keep one");
  }
  return old_name;
}

void read_limits(const YamlNode& node, const NodeContext& ctx, Limits& l) {
  MapReader map(node, ctx);
  map.expect_keys({"max_clients", "max_clients_per_identity", "max_handshakes", "max_line_bytes",
                   "max_pipelined", "io_threads", "blocking_threads", "hash_threads",
                   "max_children", "max_file_ops_per_identity", "max_digests_per_identity",
                   "max_hash_bytes"});
  const auto count = [&map](std::string_view key, int& out, int min, int max) {
    if (const YamlNode* v = map.find(key)) out = as_count(*v, map.ctx(key), min, max);
  };
  count("max_clients", l.max_clients, 1, kMaxCount);
  count("max_clients_per_identity", l.max_clients_per_identity, 1, kMaxCount);
  count("max_handshakes", l.max_handshakes, 1, kMaxCount);
  if (const YamlNode* v = map.find("max_line_bytes")) {
    l.max_line_bytes = as_size(*v, map.ctx("max_line_bytes"), 64, 1U << 20);
  }
  count("max_pipelined", l.max_pipelined, 0, 4096);
  count("io_threads", l.io_threads, 1, 256);
  // hash_threads is the old name (the pool runs tail and lastlog too).
  const char* blocking_key = renamed_key(map, "blocking_threads", "hash_threads");
  count(blocking_key, l.blocking_threads, 1, 256);
  count("max_children", l.max_children, 1, 4096);
  // max_digests_per_identity is the old name (it limits tail and lastlog too).
  const char* file_ops_key =
      renamed_key(map, "max_file_ops_per_identity", "max_digests_per_identity");
  count(file_ops_key, l.max_file_ops_per_identity, 1, 256);
  if (const YamlNode* v = map.find("max_hash_bytes")) {
    l.max_hash_bytes = as_size(*v, map.ctx("max_hash_bytes"), 1, std::uint64_t{1} << 50);
  }

  if (l.max_clients_per_identity > l.max_clients) {
    const YamlNode* v = map.find("max_clients_per_identity");
    fail(map.ctx("max_clients_per_identity"), v != nullptr ? *v : node,
         "max_clients_per_identity (" + std::to_string(l.max_clients_per_identity) +
             ") is larger than max_clients (" + std::to_string(l.max_clients) + ")");
  }
  // One principal may never hold every blocking thread: another principal's tail or hash must
  // always find one free (SECURITY-MATRIX I5).
  if (l.max_file_ops_per_identity >= l.blocking_threads) {
    // Point at whichever of the two keys the file gives (the per-principal one first).
    std::string_view key = file_ops_key;
    const YamlNode* v = map.find(key);
    if (v == nullptr) {
      key = blocking_key;
      v = map.find(key);
    }
    fail(map.ctx(key), v != nullptr ? *v : node,
         std::string(file_ops_key) + " (" + std::to_string(l.max_file_ops_per_identity) +
             ") must be less than " + blocking_key + " (" + std::to_string(l.blocking_threads) +
             "), so that one principal cannot occupy every blocking-work thread");
  }
  map.finish();
}

void read_lastlog(const YamlNode& node, const NodeContext& ctx,
                  const std::filesystem::path& base_dir, LastlogSettings& s) {
  MapReader map(node, ctx);
  map.expect_keys({"path", "lines", "journal_fallback"});
  // The log may be rotated away or not exist yet (journal_fallback), so it is not opened here.
  if (const YamlNode* v = map.find("path")) s.path = as_path(*v, map.ctx("path"), base_dir);
  if (const YamlNode* v = map.find("lines")) s.lines = as_count(*v, map.ctx("lines"), 1, 10'000);
  if (const YamlNode* v = map.find("journal_fallback")) {
    s.journal_fallback = as_bool(*v, map.ctx("journal_fallback"));
  }
  map.finish();
}

bool is_env_name(std::string_view name) {
  if (name.empty()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
    const bool digit = c >= '0' && c <= '9';
    if (!(alpha || (i > 0 && digit))) return false;
  }
  return true;
}

void read_exec(const YamlNode& node, const NodeContext& ctx, const std::filesystem::path& base_dir,
               ExecSettings& e) {
  MapReader map(node, ctx);
  map.expect_keys({"environment", "working_directory", "umask", "guard", "max_processes", "user"});
  if (const YamlNode* v = map.find("environment")) {
    const NodeContext list_ctx = map.ctx("environment");
    if (v->kind != YamlNode::Kind::sequence) fail(list_ctx, *v, "expected a list of NAME=value");
    e.environment.clear();
    std::vector<std::string> names;
    for (std::size_t i = 0; i < v->items.size(); ++i) {
      const YamlNode& item = v->items[i];
      std::string entry = as_string(item, list_ctx.index(i));
      const auto eq = entry.find('=');
      const std::string name = entry.substr(0, eq);
      if (eq == std::string::npos || !is_env_name(name)) {
        fail(list_ctx.index(i), item,
             "expected NAME=value with NAME matching [A-Za-z_][A-Za-z0-9_]*");
      }
      for (std::size_t j = 0; j < names.size(); ++j) {
        if (names[j] == name) {
          fail(list_ctx.index(i), item,
               "variable " + name + " is set twice (also at line " +
                   std::to_string(v->items[j].mark.line) + ")");
        }
      }
      names.push_back(name);
      e.environment.push_back(std::move(entry));
    }
  }
  if (const YamlNode* v = map.find("working_directory")) {
    e.working_directory = as_path(*v, map.ctx("working_directory"), base_dir);
    std::error_code ec;
    if (!std::filesystem::is_directory(e.working_directory, ec)) {
      fail(map.ctx("working_directory"), *v, e.working_directory.string() + " is not a directory");
    }
  }
  if (const YamlNode* v = map.find("umask")) {
    // An octal string like "0077"; YAML 1.1 would read plain 0077 as octal and 1.2 as decimal,
    // so the digits are taken as written and always read as octal.
    const std::string text = as_string(*v, map.ctx("umask"));
    bool ok = text.size() <= 4;
    unsigned value = 0;
    for (const char c : text) {
      if (c < '0' || c > '7') ok = false;
      value = value * 8 + static_cast<unsigned>(c - '0');
    }
    if (!ok || value > 0777) fail(map.ctx("umask"), *v, "expected an octal mask like \"0077\"");
    e.umask = static_cast<mode_t>(value);
  }
  if (const YamlNode* v = map.find("guard")) {
    e.guard = as_path(*v, map.ctx("guard"), base_dir);
    if (::access(e.guard.c_str(), X_OK) != 0) {
      fail(map.ctx("guard"), *v, e.guard.string() + " is not an executable program");
    }
  }
  if (const YamlNode* v = map.find("max_processes")) {
    e.max_processes = as_int(*v, map.ctx("max_processes"), 1, 1000000);
  }
  if (const YamlNode* v = map.find("user")) {
    e.user = as_string(*v, map.ctx("user"));
    Account account;
    if (const int rc = lookup_user(e.user, account); rc != 0) {
      fail(map.ctx("user"), *v, lookup_failure("user", e.user, rc));
    }
    if (account.uid != ::geteuid() && ::geteuid() != 0) {
      fail(map.ctx("user"), *v,
           "running commands as " + e.user + " needs the agent to run as root");
    }
    e.uid = account.uid;
    e.gid = account.gid;
  }
  map.finish();
}

void read_run_as(const YamlNode& node, const NodeContext& ctx, const ExecSettings& exec, RunAs& r) {
  MapReader map(node, ctx);
  map.expect_keys({"user", "group", "allow_root"});
  if (const YamlNode* v = map.find("user")) {
    r.user = as_string(*v, map.ctx("user"));
    Account account;
    if (const int rc = lookup_user(r.user, account); rc != 0) {
      fail(map.ctx("user"), *v, lookup_failure("user", r.user, rc));
    }
    if (account.uid == 0) {
      fail(map.ctx("user"), *v,
           r.user + " is root; name an unprivileged user, or drop run_as.user");
    }
    // Reloads run after the drop: then the agent already is this user.
    if (account.uid != ::geteuid() && ::geteuid() != 0) {
      fail(map.ctx("user"), *v,
           "switching to " + r.user + " needs the agent to be started as root");
    }
    r.uid = account.uid;
    r.gid = account.gid;
    // After the drop the agent cannot switch users for its commands any more.
    if (exec.uid >= 0 && exec.uid != r.uid) {
      fail(map.ctx("user"), *v,
           "exec.user (" + exec.user + ") differs from run_as.user (" + r.user +
               "): after dropping privileges the agent cannot start commands as another user");
    }
  }
  if (const YamlNode* v = map.find("group")) {
    r.group = as_string(*v, map.ctx("group"));
    if (r.user.empty()) fail(map.ctx("group"), *v, "run_as.group needs run_as.user");
    gid_t gid = 0;
    if (const int rc = lookup_group(r.group, gid); rc != 0) {
      fail(map.ctx("group"), *v, lookup_failure("group", r.group, rc));
    }
    if (gid == 0) fail(map.ctx("group"), *v, r.group + " is the root group; name another");
    r.gid = gid;
  }
  if (const YamlNode* v = map.find("allow_root")) r.allow_root = as_bool(*v, map.ctx("allow_root"));
  map.finish();
}

std::string read_log_level(const YamlNode& node, const NodeContext& ctx) {
  MapReader map(node, ctx);
  map.expect_keys({"level"});
  std::string level = "info";
  if (const YamlNode* v = map.find("level")) {
    level = as_string(*v, map.ctx("level"));
    if (level != "trace" && level != "debug" && level != "info" && level != "warn" &&
        level != "error") {
      fail(map.ctx("level"), *v, "expected one of trace, debug, info, warn, error");
    }
  }
  map.finish();
  return level;
}

// A socket path for shipping: absolute (or relative to the file), and short enough for
// sockaddr_un. It need not exist: the daemon may start after the agent.
std::filesystem::path read_socket_path(MapReader& map, const std::filesystem::path& base_dir,
                                       const std::filesystem::path& fallback) {
  const YamlNode* v = map.find("socket");
  if (v == nullptr) return fallback;
  auto path = as_path(*v, map.ctx("socket"), base_dir);
  if (path.native().size() > 107) {
    fail(map.ctx("socket"), *v,
         "socket path is " + std::to_string(path.native().size()) +
             " bytes long; a unix socket path has at most 107");
  }
  return path;
}

void read_audit_journald(const YamlNode& node, const NodeContext& ctx,
                         const std::filesystem::path& base_dir, AuditJournald& out) {
  MapReader map(node, ctx);
  map.expect_keys({"enabled", "socket"});
  if (const YamlNode* v = map.find("enabled")) out.enabled = as_bool(*v, map.ctx("enabled"));
  out.socket = read_socket_path(map, base_dir, out.socket);
  map.finish();
}

void read_audit_syslog(const YamlNode& node, const NodeContext& ctx,
                       const std::filesystem::path& base_dir, AuditSyslog& out) {
  MapReader map(node, ctx);
  map.expect_keys({"enabled", "socket", "facility", "sd_id"});
  if (const YamlNode* v = map.find("enabled")) out.enabled = as_bool(*v, map.ctx("enabled"));
  out.socket = read_socket_path(map, base_dir, out.socket);
  if (const YamlNode* v = map.find("facility")) {
    out.facility = as_string(*v, map.ctx("facility"));
    const auto code = audit::syslog_facility(out.facility);
    if (!code) {
      fail(map.ctx("facility"), *v,
           "unknown syslog facility '" + out.facility +
               "'; expected one of kern, user, mail, daemon, auth, syslog, lpr, news, uucp, "
               "cron, authpriv, ftp, local0 ... local7");
    }
    out.facility_code = *code;
  }
  if (const YamlNode* v = map.find("sd_id")) {
    out.sd_id = as_string(*v, map.ctx("sd_id"));
    if (!audit::valid_sd_id(out.sd_id)) {
      fail(map.ctx("sd_id"), *v,
           "expected a private SD-ID NAME@ENTERPRISE_NUMBER (at most 32 printable ASCII "
           "characters, no '=', ']', '\"' or space), e.g. opsagent@32473");
    }
  }
  map.finish();
}

}  // namespace

ListenAddress parse_listen_address(std::string_view text) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos) {
    throw std::invalid_argument("expected HOST:PORT, e.g. 127.0.0.1:9999 or [::1]:9999");
  }
  std::string_view host = text.substr(0, colon);
  const std::string_view port_text = text.substr(colon + 1);

  ListenAddress out;
  if (!host.empty() && host.front() == '[') {
    if (host.size() < 2 || host.back() != ']') {
      throw std::invalid_argument("unterminated '[' in IPv6 address");
    }
    host = host.substr(1, host.size() - 2);
    in6_addr addr{};
    const std::string h(host);
    if (::inet_pton(AF_INET6, h.c_str(), &addr) != 1) {
      throw std::invalid_argument("'" + h + "' is not a numeric IPv6 address");
    }
    char buf[INET6_ADDRSTRLEN];
    ::inet_ntop(AF_INET6, &addr, buf, sizeof buf);
    out.host = buf;
  } else {
    in_addr addr{};
    const std::string h(host);
    if (h.find(':') != std::string::npos) {
      throw std::invalid_argument("IPv6 addresses must be written in brackets, e.g. [::1]:9999");
    }
    // inet_pton(AF_INET) accepts only dotted-quad decimal, unlike inet_aton ("0x7f.1").
    if (::inet_pton(AF_INET, h.c_str(), &addr) != 1) {
      throw std::invalid_argument("'" + h +
                                  "' is not a numeric IPv4 address (host names are not resolved)");
    }
    char buf[INET_ADDRSTRLEN];
    ::inet_ntop(AF_INET, &addr, buf, sizeof buf);
    out.host = buf;
  }

  bool digits = !port_text.empty() && port_text.size() <= 5;
  unsigned port = 0;
  for (const char c : port_text) {
    if (c < '0' || c > '9') digits = false;
    port = port * 10 + static_cast<unsigned>(c - '0');
  }
  if (!digits || port > 65535) {
    throw std::invalid_argument("port must be a number between 0 and 65535");
  }
  out.port = static_cast<std::uint16_t>(port);
  return out;
}

void resolve_guard(AgentConfig& config) {
  if (!config.exec.guard.empty()) return;
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  config.exec.guard = self.parent_path() / "opsagent-guard";
  if (ec || ::access(config.exec.guard.c_str(), X_OK) != 0) {
    throw ConfigError(config.source.string() + ": exec.guard: " + config.exec.guard.string() +
                      " is not an executable program (set exec.guard to where opsagent-guard is "
                      "installed)");
  }
}

std::string restart_only_change(const AgentConfig& current, const AgentConfig& next) {
  if (current.listen != next.listen) return "listen";
  if (current.limits.io_threads != next.limits.io_threads) return "limits.io_threads";
  if (current.limits.blocking_threads != next.limits.blocking_threads) {
    return "limits.blocking_threads";
  }
  if (current.exec.umask != next.exec.umask) return "exec.umask";
  if (current.audit_path != next.audit_path) return "audit.path";
  if (current.audit_host != next.audit_host) return "audit.host";
  // The chain key is read once at start: a new key (or key file) needs a restart.
  if (current.audit_chain_key_file != next.audit_chain_key_file ||
      current.audit_chain_key != next.audit_chain_key) {
    return "audit.chain_key_file";
  }
  if (current.audit_sync != next.audit_sync) return "audit.sync";
  if (current.audit_sync_interval_ms != next.audit_sync_interval_ms) {
    return "audit.sync_interval_ms";
  }
  if (current.audit_journald != next.audit_journald) return "audit.journald";
  if (current.audit_syslog != next.audit_syslog) return "audit.syslog";
  if (current.run_as.uid != next.run_as.uid) return "run_as.user";
  if (current.run_as.gid != next.run_as.gid) return "run_as.group";
  if (current.metrics.listen != next.metrics.listen) return "metrics.listen";
  if (current.metrics.tls != next.metrics.tls) return "metrics.tls";
  return {};
}

AgentConfig load_agent_config(const std::filesystem::path& file) {
  const ConfigFile contents = read_config_file(file, YamlLimits{}.max_bytes);
  // agent.yaml names the policy file, so whoever may write it decides the policy too.
  check_not_writable_by_others(file, contents.status);
  const YamlNode root = parse_yaml(contents.text, file.string());

  // Relative paths are resolved against an absolute directory so that they keep their
  // meaning if the process later changes its working directory.
  std::error_code ec;
  std::filesystem::path base_dir = std::filesystem::absolute(file, ec).parent_path();
  if (ec) base_dir = file.parent_path();

  AgentConfig cfg;
  cfg.source = file;
  const NodeContext top{file.string(), ""};
  MapReader map(root, top);
  map.expect_keys({"listen", "tls", "timeouts", "limits", "lastlog", "exec", "run_as", "logging",
                   "audit", "policy", "metrics"});

  {
    const YamlNode& listen = map.require("listen");
    const NodeContext ctx = map.ctx("listen");
    if (listen.kind != YamlNode::Kind::sequence || listen.items.empty()) {
      fail(ctx, listen, "expected a non-empty list of addresses like \"127.0.0.1:9999\"");
    }
    for (std::size_t i = 0; i < listen.items.size(); ++i) {
      const YamlNode& item = listen.items[i];
      const std::string text = as_string(item, ctx.index(i));
      ListenAddress addr;
      try {
        addr = parse_listen_address(text);
      } catch (const std::invalid_argument& e) {
        fail(ctx.index(i), item, e.what());
      }
      for (std::size_t j = 0; j < cfg.listen.size(); ++j) {
        if (cfg.listen[j].host == addr.host && cfg.listen[j].port == addr.port) {
          fail(ctx.index(i), item,
               "duplicate address (same as listen[" + std::to_string(j) + "] at line " +
                   std::to_string(listen.items[j].mark.line) + ")");
        }
      }
      cfg.listen.push_back(addr);
    }
  }

  read_tls(map.require("tls"), map.ctx("tls"), base_dir, cfg.tls, cfg.warnings);
  const YamlNode* timeouts = map.find("timeouts");
  read_timeouts(timeouts != nullptr ? *timeouts : kAbsent, map.ctx("timeouts"), cfg.timeouts);
  const YamlNode* limits = map.find("limits");
  read_limits(limits != nullptr ? *limits : kAbsent, map.ctx("limits"), cfg.limits);
  const YamlNode* lastlog = map.find("lastlog");
  read_lastlog(lastlog != nullptr ? *lastlog : kAbsent, map.ctx("lastlog"), base_dir, cfg.lastlog);
  const YamlNode* exec = map.find("exec");
  read_exec(exec != nullptr ? *exec : kAbsent, map.ctx("exec"), base_dir, cfg.exec);
  const YamlNode* run_as = map.find("run_as");
  read_run_as(run_as != nullptr ? *run_as : kAbsent, map.ctx("run_as"), cfg.exec, cfg.run_as);
  const YamlNode* logging = map.find("logging");
  cfg.log_level = read_log_level(logging != nullptr ? *logging : kAbsent, map.ctx("logging"));
  if (const YamlNode* metrics = map.find("metrics")) {
    cfg.metrics = read_metrics(*metrics, map.ctx("metrics"), cfg.listen);
  }

  {
    MapReader audit(map.require("audit"), map.ctx("audit"));
    audit.expect_keys({"path", "host", "builtins", "chain_key_file", "sync", "sync_interval_ms",
                       "journald", "syslog"});
    // The audit log is created by the agent, so only its name is checked here.
    cfg.audit_path = as_path(audit.require("path"), audit.ctx("path"), base_dir);
    if (const YamlNode* v = audit.find("host")) cfg.audit_host = as_string(*v, audit.ctx("host"));
    if (const YamlNode* v = audit.find("builtins")) {
      const std::string which = as_string(*v, audit.ctx("builtins"));
      if (which != "all" && which != "denied") {
        fail(audit.ctx("builtins"), *v, "expected one of all, denied");
      }
      cfg.audit_builtins = which == "all";
    }
    if (const YamlNode* v = audit.find("chain_key_file")) {
      cfg.audit_chain_key_file = as_path(*v, audit.ctx("chain_key_file"), base_dir);
      auto key = audit::read_chain_key_file(cfg.audit_chain_key_file, true, cfg.run_as.uid);
      if (!key) fail(audit.ctx("chain_key_file"), *v, key.error().message);
      cfg.audit_chain_key = std::move(key.value());
    }
    if (const YamlNode* v = audit.find("sync")) {
      cfg.audit_sync = as_string(*v, audit.ctx("sync"));
      if (cfg.audit_sync != "none" && cfg.audit_sync != "interval" &&
          cfg.audit_sync != "every_record") {
        fail(audit.ctx("sync"), *v, "expected one of none, interval, every_record");
      }
    }
    if (const YamlNode* v = audit.find("sync_interval_ms")) {
      cfg.audit_sync_interval_ms = as_count(*v, audit.ctx("sync_interval_ms"), 1, 3'600'000);
    }
    if (const YamlNode* v = audit.find("journald")) {
      read_audit_journald(*v, audit.ctx("journald"), base_dir, cfg.audit_journald);
    }
    if (const YamlNode* v = audit.find("syslog")) {
      read_audit_syslog(*v, audit.ctx("syslog"), base_dir, cfg.audit_syslog);
    }
    audit.finish();
  }

  {
    const YamlNode& policy = map.require("policy");
    cfg.policy_path = as_path(policy, map.ctx("policy"), base_dir);
    require_readable_file(cfg.policy_path, map.ctx("policy"), policy);
  }

  map.finish();
  return cfg;
}

}  // namespace opsagent::config

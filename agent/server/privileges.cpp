#include "agent/server/privileges.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <grp.h>
#include <sstream>
#include <stdexcept>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "agent/common/errno_text.hpp"
#include "agent/common/unique_fd.hpp"

namespace opsagent::server {
namespace {

// "Uid:\t0\t0\t0\t0" -> the four numbers.
template <typename Id>
bool parse_four(std::istringstream& in, Id (&out)[4]) {
  for (Id& id : out) {
    unsigned long value = 0;
    if (!(in >> value)) return false;
    id = static_cast<Id>(value);
  }
  return true;
}

bool parse_hex(std::istringstream& in, std::uint64_t& out) {
  return static_cast<bool>(in >> std::hex >> out);
}

std::string list_groups(const std::vector<gid_t>& groups) {
  std::string out;
  for (const gid_t g : groups) out += (out.empty() ? "" : ",") + std::to_string(g);
  return out.empty() ? "none" : out;
}

// The audit log was created by root at start-up; the agent reopens it on every SIGHUP.
void give_audit_log_to(const std::filesystem::path& path, uid_t uid, gid_t gid) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    throw std::runtime_error(path.string() + ": cannot open: " + common::errno_text(errno));
  }
  const UniqueFd file(fd);
  struct stat st {};
  if (::fstat(file.get(), &st) != 0) {
    throw std::runtime_error(path.string() + ": cannot stat: " + common::errno_text(errno));
  }
  if (st.st_uid == uid) return;
  if (::fchown(file.get(), uid, gid) != 0) {
    throw std::runtime_error(path.string() + ": cannot give it to uid " + std::to_string(uid) +
                             ": " + common::errno_text(errno));
  }
}

}  // namespace

Result<Credentials> parse_credentials(const std::string& status_text) {
  Credentials c;
  bool seen_uid = false;
  bool seen_gid = false;
  bool seen_groups = false;
  bool seen_eff = false;
  bool seen_prm = false;
  std::istringstream lines(status_text);
  std::string line;
  while (std::getline(lines, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = line.substr(0, colon);
    std::istringstream in(line.substr(colon + 1));
    bool ok = true;
    if (key == "Uid") {
      ok = seen_uid = parse_four(in, c.uid);
    } else if (key == "Gid") {
      ok = seen_gid = parse_four(in, c.gid);
    } else if (key == "Groups") {
      unsigned long g = 0;
      while (in >> g) c.groups.push_back(static_cast<gid_t>(g));
      seen_groups = true;
    } else if (key == "CapEff") {
      ok = seen_eff = parse_hex(in, c.cap_effective);
    } else if (key == "CapPrm") {
      ok = seen_prm = parse_hex(in, c.cap_permitted);
    } else if (key == "CapInh") {
      ok = parse_hex(in, c.cap_inheritable);
    } else if (key == "CapAmb") {
      ok = parse_hex(in, c.cap_ambient);
    }
    if (!ok) return Error{ErrorCode::internal, "malformed status line: " + line};
  }
  if (!(seen_uid && seen_gid && seen_groups && seen_eff && seen_prm)) {
    return Error{ErrorCode::internal,
                 "status text lacks a Uid, Gid, Groups, CapEff or CapPrm line"};
  }
  return c;
}

Result<Credentials> read_credentials(const std::string& pid) {
  const std::string path = "/proc/" + pid + "/status";
  std::ifstream in(path);
  if (!in) return Error{ErrorCode::internal, "cannot read " + path};
  std::ostringstream text;
  text << in.rdbuf();
  auto c = parse_credentials(text.str());
  if (!c) return Error{ErrorCode::internal, path + ": " + c.error().message};
  return c;
}

void drop_privileges(const config::RunAs& run_as, const std::filesystem::path& audit_path) {
  if (run_as.user.empty()) return;
  const auto uid = static_cast<uid_t>(run_as.uid);
  const auto gid = static_cast<gid_t>(run_as.gid);
  if (::geteuid() != 0) {
    // Config loading refused any other user; an agent started as this user has nothing to drop.
    if (::geteuid() == uid) return;
    throw std::runtime_error("run_as.user: switching to " + run_as.user +
                             " needs the agent to be started as root");
  }
  give_audit_log_to(audit_path, uid, gid);
  // Supplementary groups first, while still root: /etc/group memberships (adm, systemd-journal)
  // are how an operator grants read access to logs without a privileged agent.
  if (::initgroups(run_as.user.c_str(), gid) != 0) {
    throw std::runtime_error("cannot set the supplementary groups of " + run_as.user + ": " +
                             common::errno_text(errno));
  }
  // gid before uid: once the uid is gone, so is the right to change the gid. glibc applies the
  // set*id calls to every thread of the process (the pools already run).
  if (::setresgid(gid, gid, gid) != 0) {
    throw std::runtime_error("cannot switch to gid " + std::to_string(gid) + ": " +
                             common::errno_text(errno));
  }
  if (::setresuid(uid, uid, uid) != 0) {
    throw std::runtime_error("cannot switch to user " + run_as.user + ": " +
                             common::errno_text(errno));
  }

  // Trust nothing: prove that the way back is closed and that no capability survived.
  if (::setuid(0) == 0 || ::setgid(0) == 0) {
    throw std::runtime_error("privileges were not dropped: could switch back to root");
  }
  const auto c = read_credentials();
  if (!c) throw std::runtime_error("cannot verify the privilege drop: " + c.error().message);
  for (int i = 0; i < 4; ++i) {
    if (c->uid[i] != uid || c->gid[i] != gid) {
      throw std::runtime_error("privileges were not dropped: /proc/self/status shows uid " +
                               std::to_string(c->uid[i]) + " gid " + std::to_string(c->gid[i]));
    }
  }
  for (const gid_t g : c->groups) {
    if (g == 0) throw std::runtime_error("privileges were not dropped: still in group 0");
  }
  if (c->cap_effective != 0 || c->cap_permitted != 0 || c->cap_ambient != 0) {
    throw std::runtime_error("privileges were not dropped: capabilities remain");
  }
  spdlog::info("dropped privileges: user {} (uid {}), group {}, supplementary groups {}",
               run_as.user, uid, gid, list_groups(c->groups));
}

std::string command_refusal(const config::AgentConfig& config) {
  if (config.run_as.allow_root || ::geteuid() != 0) return {};
  if (config.exec.uid > 0) return {};
  return "commands would run as root: set run_as.user (the agent drops to it) or exec.user in " +
         config.source.string() + ", or run_as.allow_root: true to allow it";
}

CommandUser command_user(const config::AgentConfig& config) {
  if (config.exec.uid < 0 || static_cast<uid_t>(config.exec.uid) == ::geteuid()) return {};
  return {static_cast<long>(config.exec.uid), static_cast<long>(config.exec.gid)};
}

void warn_about_root_commands(const config::AgentConfig& config) {
  if (const std::string why = command_refusal(config); !why.empty()) {
    spdlog::warn("every `run` will be refused: {}", why);
  }
}

}  // namespace opsagent::server

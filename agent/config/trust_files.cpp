#include "agent/config/trust_files.hpp"

#include <cerrno>
#include <sys/stat.h>

#include "agent/common/trusted_file.hpp"
#include "agent/config/config_error.hpp"
#include "agent/config/config_file.hpp"

namespace opsagent::config {
namespace {

void require(const Status& s) {
  if (!s) throw ConfigError(s.error().message);
}

}  // namespace

void check_tls_files(const TlsSettings& tls) {
  require(check_trusted_file(tls.certificate));
  require(check_trusted_file(tls.private_key));
  check_private_key_file(tls.private_key);
  require(check_trusted_file(tls.client_ca));
  if (!tls.crl.empty()) require(check_trusted_file(tls.crl));
}

void check_audit_file(const std::filesystem::path& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    // A link at the path is refused when the log is opened (O_NOFOLLOW); judge it there.
    if (!S_ISLNK(st.st_mode)) require(check_trusted_inode(path, st));
  } else if (errno != ENOENT) {
    require(check_trusted_file(path));  // reports why it cannot be looked at
  }
  // A missing directory is AuditLog::open's to report (it names the file it cannot create).
  std::error_code ec;
  const std::filesystem::path dir = path.has_parent_path() ? path.parent_path() : ".";
  if (std::filesystem::exists(dir, ec)) require(check_trusted_directory_of(path));
}

void check_guard_file(const std::filesystem::path& path) { require(check_trusted_file(path)); }

void check_trust_files(const AgentConfig& cfg) {
  check_tls_files(cfg.tls);
  if (!cfg.exec.guard.empty()) check_guard_file(cfg.exec.guard);
  check_audit_file(cfg.audit_path);
}

}  // namespace opsagent::config

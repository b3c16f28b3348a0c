#include "agent/common/trusted_file.hpp"

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <unistd.h>

#include "agent/common/errno_text.hpp"

namespace opsagent {
namespace {

// NOLINTNEXTLINE(cppcoreguidelines-avoid-non-const-global-variables): one process-wide setting
std::atomic<long> g_trusted_owner{-1};

Error stat_error(const std::filesystem::path& path, int err) {
  return {err == ENOENT || err == ENOTDIR ? ErrorCode::notfound : ErrorCode::denied,
          path.string() + ": cannot stat: " + common::errno_text(err)};
}

Status check_directory(const std::filesystem::path& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return stat_error(dir, errno);
  return check_trusted_inode(dir, st);
}

}  // namespace

std::string mode_text(mode_t mode) {
  char buf[8];
  (void)std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

Status check_private_key_mode(const std::filesystem::path& path, const struct stat& status) {
  if ((status.st_mode & 077) == 0) return ok_status();
  return Error{ErrorCode::denied,
               path.string() + " has mode " + mode_text(status.st_mode) +
                   "; a private key must not be accessible by group or others (chmod 600)"};
}

Status check_trusted_inode(const std::filesystem::path& path, const struct stat& status) {
  const bool directory = S_ISDIR(status.st_mode);
  const bool sticky = (status.st_mode & S_ISVTX) != 0;
  if ((status.st_mode & (S_IWGRP | S_IWOTH)) != 0 && !(directory && sticky)) {
    if (directory) {
      return Error{ErrorCode::denied,
                   path.string() + ": directory mode " + mode_text(status.st_mode) +
                       " lets group or others replace the files in it; refusing (chmod go-w)"};
    }
    return Error{ErrorCode::denied, path.string() + ": mode " + mode_text(status.st_mode) +
                                        " lets group or others write it; refusing (chmod go-w)"};
  }
  if (status.st_uid != 0 && status.st_uid != ::geteuid() &&
      static_cast<long>(status.st_uid) != g_trusted_owner.load(std::memory_order_relaxed)) {
    return Error{ErrorCode::denied, path.string() + ": owned by uid " +
                                        std::to_string(status.st_uid) +
                                        ", not by root or the agent's user; refusing"};
  }
  return ok_status();
}

void trust_owner(long uid) noexcept { g_trusted_owner.store(uid, std::memory_order_relaxed); }

Status check_trusted_directory_of(const std::filesystem::path& path) {
  const std::filesystem::path written =
      path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
  if (auto s = check_directory(written); !s) return s;
  std::error_code ec;
  const std::filesystem::path resolved = std::filesystem::canonical(path, ec);
  if (ec) return ok_status();  // not there yet (a file the agent creates): nothing to follow
  std::filesystem::path written_real = std::filesystem::canonical(written, ec);
  if (!ec && resolved.parent_path() != written_real) {
    return check_directory(resolved.parent_path());
  }
  return ok_status();
}

Status check_trusted_file(const std::filesystem::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return stat_error(path, errno);
  if (auto s = check_trusted_inode(path, st); !s) return s;
  return check_trusted_directory_of(path);
}

}  // namespace opsagent

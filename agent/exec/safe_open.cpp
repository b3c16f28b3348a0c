#include "agent/exec/safe_open.hpp"

#include <atomic>
#include <cerrno>
#include <climits>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <string>
#include <string_view>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <system_error>
#include <unistd.h>
#include <utility>
#include <vector>

namespace opsagent::exec {
namespace {

// O_NONBLOCK: opening a FIFO for reading must not wait for a writer on a pool thread.
// O_NOCTTY: a terminal device must never become our controlling terminal.
constexpr int kReadFlags = O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY;

// Set once openat2 has answered ENOSYS, so later calls go straight to the walk.
// NOLINTNEXTLINE(cppcoreguidelines-avoid-non-const-global-variables): what the kernel can do
std::atomic<bool> g_openat2_missing{false};

std::string errno_text(int err) { return std::generic_category().message(err); }

// One mapping for every open step, so both strategies report identical errors.
Error open_error(int err, const std::string& shown) {
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return {ErrorCode::notfound, "no such file: " + shown};
    case ELOOP:
      return {ErrorCode::denied, "symbolic links are not followed"};
    case ENXIO:  // a socket, or a device without a driver or terminal (/dev/tty): never a file
    case ENODEV:
      return {ErrorCode::denied, "not a regular file"};
    case EXDEV:
      return {ErrorCode::denied, "path escapes its root or crosses a mount point"};
    case EACCES:
    case EPERM:
      return {ErrorCode::denied, "permission denied"};
    case ENAMETOOLONG:
      return {ErrorCode::denied, "path is too long"};
    case EMFILE:
    case ENFILE:
      return {ErrorCode::busy, "too many open files"};
    default:
      return {ErrorCode::internal, "cannot open " + shown + ": " + errno_text(err)};
  }
}

// Splits `relative` on '/' and refuses anything that is not a plain downward name. The kernel
// (RESOLVE_BENEATH) would catch "..", but checking here keeps the walk fallback equally strict
// and gives clearer messages; "." and empty components mean the caller did not normalise.
Result<std::vector<std::string>> split_relative(const std::string& text) {
  if (text.empty()) return Error{ErrorCode::usage, "empty path"};
  if (text.find('\0') != std::string::npos) {
    return Error{ErrorCode::usage, "path contains a NUL byte"};
  }
  if (text.size() >= PATH_MAX) return Error{ErrorCode::denied, "path is too long"};
  if (text.front() == '/') return Error{ErrorCode::denied, "path escapes its root"};
  std::vector<std::string> parts;
  std::string_view rest = text;
  while (true) {
    const auto slash = rest.find('/');
    const std::string_view part = rest.substr(0, slash);
    if (part == "..") return Error{ErrorCode::denied, "path escapes its root"};
    if (part.empty() || part == ".") {
      return Error{ErrorCode::denied, "path is not in canonical form: " + text};
    }
    parts.emplace_back(part);
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  return parts;
}

// True for file systems whose "regular" files are live kernel views (/proc/<pid>/environ,
// /proc/<pid>/mem, sysfs attributes): S_ISREG says yes, but they are never log files.
bool on_pseudo_file_system(int fd) {
  struct statfs fs {};
  if (::fstatfs(fd, &fs) != 0) return true;  // cannot tell: fail closed
  switch (fs.f_type) {
    case PROC_SUPER_MAGIC:
    case SYSFS_MAGIC:
    case DEBUGFS_MAGIC:
    case TRACEFS_MAGIC:
    case SECURITYFS_MAGIC:
    case CGROUP2_SUPER_MAGIC:
    case BPF_FS_MAGIC:
      return true;
    default:
      return false;
  }
}

// Every check on the opened descriptor itself, after resolution (so no path is looked at twice).
Result<UniqueFd> check_opened(UniqueFd fd, const std::string& shown) {
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return open_error(errno, shown);
  if (!S_ISREG(st.st_mode)) return Error{ErrorCode::denied, "not a regular file"};
  if (st.st_nlink == 0) return Error{ErrorCode::notfound, "no such file: " + shown};
  // A second name could alias a file outside the policy's reach (C9).
  if (st.st_nlink > 1) return Error{ErrorCode::denied, "file has several hard links"};
  if (on_pseudo_file_system(fd.get())) return Error{ErrorCode::denied, "not a regular file"};
  return fd;
}

int retry_open(int (*open_fn)(int, const char*, int), int dir, const char* name, int flags) {
  int fd = -1;
  do {
    fd = open_fn(dir, name, flags);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

int plain_openat(int dir, const char* name, int flags) { return ::openat(dir, name, flags); }

Result<UniqueFd> walk_beneath(int root_fd, const std::vector<std::string>& parts,
                              const std::string& shown) {
  UniqueFd dir;  // invalid while we are still at the root
  for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
    const int at = dir.valid() ? dir.get() : root_fd;
    // O_PATH needs only search permission; with O_PATH, O_NOFOLLOW yields the link itself
    // instead of failing, so links are recognised by fstat below.
    UniqueFd next(retry_open(plain_openat, at, parts[i].c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!next.valid()) return open_error(errno, shown);
    struct stat st {};
    if (::fstat(next.get(), &st) != 0) return open_error(errno, shown);
    if (S_ISLNK(st.st_mode)) return open_error(ELOOP, shown);
    if (!S_ISDIR(st.st_mode)) return open_error(ENOTDIR, shown);
    dir = std::move(next);
  }
  const int at = dir.valid() ? dir.get() : root_fd;
  UniqueFd fd(retry_open(plain_openat, at, parts.back().c_str(), kReadFlags));
  if (!fd.valid()) return open_error(errno, shown);
  return check_opened(std::move(fd), shown);
}

int raw_openat2(int dir, const char* name, int flags) {
  open_how how{};
  how.flags = static_cast<std::uint64_t>(flags);
  // NO_XDEV: a file system mounted beneath an allowed root (a bind mount of /etc/shadow's
  // directory, say) is not part of what the policy granted (SECURITY-MATRIX C9).
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
  return static_cast<int>(::syscall(SYS_openat2, dir, name, &how, sizeof how));
}

// A root that cannot be used; `err` is the errno of the step that failed.
Error root_error(int err, const std::filesystem::path& root) {
  if (err == ENOENT || err == ENOTDIR) {
    return {ErrorCode::notfound, "no such directory: " + root.string()};
  }
  if (err == ELOOP) {
    return {ErrorCode::denied,
            "the root " + root.string() + " is or passes through a symbolic link; refusing"};
  }
  return open_error(err, root.string());
}

// The root comes from the policy, but the directories it names can change after the policy was
// reviewed: the root, or a directory above it, swapped for a symbolic link would move the whole
// grant somewhere else (SECURITY-MATRIX I7). So no component of it is followed through a link:
// openat2(RESOLVE_NO_SYMLINKS) from "/", or, where openat2 is missing (`walk`), one O_NOFOLLOW
// step per component from "/".
Result<UniqueFd> open_root(const std::filesystem::path& root, bool walk) {
  if (!root.is_absolute()) {
    return Error{ErrorCode::internal, "the root must be an absolute path: " + root.string()};
  }
  if (!walk && !g_openat2_missing.load(std::memory_order_relaxed)) {
    const auto open_no_links = [](int dir, const char* name, int flags) {
      open_how how{};
      how.flags = static_cast<std::uint64_t>(flags);
      how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
      return static_cast<int>(::syscall(SYS_openat2, dir, name, &how, sizeof how));
    };
    UniqueFd fd(
        retry_open(open_no_links, AT_FDCWD, root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (fd.valid()) return fd;
    if (errno != ENOSYS) return root_error(errno, root);
    g_openat2_missing.store(true, std::memory_order_relaxed);
  }
  UniqueFd dir(retry_open(plain_openat, AT_FDCWD, "/", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!dir.valid()) return root_error(errno, root);
  for (const auto& part : root.relative_path()) {
    const std::string& name = part.native();
    if (name.empty() || name == ".") continue;
    if (name == "..") return root_error(ELOOP, root);  // never produced by the policy loader
    UniqueFd next(
        retry_open(plain_openat, dir.get(), name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!next.valid()) return root_error(errno, root);
    struct stat st {};
    if (::fstat(next.get(), &st) != 0) return root_error(errno, root);
    if (S_ISLNK(st.st_mode)) return root_error(ELOOP, root);
    if (!S_ISDIR(st.st_mode)) return root_error(ENOTDIR, root);
    dir = std::move(next);
  }
  return dir;
}

struct Prepared {
  UniqueFd root;
  std::vector<std::string> parts;
  std::string shown;
};

Result<Prepared> prepare(const std::filesystem::path& root, const std::filesystem::path& relative,
                         bool walk) {
  auto parts = split_relative(relative.native());
  if (!parts) return parts.error();
  auto root_fd = open_root(root, walk);
  if (!root_fd) return root_fd.error();
  return Prepared{std::move(root_fd).value(), std::move(parts).value(), (root / relative).string()};
}

}  // namespace

Result<UniqueFd> open_beneath(const std::filesystem::path& root,
                              const std::filesystem::path& relative) {
  auto prepared = prepare(root, relative, false);
  if (!prepared) return prepared.error();
  Prepared& p = prepared.value();
  if (!g_openat2_missing.load(std::memory_order_relaxed)) {
    UniqueFd fd(retry_open(raw_openat2, p.root.get(), relative.c_str(), kReadFlags));
    if (fd.valid()) return check_opened(std::move(fd), p.shown);
    if (errno != ENOSYS) return open_error(errno, p.shown);
    g_openat2_missing.store(true, std::memory_order_relaxed);
  }
  return walk_beneath(p.root.get(), p.parts, p.shown);
}

namespace detail {
Result<UniqueFd> open_beneath_by_walk(const std::filesystem::path& root,
                                      const std::filesystem::path& relative) {
  auto prepared = prepare(root, relative, true);
  if (!prepared) return prepared.error();
  return walk_beneath(prepared->root.get(), prepared->parts, prepared->shown);
}
}  // namespace detail

Result<UniqueFd> open_log_file(const std::filesystem::path& path) {
  if (!path.is_absolute()) {
    return Error{ErrorCode::usage, "log path must be absolute: " + path.string()};
  }
  int raw = -1;
  do {
    raw = ::open(path.c_str(), kReadFlags);
  } while (raw < 0 && errno == EINTR);
  UniqueFd fd(raw);
  if (!fd.valid()) return open_error(errno, path.string());
  // The same checks as a hashed file: a log that is a hard link to a secret (I7) or a kernel
  // view such as /proc/self/environ (C10) is refused.
  return check_opened(std::move(fd), path.string());
}

}  // namespace opsagent::exec

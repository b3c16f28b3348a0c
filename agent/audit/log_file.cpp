#include "agent/audit/log_file.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/common/errno_text.hpp"

namespace opsagent::audit {

// O_NOFOLLOW: a link planted at the log path is refused, not followed. O_NONBLOCK: a FIFO planted
// there fails at once instead of blocking (it has no effect on regular files). The mode is
// passed explicitly; the process umask can only narrow it.
Result<UniqueFd> open_log_file(const std::filesystem::path& path) {
  const int fd =
      ::open(path.c_str(),
             O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY, 0640);
  if (fd < 0) {
    return Error{ErrorCode::internal,
                 "cannot open audit log " + path.string() + ": " + common::errno_text(errno)};
  }
  UniqueFd owned(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    return Error{ErrorCode::internal, "audit log " + path.string() + " is not a regular file"};
  }
  return owned;
}

}  // namespace opsagent::audit

#include "agent/common/unique_fd.hpp"

#include <unistd.h>

namespace opsagent {

void UniqueFd::reset(int fd) noexcept {
  if (fd_ >= 0) ::close(fd_);  // close(2) always releases the fd on Linux, even on EINTR
  fd_ = fd;
}

}  // namespace opsagent

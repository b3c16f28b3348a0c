#include "agent/config/config_file.hpp"

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

#include "agent/common/errno_text.hpp"
#include "agent/common/trusted_file.hpp"
#include "agent/common/unique_fd.hpp"
#include "agent/config/config_error.hpp"

namespace opsagent::config {

ConfigFile read_config_file(const std::filesystem::path& path, std::size_t max_bytes) {
  const std::string file = path.string();
  // O_NONBLOCK so that a FIFO planted in place of the file cannot hang start-up before the
  // regular-file check below.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) throw ConfigError(file + ": cannot open: " + common::errno_text(errno));
  const UniqueFd closer(fd);

  ConfigFile out;
  if (::fstat(fd, &out.status) != 0) {
    throw ConfigError(file + ": cannot stat: " + common::errno_text(errno));
  }
  if (!S_ISREG(out.status.st_mode)) throw ConfigError(file + ": not a regular file");
  if (static_cast<std::uint64_t>(out.status.st_size) > max_bytes) {
    throw ConfigError(file + ": file is larger than " + std::to_string(max_bytes) + " bytes");
  }

  // Read up to max_bytes + 1 whatever fstat said: the file may grow between the two calls.
  out.text.resize(max_bytes + 1);
  std::size_t used = 0;
  while (used < out.text.size()) {
    const ssize_t n = ::read(fd, out.text.data() + used, out.text.size() - used);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw ConfigError(file + ": cannot read: " + common::errno_text(errno));
    }
    if (n == 0) break;
    used += static_cast<std::size_t>(n);
  }
  if (used > max_bytes) {
    throw ConfigError(file + ": file is larger than " + std::to_string(max_bytes) + " bytes");
  }
  out.text.resize(used);
  return out;
}

void check_not_writable_by_others(const std::filesystem::path& path, const struct stat& status) {
  if (auto s = check_trusted_inode(path, status); !s) throw ConfigError(s.error().message);
  if (auto s = check_trusted_directory_of(path); !s) throw ConfigError(s.error().message);
}

void check_private_key_file(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) throw ConfigError(path.string() + ": cannot open: " + common::errno_text(errno));
  const UniqueFd closer(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    throw ConfigError(path.string() + ": cannot stat: " + common::errno_text(errno));
  }
  if (!S_ISREG(st.st_mode)) throw ConfigError(path.string() + ": not a regular file");
  if (auto s = check_private_key_mode(path, st); !s) throw ConfigError(s.error().message);
}

}  // namespace opsagent::config

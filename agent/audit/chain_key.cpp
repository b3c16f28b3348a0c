#include "agent/audit/chain_key.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/common/errno_text.hpp"
#include "agent/common/unique_fd.hpp"

namespace opsagent::audit {

Result<std::string> read_chain_key_file(const std::filesystem::path& path, bool strict,
                                        long owner) {
  const auto error = [&path](const std::string& problem) {
    return Error{ErrorCode::internal, path.string() + ": " + problem};
  };
  const int raw = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (raw < 0) return error(std::string("cannot open the key file: ") + common::errno_text(errno));
  const UniqueFd fd(raw);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    return error(std::string("cannot stat: ") + common::errno_text(errno));
  }
  if (!S_ISREG(st.st_mode)) return error("the key file is not a regular file");
  if (strict) {
    if ((st.st_mode & 077) != 0) {
      char mode[8];
      (void)std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
      return error(std::string("the key file has mode ") + mode +
                   "; it must not be accessible by group or others (chmod 600)");
    }
    // With a privilege drop, the run_as user must own it: a reload after the drop reads the
    // configuration, and so this file, again (as for the TLS private key).
    const long want = owner >= 0 ? owner : static_cast<long>(::geteuid());
    if (static_cast<long>(st.st_uid) != want) {
      return error("the key file is owned by uid " + std::to_string(st.st_uid) + ", not by " +
                   (owner >= 0 ? "run_as.user" : "the agent's user") + " (uid " +
                   std::to_string(want) + ")");
    }
  }
  if (st.st_size == 0) return error("the key file is empty");
  if (static_cast<std::size_t>(st.st_size) > kMaxChainKeyBytes) {
    return error("the key file is larger than 4096 bytes");
  }
  std::string key(static_cast<std::size_t>(st.st_size), '\0');
  std::size_t done = 0;
  while (done < key.size()) {
    const ssize_t n = ::read(fd.get(), key.data() + done, key.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return error(std::string("cannot read the key file: ") + common::errno_text(errno));
    if (n == 0) break;
    done += static_cast<std::size_t>(n);
  }
  key.resize(done);
  if (key.empty()) return error("the key file is empty");
  return key;
}

}  // namespace opsagent::audit

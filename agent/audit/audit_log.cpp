#include "agent/audit/audit_log.hpp"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "agent/metrics/registry.hpp"

namespace opsagent::audit {
namespace {

std::string utc_timestamp() {
  using namespace std::chrono;
  const auto now = system_clock::now();
  const auto secs = time_point_cast<seconds>(now);
  const auto micros = duration_cast<microseconds>(now - secs).count();
  const std::time_t t = system_clock::to_time_t(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  const std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char frac[16];
  std::snprintf(frac, sizeof frac, ".%06ldZ", static_cast<long>(micros));
  return std::string(buf, n) + frac;
}

}  // namespace

namespace {

// O_NOFOLLOW: a link planted at the log path is refused, not followed. O_NONBLOCK: a FIFO planted
// there fails at once instead of blocking (it has no effect on regular files). The mode is
// passed explicitly; the process umask can only narrow it.
Result<UniqueFd> open_log(const std::filesystem::path& path) {
  const int fd =
      ::open(path.c_str(),
             O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY, 0640);
  if (fd < 0) {
    return Error{ErrorCode::internal,
                 "cannot open audit log " + path.string() + ": " + std::strerror(errno)};
  }
  UniqueFd owned(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    return Error{ErrorCode::internal, "audit log " + path.string() + " is not a regular file"};
  }
  return owned;
}

}  // namespace

Result<std::unique_ptr<AuditLog>> AuditLog::open(const std::filesystem::path& path) {
  auto fd = open_log(path);
  if (!fd) return fd.error();
  return std::unique_ptr<AuditLog>(new AuditLog(path, std::move(fd.value())));
}

Status AuditLog::reopen() {
  auto fd = open_log(path_);
  if (!fd) return fd.error();
  std::lock_guard lock(mutex_);
  fd_ = std::move(fd.value());
  return ok_status();
}

Result<bool> AuditLog::reopen_if_deleted() {
  struct stat st {};
  {
    std::lock_guard lock(mutex_);
    if (::fstat(fd_.get(), &st) != 0) {
      return Error{ErrorCode::internal,
                   "cannot stat audit log " + path_.string() + ": " + std::strerror(errno)};
    }
  }
  if (st.st_nlink != 0) return false;
  if (auto status = reopen(); !status) return status.error();
  return true;
}

std::string AuditLog::encode(const nlohmann::json& record) {
  // ensure_ascii: nothing a client sends (newlines, U+2028, ANSI escapes, invalid UTF-8) can
  // split a record or act on the terminal of whoever reads the log.
  return record.dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
}

bool AuditLog::record(std::string_view event, std::initializer_list<Field> fields) noexcept {
  nlohmann::json rec;
  try {
    rec = nlohmann::json::object();
    for (const Field& f : fields) rec[f.key] = std::move(f.value);
  } catch (const std::exception&) {
    release_json(rec);
    report_unencodable(event);
    return false;
  }
  return record(event, std::move(rec));
}

bool AuditLog::record(std::string_view event, nlohmann::json fields) noexcept {
  const JsonReleaser release(fields);
  try {
    // The standard keys are set after the caller's fields so no field can overwrite them.
    if (!fields.is_object()) {
      release_json(fields);
      fields = nlohmann::json::object();
    }
    fields["event"] = std::string(event);
    fields["pid"] = static_cast<long>(::getpid());
  } catch (const std::exception&) {  // std::bad_alloc: the record cannot be built
    report_unencodable(event);
    return false;
  }

  std::lock_guard lock(mutex_);
  std::string line;
  try {
    fields["ts"] = utc_timestamp();  // under the lock, so time order and seq order agree
    fields["seq"] = seq_ + 1;
    line = encode(fields);
    line.push_back('\n');
  } catch (const std::exception&) {
    report_unencodable(event);
    return false;
  }
  ++seq_;
  // One write per record; a short write on a regular file means the disk is full. (Only
  // allocation-free calls from here on: c_str(), not string().)
  std::size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = ::write(fd_.get(), line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : ENOSPC;
      // Take a torn fragment back off the file so the next record starts on a line of its own.
      struct stat st {};
      if (done > 0 && ::fstat(fd_.get(), &st) == 0 && st.st_size >= static_cast<off_t>(done) &&
          ::ftruncate(fd_.get(), st.st_size - static_cast<off_t>(done)) != 0) {
        spdlog::critical("audit log {}: cannot remove a partial record: {}", path_.c_str(),
                         std::strerror(errno));
      }
      metrics::registry().audit_write_failures.inc();
      if (healthy_.exchange(false)) {
        spdlog::critical("audit log {} write failed: {}; refusing new commands until it recovers",
                         path_.c_str(), std::strerror(err));
      }
      return false;
    }
    done += static_cast<std::size_t>(n);
  }
  if (!healthy_.exchange(true)) spdlog::warn("audit log {} writable again", path_.c_str());
  return true;
}

void AuditLog::report_unencodable(std::string_view event) noexcept {
  try {
    spdlog::error("audit log: no memory to encode a {} record; it is lost", event);
  } catch (...) {
  }
}

}  // namespace opsagent::audit

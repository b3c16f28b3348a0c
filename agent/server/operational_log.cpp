#include "agent/server/operational_log.hpp"

#include <cstdlib>
#include <cstring>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/systemd_sink.h>
#include <spdlog/spdlog.h>

#include "agent/common/environment.hpp"

namespace opsagent::server {

bool stderr_is_journal() {
  const char* stream = common::env_var("JOURNAL_STREAM");
  if (stream == nullptr) return false;
  // "DEVICE:INODE", both decimal.
  char* end = nullptr;
  const unsigned long long dev = std::strtoull(stream, &end, 10);
  if (end == stream || *end != ':') return false;
  const char* ino_text = end + 1;
  const unsigned long long ino = std::strtoull(ino_text, &end, 10);
  if (end == ino_text || *end != '\0') return false;
  struct stat st {};
  if (::fstat(STDERR_FILENO, &st) != 0) return false;
  return static_cast<unsigned long long>(st.st_dev) == dev &&
         static_cast<unsigned long long>(st.st_ino) == ino;
}

void install_operational_log() {
  if (stderr_is_journal()) {
    // The journal stamps time and priority itself: the message alone, PRIORITY= from the level.
    auto logger = spdlog::systemd_logger_mt("opsagent", "opsagent");
    logger->set_pattern("%v");
    spdlog::set_default_logger(std::move(logger));
    return;
  }
  spdlog::set_default_logger(spdlog::stderr_color_mt("opsagent"));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
}

}  // namespace opsagent::server

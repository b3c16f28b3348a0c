// flood [bytes]: writes numbered ~100-byte lines to stdout as fast as it can until `bytes`
// (default 100 MiB) are written, then exits 0. A closed reader ends it: by SIGPIPE (default
// disposition) or, if SIGPIPE is ignored, on EPIPE with exit status 1.
#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unistd.h>

namespace {
bool write_all(const char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(STDOUT_FILENO, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;  // EPIPE or anything else: the reader is gone
    }
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}
}  // namespace

int main(int argc, char** argv) {
  std::uint64_t total = 100ULL * 1024 * 1024;
  if (argc > 1) {
    char* end = nullptr;
    total = std::strtoull(argv[1], &end, 10);
    if (end == argv[1] || *end != '\0') {
      std::fprintf(stderr, "usage: flood [bytes]\n");
      return 2;
    }
  }
  // "line " + 8 digits + " " + 85 'x' + LF = 100 bytes.
  const std::string padding(85, 'x');
  std::string batch;
  batch.reserve(64 * 1024 + 128);
  std::uint64_t written = 0;
  std::uint64_t number = 0;
  while (written < total) {
    batch.clear();
    while (batch.size() < 64 * 1024) {
      char head[32];
      std::snprintf(head, sizeof head, "line %08llu ",
                    static_cast<unsigned long long>(number++ % 100000000ULL));
      batch += head;
      batch += padding;
      batch += '\n';
    }
    const std::size_t size =
        static_cast<std::size_t>(std::min<std::uint64_t>(batch.size(), total - written));
    if (!write_all(batch.data(), size)) return 1;
    written += size;
  }
  return 0;
}

// argv-echo: describes the process it runs in as one JSON object on stdout, so integration
// tests can check what the agent handed to a child (argv, environment, cwd, umask, open
// descriptors, what stdin is, the signal state). Plain C++20, no dependencies.
#include <cstdio>
#include <cstdlib>
#include <dirent.h>
#include <initializer_list>
#include <string>
#include <string_view>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

extern char** environ;

namespace {

// Length of the well-formed UTF-8 sequence at `s`, or 0 (overlong, surrogate, > U+10FFFF,
// truncated). Invalid bytes become U+FFFD so the output stays strict JSON.
std::size_t utf8_sequence(std::string_view s) {
  const auto b = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char c = b(0);
  std::size_t n = 0;
  unsigned min = 0;
  unsigned cp = 0;
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
    min = 0x80;
    cp = c & 0x1fu;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    min = 0x800;
    cp = c & 0x0fu;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    min = 0x10000;
    cp = c & 0x07u;
  } else
    return 0;
  if (s.size() < n) return 0;
  for (std::size_t i = 1; i < n; ++i) {
    if ((b(i) & 0xc0u) != 0x80u) return 0;
    cp = (cp << 6) | (b(i) & 0x3fu);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return n;
}

std::string json_string(std::string_view s) {
  std::string out = "\"";
  while (!s.empty()) {
    const auto c = static_cast<unsigned char>(s.front());
    const std::size_t n = utf8_sequence(s);
    if (n == 0) {
      out += "\\ufffd";
      s.remove_prefix(1);
      continue;
    }
    if (n > 1) {
      out.append(s.substr(0, n));
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out.push_back(static_cast<char>(c));
    }
    s.remove_prefix(n);
  }
  out += '"';
  return out;
}

std::string json_array(const std::vector<std::string>& items) {
  std::string out = "[";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i != 0) out += ',';
    out += json_string(items[i]);
  }
  return out + "]";
}

std::string open_fds() {
  std::string out = "[";
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return "null";
  const int own = ::dirfd(dir);  // the listing's own descriptor is not the child's inheritance
  bool first = true;
  while (const dirent* e = ::readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    const int fd = std::atoi(e->d_name);
    if (fd == own) continue;
    if (!first) out += ',';
    out += std::to_string(fd);
    first = false;
  }
  ::closedir(dir);
  return out + "]";
}

const char* stdin_kind() {
  struct stat st {};
  if (::fstat(STDIN_FILENO, &st) != 0) return "closed";
  if (::isatty(STDIN_FILENO)) return "tty";
  if (S_ISFIFO(st.st_mode)) return "pipe";
  if (S_ISREG(st.st_mode)) return "file";
  struct stat null {};
  if (S_ISCHR(st.st_mode) && ::stat("/dev/null", &null) == 0 && S_ISCHR(null.st_mode) &&
      st.st_rdev == null.st_rdev) {
    return "devnull";
  }
  return "other";
}

// The signal state from /proc/self/status as an object of hex masks, e.g. {"SigIgn":
// "0000000000000000", ...}: pending, blocked, ignored and caught signals (bit N-1 is signal N).
std::string signal_state() {
  std::FILE* status = std::fopen("/proc/self/status", "r");
  if (status == nullptr) return "null";
  std::string out = "{";
  char line[512];
  while (std::fgets(line, sizeof line, status) != nullptr) {
    const std::string_view text(line);
    for (const std::string_view key : {"SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt"}) {
      if (text.substr(0, key.size()) != key || text.size() <= key.size() + 1 ||
          text[key.size()] != ':') {
        continue;
      }
      std::string_view value = text.substr(key.size() + 1);
      while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
        value.remove_prefix(1);
      }
      while (!value.empty() && (value.back() == '\n' || value.back() == ' '))
        value.remove_suffix(1);
      if (out.size() > 1) out += ',';
      out += json_string(key) + ":" + json_string(value);
    }
  }
  std::fclose(status);
  return out + "}";
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  std::vector<std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) env.emplace_back(*e);

  std::string cwd(4096, '\0');
  if (::getcwd(cwd.data(), cwd.size()) == nullptr) {
    cwd.clear();
  } else {
    cwd.resize(std::string_view(cwd.c_str()).size());
  }

  const mode_t mask = ::umask(0);  // single-threaded: reading by setting and restoring is safe
  ::umask(mask);
  char mask_text[8];
  std::snprintf(mask_text, sizeof mask_text, "%04o", static_cast<unsigned>(mask));

  const std::string fds = open_fds();
  std::string out =
      "{\"argv\":" + json_array(args) + ",\"env\":" + json_array(env) +
      ",\"cwd\":" + json_string(cwd) + ",\"umask\":\"" + mask_text + "\",\"fds\":" + fds +
      ",\"stdin\":\"" + stdin_kind() + "\",\"uid\":" + std::to_string(::getuid()) +
      ",\"gid\":" + std::to_string(::getgid()) + ",\"signals\":" + signal_state() + "}\n";
  std::fwrite(out.data(), 1, out.size(), stdout);
  return std::fflush(stdout) == 0 ? 0 : 1;
}

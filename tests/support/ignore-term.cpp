// Test helper: ignores SIGTERM (and SIGINT, SIGHUP), says so, then sleeps. Only SIGKILL ends it.
// Usage: ignore-term [marker]
#include <csignal>
#include <cstdio>
#include <unistd.h>

int main() {
  std::signal(SIGTERM, SIG_IGN);
  std::signal(SIGINT, SIG_IGN);
  std::signal(SIGHUP, SIG_IGN);
  std::printf("ignoring SIGTERM\n");
  std::fflush(stdout);
  for (int i = 0; i < 1000; ++i) ::sleep(1);
  return 0;
}

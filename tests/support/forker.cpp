// forker [marker]: forks a grandchild that stays in our process group and keeps our stdout
// open, prints "child=<own pid> grandchild=<its pid>", then both sleep 1000 s. Tests use it to
// check that the whole tree is killed, not just the direct child.
#include <cerrno>
#include <cstdio>
#include <ctime>
#include <unistd.h>

namespace {
void sleep_long() {
  timespec left{1000, 0};
  while (nanosleep(&left, &left) != 0 && errno == EINTR) {
  }
}
}  // namespace

int main() {
  std::fflush(stdout);  // nothing buffered may be written twice after fork
  const pid_t grandchild = ::fork();
  if (grandchild < 0) {
    std::perror("fork");
    return 1;
  }
  if (grandchild == 0) {
    sleep_long();
    ::_exit(0);
  }
  std::printf("child=%d grandchild=%d\n", static_cast<int>(::getpid()),
              static_cast<int>(grandchild));
  std::fflush(stdout);
  sleep_long();
  return 0;
}

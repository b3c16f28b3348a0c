// sleeper [seconds] [marker]: prints "sleeping", then sleeps (default 1000 s) and exits 0.
// The marker is unused; it only makes the process findable in /proc/PID/cmdline.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <ctime>

int main(int argc, char** argv) {
  long seconds = 1000;
  if (argc > 1) {
    char* end = nullptr;
    seconds = std::strtol(argv[1], &end, 10);
    if (end == argv[1] || *end != '\0' || seconds < 0) {
      std::fprintf(stderr, "usage: sleeper [seconds] [marker]\n");
      return 2;
    }
  }
  std::puts("sleeping");
  std::fflush(stdout);
  timespec left{static_cast<time_t>(seconds), 0};
  while (nanosleep(&left, &left) != 0 && errno == EINTR) {
  }
  return 0;
}

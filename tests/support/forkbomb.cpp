// forkbomb [marker]: a self-limiting fork bomb for the E5 test. Forks children that sleep, as
// fast as it can, until fork() fails or a safety stop of 512 children is reached; prints
// "forked=N error=ERRNO_NAME" (error=none at the safety stop), keeps its children for 2 s so
// the limit stays exhausted while the test looks, then exits (the guard kills the children).
// Every child also exits on its own after 20 s: nothing outlives a broken test for long.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <unistd.h>

int main() {
  constexpr int kSafetyStop = 512;
  int forked = 0;
  int error = 0;
  while (forked < kSafetyStop) {
    const pid_t pid = ::fork();
    if (pid < 0) {
      error = errno;
      break;
    }
    if (pid == 0) {
      ::sleep(20);
      ::_exit(0);
    }
    ++forked;
  }
  std::printf("forked=%d error=%s\n", forked, error == 0 ? "none" : ::strerrorname_np(error));
  std::fflush(stdout);
  ::sleep(2);
  return 0;
}

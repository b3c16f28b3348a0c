// Test helper: escapes its process group the way daemons do. Forks; the child calls setsid()
// (new session and group, out of reach of a group kill) and forks a grandchild that sleeps,
// keeping stdout open; the child exits, so the grandchild is orphaned. Prints
// "escaped=PID" and exits 0 at once, or, when one argument is "stay", sleeps 1000 s itself.
// Usage: escaper [stay] [marker]  (the marker is for /proc scans)
#include <cstdio>
#include <cstring>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char** argv) {
  bool stay = false;
  for (int i = 1; i < argc; ++i) stay = stay || std::strcmp(argv[i], "stay") == 0;
  int ready[2];
  if (::pipe(ready) != 0) return 2;
  const pid_t child = ::fork();
  if (child < 0) return 2;
  if (child == 0) {
    ::setsid();
    const pid_t grandchild = ::fork();
    if (grandchild == 0) {
      ::close(ready[0]);
      ::close(ready[1]);
      for (int i = 0; i < 1000; ++i) ::sleep(1);  // stdout stays open
      ::_exit(0);
    }
    std::printf("escaped=%d\n", static_cast<int>(grandchild));
    std::fflush(stdout);
    ::_exit(0);
  }
  ::close(ready[1]);
  ::waitpid(child, nullptr, 0);
  for (int i = 0; stay && i < 1000; ++i) ::sleep(1);
  return 0;
}

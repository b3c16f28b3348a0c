// agent/common text helpers: hex, quoting untrusted text, decimal parsing, /proc/PID/stat.
#include <array>
#include <csignal>
#include <cstdint>
#include <string>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "agent/common/hex.hpp"
#include "agent/common/parse_number.hpp"
#include "agent/common/proc_stat.hpp"
#include "agent/common/shown.hpp"
#include "agent/common/utf8.hpp"

namespace opsagent {
namespace {

TEST(CommonHex, EncodesEveryByteAsTwoLowerCaseDigits) {
  const std::array<unsigned char, 4> bytes{0x00, 0x0f, 0xa0, 0xff};
  EXPECT_EQ(hex_encode(bytes), "000fa0ff");
  EXPECT_EQ(hex_encode({}), "");
}

TEST(CommonShown, QuotesEscapesAndCutsUntrustedText) {
  EXPECT_EQ(shown("plain", '\'', 80), "'plain'");
  EXPECT_EQ(shown("a'b\\c", '\'', 80), "'a\\'b\\\\c'");
  EXPECT_EQ(shown(std::string("\x1b[2J\x7f\n", 6), '"', 80), "\"\\x1b[2J\\x7f\\x0a\"");
  EXPECT_EQ(shown("abcdef", '"', 3), "\"abc...\"");
  EXPECT_EQ(shown("caf\xc3\xa9", '"', 80), "\"caf\xc3\xa9\"");
}

TEST(CommonParseNumber, AcceptsOnlyAWholeDecimalThatFits) {
  EXPECT_EQ(parse_decimal<int>("42"), 42);
  EXPECT_EQ(parse_decimal<int>("-7"), -7);
  EXPECT_EQ(parse_decimal<unsigned>("-7"), std::nullopt);
  EXPECT_EQ(parse_decimal<int>(""), std::nullopt);
  EXPECT_EQ(parse_decimal<int>(" 1"), std::nullopt);
  EXPECT_EQ(parse_decimal<int>("1x"), std::nullopt);
  EXPECT_EQ(parse_decimal<int>("+1"), std::nullopt);
  EXPECT_EQ(parse_decimal<std::uint8_t>("256"), std::nullopt);
  std::string_view rest = "12 34";
  EXPECT_EQ(take_decimal<int>(rest), 12);
  EXPECT_EQ(rest, " 34");
  EXPECT_EQ(take_decimal<int>(rest), std::nullopt);
  EXPECT_EQ(rest, " 34");
}

TEST(CommonProcStat, ReadsOurOwnParentAndGroup) {
  const std::string self = std::to_string(::getpid());
  const auto stat = read_proc_stat(self.c_str());
  ASSERT_TRUE(stat.has_value());
  EXPECT_EQ(stat->parent, ::getppid());
  EXPECT_EQ(stat->group, ::getpgrp());
  EXPECT_EQ(stat->state, 'R');
  EXPECT_FALSE(stat->dying());
  EXPECT_FALSE(read_proc_stat("0").has_value());
  EXPECT_FALSE(read_proc_stat("../../etc/passwd-not-a-pid").has_value());
}

// The orphan sweep must not report a process the agent's own group SIGKILL has already reached
// (MatrixF.F2 once saw the `hang` command of a dropped session reported as an escapee).
TEST(CommonProcStat, ReadsTheSignalsPendingForAProcess) {
  sigset_t usr1;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  sigset_t before;
  ASSERT_EQ(::sigprocmask(SIG_BLOCK, &usr1, &before), 0);  // inherited by the child
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    for (;;) ::pause();
  }
  ASSERT_EQ(::sigprocmask(SIG_SETMASK, &before, nullptr), 0);
  const std::string pid = std::to_string(child);
  const auto alive = read_proc_stat(pid.c_str());
  ASSERT_TRUE(alive.has_value());
  EXPECT_EQ(alive->pending, 0u);
  EXPECT_FALSE(alive->dying());
  // Blocked, so it stays pending; sent to the thread, so it is in the field /proc shows.
  ASSERT_EQ(::syscall(SYS_tgkill, child, child, SIGUSR1), 0);
  const auto marked = read_proc_stat(pid.c_str());
  ASSERT_TRUE(marked.has_value());
  EXPECT_EQ(marked->pending, 1UL << (SIGUSR1 - 1));
  EXPECT_FALSE(marked->dying());
  // After SIGKILL the process shows a mark within moments (pending SIGKILL, exiting, zombie);
  // between taking SIGKILL off its queue and marking itself exiting it briefly shows none, which
  // is why the sweep looks twice.
  ASSERT_EQ(::kill(child, SIGKILL), 0);
  bool dying = false;
  for (int i = 0; i < 2000 && !dying; ++i) {
    const auto st = read_proc_stat(pid.c_str());
    ASSERT_TRUE(st.has_value());  // not reaped yet: at worst a zombie
    dying = st->dying();
    if (!dying) ::usleep(1000);
  }
  EXPECT_TRUE(dying);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFSIGNALED(status));
}

TEST(CommonProcStat, ASigkillPendingAZombieOrAnExitingProcessIsDying) {
  ProcStat st;
  st.state = 'S';
  EXPECT_FALSE(st.dying());
  st.pending = 1UL << (SIGKILL - 1);
  EXPECT_TRUE(st.dying());
  st.pending = 0;
  st.flags = 0x4;  // PF_EXITING
  EXPECT_TRUE(st.dying());
  st.flags = 0;
  st.state = 'Z';
  EXPECT_TRUE(st.dying());
}

TEST(CommonUtf8, RefusesOverlongSurrogatesAndTruncation) {
  std::uint32_t cp = 0;
  EXPECT_EQ(utf8_sequence("\xc3\xa9", 0, cp), 2u);
  EXPECT_EQ(cp, 0xe9u);
  EXPECT_EQ(utf8_sequence("\xc0\x80", 0, cp), 0u);
  EXPECT_EQ(utf8_sequence("\xed\xa0\x80", 0, cp), 0u);
  EXPECT_EQ(utf8_sequence("\xf4\x90\x80\x80", 0, cp), 0u);
  EXPECT_EQ(utf8_sequence("\xe2\x82", 0, cp), 0u);
}

}  // namespace
}  // namespace opsagent

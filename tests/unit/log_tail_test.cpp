#include "agent/exec/log_tail.hpp"

#include <fcntl.h>
#include <string>
#include <sys/mman.h>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>

#include "agent/common/unique_fd.hpp"

namespace opsagent::exec {
namespace {

using Lines = std::vector<std::string>;
constexpr std::size_t kBig = 1 << 20;

Lines tail(const std::string& content, std::size_t lines, std::size_t max_bytes = kBig) {
  UniqueFd fd(::memfd_create("tail_test", MFD_CLOEXEC));
  EXPECT_TRUE(fd.valid());
  EXPECT_EQ(::write(fd.get(), content.data(), content.size()),
            static_cast<ssize_t>(content.size()));
  auto r = tail_lines(fd.get(), lines, max_bytes);
  EXPECT_TRUE(r.ok()) << r.error().message;
  return r.ok() ? r.value() : Lines{"<error>"};
}

TEST(LogTail, ReturnsTheLastNLines) {
  EXPECT_EQ(tail("a\nb\nc\nd\n", 2), (Lines{"c", "d"}));
  EXPECT_EQ(tail("a\nb\nc\nd\n", 1), (Lines{"d"}));
}

TEST(LogTail, ReturnsAllLinesWhenFewerThanAsked) {
  EXPECT_EQ(tail("a\nb\n", 10), (Lines{"a", "b"}));
  EXPECT_EQ(tail("only\n", 3), (Lines{"only"}));
}

TEST(LogTail, CountsAFinalLineWithoutLf) {
  EXPECT_EQ(tail("a\nb\nc", 2), (Lines{"b", "c"}));
  EXPECT_EQ(tail("c", 2), (Lines{"c"}));
}

TEST(LogTail, ReturnsNothingForAnEmptyFileOrZeroLines) {
  EXPECT_EQ(tail("", 5), Lines{});
  EXPECT_EQ(tail("a\nb\n", 0), Lines{});
  EXPECT_EQ(tail("a\nb\n", 3, 0), Lines{});
}

TEST(LogTail, KeepsEmptyLinesAndCarriageReturns) {
  EXPECT_EQ(tail("\n", 3), (Lines{""}));
  EXPECT_EQ(tail("a\n\nb\r\n", 3), (Lines{"a", "", "b\r"}));
}

TEST(LogTail, ReturnsOnlyCompleteLinesWithinTheWindow) {
  // Window of 7 bytes: "ccc\nddd\n" minus its first byte -> "cc" is partial and dropped.
  EXPECT_EQ(tail("aaa\nbbb\nccc\nddd\n", 4, 7), (Lines{"ddd"}));
  // Window exactly covering two lines: both are complete.
  EXPECT_EQ(tail("aaa\nbbb\nccc\nddd\n", 4, 8), (Lines{"ccc", "ddd"}));
}

TEST(LogTail, CutsALineLongerThanTheWindow) {
  const std::string long_line(200, 'x');
  EXPECT_EQ(tail("short\n" + long_line + "\n", 2, 50), (Lines{std::string(49, 'x')}));
  EXPECT_EQ(tail(long_line, 1, 50), (Lines{std::string(50, 'x')}));
}

TEST(LogTail, ReadsAcrossChunkBoundaries) {
  std::string content;
  for (int i = 0; i < 20000; ++i)
    content += "line " + std::to_string(i) + " " + std::string(20, 'y') + "\n";
  const auto last = tail(content, 3000);
  ASSERT_EQ(last.size(), 3000u);
  EXPECT_EQ(last.front(), "line 17000 " + std::string(20, 'y'));
  EXPECT_EQ(last.back(), "line 19999 " + std::string(20, 'y'));

  const std::string very_long(200 * 1024, 'z');
  const auto cut = tail("head\n" + very_long + "\ntail\n", 2, 100 * 1024);
  EXPECT_EQ(cut, (Lines{"tail"}));
  const auto whole = tail("head\n" + very_long + "\ntail\n", 2, 300 * 1024);
  EXPECT_EQ(whole, (Lines{very_long, "tail"}));
}

TEST(LogTail, RefusesANonRegularFile) {
  int ends[2];
  ASSERT_EQ(::pipe2(ends, O_CLOEXEC), 0);
  UniqueFd r(ends[0]);
  UniqueFd w(ends[1]);
  auto result = tail_lines(r.get(), 3, kBig);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, ErrorCode::denied);
}

}  // namespace
}  // namespace opsagent::exec

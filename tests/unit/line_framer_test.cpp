// LineFramer: LF framing with a hard size bound (SECURITY-MATRIX B1, B2, B4, B7).

#include "agent/protocol/line_framer.hpp"

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

namespace opsagent::protocol {
namespace {

using namespace std::string_literals;

// Feeds `bytes` the way a session does: feed, drain every ready line, feed the rest. Stops early
// when the framer consumes nothing and has no line ready (it overflowed).
std::vector<std::string> feed_all(LineFramer& framer, std::string_view bytes) {
  std::vector<std::string> lines;
  while (!bytes.empty()) {
    const std::size_t used = framer.feed(bytes);
    EXPECT_LE(used, bytes.size());
    bytes.remove_prefix(used);
    bool got_line = false;
    while (auto line = framer.next_line()) {
      lines.push_back(std::move(*line));
      got_line = true;
    }
    if (used == 0 && !got_line) break;
  }
  return lines;
}

// Feeds one byte at a time, draining lines after every byte.
std::vector<std::string> feed_bytewise(LineFramer& framer, std::string_view bytes) {
  std::vector<std::string> lines;
  for (const char c : bytes) {
    if (framer.feed(std::string_view(&c, 1)) == 0) break;
    while (auto line = framer.next_line()) lines.push_back(std::move(*line));
  }
  return lines;
}

TEST(LineFramer, YieldsNothingBeforeTheLineFeed) {
  LineFramer framer(64);
  EXPECT_EQ(framer.feed("PING"), 4U);
  EXPECT_FALSE(framer.next_line().has_value());
  EXPECT_FALSE(framer.overflowed());
}

TEST(LineFramer, JoinsALineSplitAcrossSeveralFeeds) {
  LineFramer framer(64);
  EXPECT_EQ(framer.feed("ta"), 2U);
  EXPECT_FALSE(framer.next_line().has_value());
  EXPECT_EQ(framer.feed("il -n 1"), 7U);
  EXPECT_FALSE(framer.next_line().has_value());
  EXPECT_EQ(framer.feed("0 syslog\n"), 9U);
  EXPECT_EQ(framer.next_line(), std::optional<std::string>("tail -n 10 syslog"));
  EXPECT_FALSE(framer.next_line().has_value());
  EXPECT_EQ(framer.pending_bytes(), 0U);
}

TEST(LineFramer, StopsConsumingAfterEachCompleteLine) {
  LineFramer framer(64);
  const std::string_view input = "a\nbb\nccc\n";
  EXPECT_EQ(framer.feed(input), 2U);  // "a\n" only
  // Until the ready line is taken, nothing more is accepted.
  EXPECT_EQ(framer.feed(input.substr(2)), 0U);
  EXPECT_EQ(framer.next_line(), std::optional<std::string>("a"));
  EXPECT_EQ(framer.feed(input.substr(2)), 3U);
  EXPECT_EQ(framer.next_line(), std::optional<std::string>("bb"));
  EXPECT_EQ(framer.feed(input.substr(5)), 4U);
  EXPECT_EQ(framer.next_line(), std::optional<std::string>("ccc"));
  EXPECT_FALSE(framer.next_line().has_value());
}

TEST(LineFramer, SplitsSeveralLinesInOneFeedInOrder) {
  LineFramer framer(64);
  std::string pipelined;
  std::vector<std::string> expected;
  for (int i = 0; i < 50; ++i) {
    expected.push_back("PING " + std::to_string(i));
    pipelined += expected.back() + "\n";
  }
  pipelined += "partial";
  EXPECT_EQ(feed_all(framer, pipelined), expected);
  EXPECT_EQ(framer.pending_bytes(), 7U);
  EXPECT_FALSE(framer.overflowed());
}

TEST(LineFramer, YieldsEmptyLinesForConsecutiveLineFeeds) {
  LineFramer framer(64);
  EXPECT_EQ(feed_all(framer, "\n\nPING\n\n"), (std::vector<std::string>{"", "", "PING", ""}));
}

TEST(LineFramer, KeepsTheCarriageReturnForTheParser) {
  LineFramer framer(64);
  EXPECT_EQ(feed_all(framer, "PING\r\nPING\r\r\n\r\n"),
            (std::vector<std::string>{"PING\r", "PING\r\r", "\r"}));
}

TEST(LineFramer, KeepsANulByteInsideTheLineInsteadOfEndingIt) {
  LineFramer framer(64);
  const std::string line = "tail\0; rm -rf /"s;
  const auto lines = feed_all(framer, line + "\n");
  ASSERT_EQ(lines.size(), 1U);
  EXPECT_EQ(lines[0], line);
  EXPECT_EQ(lines[0].size(), 15U);
}

TEST(LineFramer, GivesTheSameLinesWhenFedOneByteAtATime) {
  LineFramer whole(64);
  LineFramer bytewise(64);
  const std::string input = "PING\r\necho 'a b'\n\nstatus\n";
  EXPECT_EQ(feed_bytewise(bytewise, input), feed_all(whole, input));
}

// B1: a line of exactly the limit is accepted, one byte more is refused, however it arrives.
constexpr std::size_t kLimit = 1024;

struct BoundaryCase {
  std::size_t length;
  bool accepted;
};
constexpr BoundaryCase kBoundaryTable[] = {
    {kLimit - 1, true},
    {kLimit, true},
    {kLimit + 1, false},
};

void expect_boundary_outcome(const LineFramer& framer, const std::vector<std::string>& lines,
                             const BoundaryCase& c) {
  if (c.accepted) {
    ASSERT_EQ(lines.size(), 1U);
    EXPECT_EQ(lines[0], std::string(c.length, 'x'));
    EXPECT_FALSE(framer.overflowed());
  } else {
    EXPECT_TRUE(lines.empty());
    EXPECT_TRUE(framer.overflowed());
  }
  EXPECT_LE(framer.pending_bytes(), kLimit);
}

TEST(LineFramer, AcceptsUpToTheLimitAndRefusesOneByteMoreInOneFeed) {
  for (const auto& c : kBoundaryTable) {
    SCOPED_TRACE("length " + std::to_string(c.length));
    LineFramer framer(kLimit);
    expect_boundary_outcome(framer, feed_all(framer, std::string(c.length, 'x') + "\n"), c);
  }
}

TEST(LineFramer, AcceptsUpToTheLimitAndRefusesOneByteMoreFedBytewise) {
  for (const auto& c : kBoundaryTable) {
    SCOPED_TRACE("length " + std::to_string(c.length));
    LineFramer framer(kLimit);
    expect_boundary_outcome(framer, feed_bytewise(framer, std::string(c.length, 'x') + "\n"), c);
  }
}

TEST(LineFramer, AcceptsUpToTheLimitAndRefusesOneByteMoreWithTheLineFeedFedLast) {
  for (const auto& c : kBoundaryTable) {
    SCOPED_TRACE("length " + std::to_string(c.length));
    LineFramer framer(kLimit);
    auto lines = feed_all(framer, std::string(c.length, 'x'));
    EXPECT_TRUE(lines.empty());
    // Overflow is detected before any LF arrives: the peer cannot make us wait for one.
    EXPECT_EQ(framer.overflowed(), !c.accepted);
    for (auto& line : feed_all(framer, "\n")) lines.push_back(std::move(line));
    expect_boundary_outcome(framer, lines, c);
  }
}

TEST(LineFramer, OverflowsOnAMebibyteWithoutLineFeedAndStaysBounded) {
  constexpr std::size_t kMiB = 1024 * 1024;
  LineFramer framer(kLimit);
  const std::string chunk(1000, 'A');
  std::size_t offered = 0;
  while (offered < kMiB && !framer.overflowed()) {
    framer.feed(chunk);
    offered += chunk.size();
    ASSERT_LE(framer.pending_bytes(), kLimit);
  }
  EXPECT_TRUE(framer.overflowed());
  // The rest of the mebibyte is not accepted at all.
  for (; offered < kMiB; offered += chunk.size()) {
    ASSERT_EQ(framer.feed(chunk), 0U);
    ASSERT_LE(framer.pending_bytes(), kLimit);
  }
  EXPECT_FALSE(framer.next_line().has_value());
}

TEST(LineFramer, RefusesAMebibyteGivenInOneFeedWithoutKeepingAnyOfIt) {
  LineFramer framer(kLimit);
  const std::string mebibyte(1024 * 1024, 'A');
  EXPECT_EQ(framer.feed(mebibyte), 0U);
  EXPECT_TRUE(framer.overflowed());
  EXPECT_LE(framer.pending_bytes(), kLimit);
}

TEST(LineFramer, StaysOverflowedEvenAfterALineFeed) {
  LineFramer framer(8);
  feed_all(framer, "123456789");
  ASSERT_TRUE(framer.overflowed());
  EXPECT_EQ(framer.feed("\nPING\n"), 0U);
  EXPECT_FALSE(framer.next_line().has_value());
  EXPECT_TRUE(framer.overflowed());
}

TEST(LineFramer, ReportsPendingBytesOfAPartialLine) {
  LineFramer framer(64);
  EXPECT_EQ(framer.pending_bytes(), 0U);
  const std::string_view partial = "tail -n 10 /var/log/sy";
  EXPECT_EQ(framer.feed(partial), partial.size());
  EXPECT_EQ(framer.pending_bytes(), partial.size());
  EXPECT_FALSE(framer.next_line().has_value());
  EXPECT_EQ(framer.feed("slog\nst"), 5U);
  EXPECT_EQ(framer.pending_bytes(), 0U);
  EXPECT_EQ(framer.next_line(), std::optional<std::string>("tail -n 10 /var/log/syslog"));
  EXPECT_EQ(framer.feed("st"), 2U);
  EXPECT_EQ(framer.pending_bytes(), 2U);
}

}  // namespace
}  // namespace opsagent::protocol

// parse_reply_line: the client's reading of what ReplyFormatter writes, text and JSON.

#include "agent/protocol/reply_parser.hpp"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "agent/protocol/command_parser.hpp"
#include "agent/protocol/reply_formatter.hpp"

namespace opsagent::protocol {
namespace {

std::string strip_lf(std::string s) {
  EXPECT_FALSE(s.empty());
  if (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

class BothModes : public ::testing::TestWithParam<Mode> {
 protected:
  ReplyFormatter fmt() const {
    ReplyFormatter f;
    f.set_mode(GetParam());
    return f;
  }
  ReplyLine round_trip_data(Channel ch, std::string_view text) const {
    std::string out;
    fmt().data(out, ch, text);
    return parse_reply_line(strip_lf(out), GetParam());
  }
};

TEST_P(BothModes, DataLinesKeepTheirChannelAndText) {
  const auto out = round_trip_data(Channel::out, "Filesystem  Size  Used");
  EXPECT_EQ(out.kind, ReplyKind::data);
  EXPECT_EQ(out.channel, Channel::out);
  EXPECT_EQ(out.text, "Filesystem  Size  Used");
  EXPECT_FALSE(out.is_final());
  const auto err = round_trip_data(Channel::err, "warning: OK ERR | ! look alike");
  EXPECT_EQ(err.kind, ReplyKind::data);
  EXPECT_EQ(err.channel, Channel::err);
  EXPECT_EQ(err.text, "warning: OK ERR | ! look alike");
}

TEST_P(BothModes, EmptyDataLineStaysEmpty) {
  const auto line = round_trip_data(Channel::out, "");
  EXPECT_EQ(line.kind, ReplyKind::data);
  EXPECT_EQ(line.text, "");
}

TEST_P(BothModes, RunSuccessCarriesExitAndDuration) {
  std::string out;
  fmt().ok(out, "done",
           {{"exit", "0", true}, {"duration_ms", "12", true}, {"output_bytes", "108", true}});
  const auto line = parse_reply_line(strip_lf(out), GetParam());
  EXPECT_EQ(line.kind, ReplyKind::ok);
  EXPECT_TRUE(line.is_final());
  EXPECT_EQ(line.text, "done");
  EXPECT_EQ(line.int_field("exit"), 0);
  EXPECT_EQ(line.int_field("duration_ms"), 12);
  EXPECT_EQ(line.int_field("output_bytes"), 108);
}

TEST_P(BothModes, FailedRunCarriesCodeMessageAndExit) {
  std::string out;
  fmt().error(out, ErrorCode::failed, "command exited with status 3",
              {{"exit", "3", true}, {"duration_ms", "5", true}, {"output_bytes", "0", true}});
  const auto line = parse_reply_line(strip_lf(out), GetParam());
  EXPECT_EQ(line.kind, ReplyKind::error);
  EXPECT_EQ(line.code, "failed");
  EXPECT_EQ(line.text, "command exited with status 3");
  EXPECT_EQ(line.int_field("exit"), 3);
}

TEST_P(BothModes, TimeoutCarriesSignal) {
  std::string out;
  fmt().error(out, ErrorCode::timeout, "command exceeded its time limit of 1s; killed",
              {{"signal", "15", true}});
  const auto line = parse_reply_line(strip_lf(out), GetParam());
  EXPECT_EQ(line.code, "timeout");
  EXPECT_EQ(line.text, "command exceeded its time limit of 1s; killed");
  EXPECT_EQ(line.int_field("signal"), 15);
  EXPECT_FALSE(line.int_field("exit").has_value());
}

TEST_P(BothModes, ErrorWithoutFields) {
  std::string out;
  fmt().error(out, ErrorCode::denied, "no role of alice allows 'run'");
  const auto line = parse_reply_line(strip_lf(out), GetParam());
  EXPECT_EQ(line.kind, ReplyKind::error);
  EXPECT_EQ(line.code, "denied");
  EXPECT_EQ(line.text, "no role of alice allows 'run'");
  EXPECT_TRUE(line.fields.empty());
}

TEST_P(BothModes, QuotedFieldValueWithSpacesIsOneField) {
  std::string out;
  fmt().ok(out, "sha256 0f1e",
           {{"bytes", "5", true}, {"path", quote_argument("/srv/my file \"x\"")}});
  const auto line = parse_reply_line(strip_lf(out), GetParam());
  EXPECT_EQ(line.text, "sha256 0f1e");
  EXPECT_EQ(line.int_field("bytes"), 5);
  ASSERT_EQ(line.fields.count("path"), 1U);
  if (GetParam() == Mode::text) {
    EXPECT_EQ(line.fields.at("path"), "/srv/my file \"x\"");
  } else {
    EXPECT_EQ(line.fields.at("path"), quote_argument("/srv/my file \"x\""));
  }
}

INSTANTIATE_TEST_SUITE_P(ReplyParser, BothModes, ::testing::Values(Mode::text, Mode::json),
                         [](const ::testing::TestParamInfo<Mode>& p) {
                           return p.param == Mode::text ? "text" : "json";
                         });

TEST(ReplyParser, ReadsTheGreeting) {
  const auto line = parse_reply_line(
      "OK opsagent 0.1.0 ready host=web1 principal=alice roles=operator,reader", Mode::text);
  EXPECT_EQ(line.kind, ReplyKind::ok);
  EXPECT_EQ(line.text, "opsagent 0.1.0 ready");
  EXPECT_EQ(line.fields.at("host"), "web1");
  EXPECT_EQ(line.fields.at("principal"), "alice");
  EXPECT_EQ(line.fields.at("roles"), "operator,reader");
}

TEST_P(BothModes, OneReplyLineReusedAcrossLinesReadsEachAsAFreshOneWould) {
  ReplyFormatter f = fmt();
  std::vector<std::string> lines(6);
  f.data(lines[0], Channel::out, "first line");
  f.error(lines[1], ErrorCode::denied, "not for you", {{"rule", "deny", false}});
  f.data(lines[2], Channel::err, "second\tline\r");
  f.data(lines[3], Channel::out, "");
  f.ok(lines[4], "done", {{"exit", "3", true}});
  lines[5] = "garbage\n";
  ReplyLine reused;
  for (const auto& l : lines) {
    const std::string line = strip_lf(l);
    parse_reply_line(line, GetParam(), reused);
    const ReplyLine fresh = parse_reply_line(line, GetParam());
    EXPECT_EQ(reused.kind, fresh.kind) << line;
    EXPECT_EQ(reused.channel, fresh.channel) << line;
    EXPECT_EQ(reused.text, fresh.text) << line;
    EXPECT_EQ(reused.code, fresh.code) << line;
    EXPECT_EQ(reused.fields, fresh.fields) << line;
  }
}

TEST(ReplyParser, BareOkAndTrailingCr) {
  EXPECT_EQ(parse_reply_line("OK", Mode::text).kind, ReplyKind::ok);
  const auto line = parse_reply_line("OK pong\r", Mode::text);
  EXPECT_EQ(line.kind, ReplyKind::ok);
  EXPECT_EQ(line.text, "pong");
}

TEST(ReplyParser, MessageWithEqualsSignInsideIsNotAField) {
  const auto line = parse_reply_line("ERR unknown command not found: a=b (try help)", Mode::text);
  EXPECT_EQ(line.code, "unknown");
  EXPECT_EQ(line.text, "command not found: a=b (try help)");
  EXPECT_TRUE(line.fields.empty());
}

TEST(ReplyParser, AnythingElseIsInvalid) {
  for (const char* bad : {"", "hello", "OKAY", "ERR", "ERR ", "|x", "!x", "ok pong"}) {
    EXPECT_EQ(parse_reply_line(bad, Mode::text).kind, ReplyKind::invalid) << bad;
  }
  for (const char* bad : {"", "{", "[]", R"({"type":"banana"})", R"({"type":"stdout"})",
                          R"({"type":"error"})", R"({"line":"x"})", "| text"}) {
    EXPECT_EQ(parse_reply_line(bad, Mode::json).kind, ReplyKind::invalid) << bad;
  }
}

TEST(ReplyParser, InvalidLinesAreSanitizedForDisplay) {
  const auto line = parse_reply_line("\x1b[31mred", Mode::text);
  EXPECT_EQ(line.kind, ReplyKind::invalid);
  EXPECT_EQ(line.text.find('\x1b'), std::string::npos);
}

TEST(ReplyParser, IntFieldRejectsNonNumbers) {
  const auto line =
      parse_reply_line("OK done exit=abc duration_ms=-4 big=99999999999999999999", Mode::text);
  EXPECT_FALSE(line.int_field("exit").has_value());
  EXPECT_EQ(line.int_field("duration_ms"), -4);
  EXPECT_FALSE(line.int_field("big").has_value());
  EXPECT_FALSE(line.int_field("missing").has_value());
}

}  // namespace
}  // namespace opsagent::protocol

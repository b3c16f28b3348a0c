// parse_command / quote_argument: one line -> verb + args (SECURITY-MATRIX B2, B3, B4, B6, B9).

#include "agent/protocol/command_parser.hpp"

#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

namespace opsagent::protocol {
namespace {

using namespace std::string_literals;
using Args = std::vector<std::string>;

// Parses a line that must be accepted; reports the parser's message otherwise.
Command parse_ok(std::string_view line) {
  auto result = parse_command(line);
  EXPECT_TRUE(result.ok()) << "line rejected: " << (result.ok() ? "" : result.error().message);
  return result.ok() ? std::move(result).value() : Command{"<rejected>", {}};
}

// Parses a line that must be refused with ErrorCode::usage; returns the message.
std::string parse_error(std::string_view line) {
  auto result = parse_command(line);
  EXPECT_FALSE(result.ok()) << "line accepted, verb '" << (result.ok() ? result->verb : "") << "'";
  if (result.ok()) return {};
  EXPECT_EQ(result.error().code, ErrorCode::usage);
  return result.error().message;
}

TEST(CommandParser, SplitsAVerbAndItsArguments) {
  const auto cmd = parse_ok("tail -n 10 syslog");
  EXPECT_EQ(cmd.verb, "tail");
  EXPECT_EQ(cmd.args, (Args{"-n", "10", "syslog"}));
}

// B2: a NUL must never end the line early (tail\0; rm ... would otherwise look like "tail").
TEST(CommandParser, RejectsANulInsideTheLineInsteadOfTruncating) {
  const std::string message = parse_error("tail\0; rm -rf /"s);
  EXPECT_NE(message.find("U+0000"), std::string::npos) << message;
  EXPECT_NE(message.find("byte 5"), std::string::npos) << message;
  parse_error("\0"s);
  parse_error("PING\0"s);
  parse_error("PING\0\r"s);
}

// B3: everything that is not clean, printable UTF-8 is refused, and the message says where.
struct RejectedBytes {
  const char* what;
  std::string line;
  std::string expected_in_message;
};

TEST(CommandParser, RejectsInvalidUtf8AndControlCharactersNamingTheByte) {
  const std::vector<RejectedBytes> table = {
      {"lone continuation byte", "echo \x80", "invalid UTF-8 at byte 6"},
      {"0xFF is never UTF-8", "echo a\xFF", "invalid UTF-8 at byte 7"},
      {"0xFE is never UTF-8", "\xFE", "invalid UTF-8 at byte 1"},
      {"lead byte F8 (5-byte form)", "echo \xF8\x88\x80\x80\x80", "invalid UTF-8 at byte 6"},
      {"overlong '/' C0 AF",
       "cat ..\xC0\xAF"
       "etc",
       "invalid UTF-8 at byte 7"},
      {"overlong NUL C0 80", "echo \xC0\x80", "invalid UTF-8 at byte 6"},
      {"overlong C1 BF", "echo \xC1\xBF", "invalid UTF-8 at byte 6"},
      {"overlong 3-byte '/' E0 80 AF", "echo \xE0\x80\xAF", "invalid UTF-8 at byte 6"},
      {"overlong 4-byte '/' F0 80 80 AF", "echo \xF0\x80\x80\xAF", "invalid UTF-8 at byte 6"},
      {"lone high surrogate ED A0 80", "echo \xED\xA0\x80", "invalid UTF-8 at byte 6"},
      {"lone low surrogate ED BF BF", "echo \xED\xBF\xBF", "invalid UTF-8 at byte 6"},
      {"above U+10FFFF", "echo \xF4\x90\x80\x80", "invalid UTF-8 at byte 6"},
      {"truncated 3-byte sequence at end", "echo \xE6\x97", "invalid UTF-8 at byte 6"},
      {"truncated sequence before a space", "echo \xE6\x97 x", "invalid UTF-8 at byte 6"},
      {"C0 control SOH", "echo \x01", "U+0001 at byte 6"},
      {"backspace", "echo abc\bx", "U+0008 at byte 9"},
      {"TAB is not a separator", "echo\tx", "U+0009 at byte 5"},
      {"vertical tab", "echo \x0B", "U+000B at byte 6"},
      {"form feed", "echo \x0C", "U+000C at byte 6"},
      {"ANSI escape sequence", "echo \x1B[2J", "U+001B at byte 6"},
      {"unit separator", "echo \x1F", "U+001F at byte 6"},
      {"DEL", "echo \x7F", "U+007F at byte 6"},
      {"C1 control NEL U+0085", "echo \xC2\x85", "U+0085 at byte 6"},
      {"C1 control CSI U+009B",
       "echo \xC2\x9B"
       "31m",
       "U+009B at byte 6"},
      {"C1 control U+0080", "\xC2\x80", "U+0080 at byte 1"},
      {"C1 control U+009F", "echo \xC2\x9F", "U+009F at byte 6"},
  };
  for (const auto& row : table) {
    SCOPED_TRACE(row.what);
    const std::string message = parse_error(row.line);
    EXPECT_NE(message.find(row.expected_in_message), std::string::npos) << message;
  }
}

TEST(CommandParser, AcceptsValidMultibyteUtf8) {
  const auto cmd = parse_ok("echo caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x8E\x89 \xC2\xA0x");
  EXPECT_EQ(cmd.verb, "echo");
  EXPECT_EQ(cmd.args,
            (Args{"caf\xC3\xA9", "\xE6\x97\xA5\xE6\x9C\xAC", "\xF0\x9F\x8E\x89", "\xC2\xA0x"}));
}

TEST(CommandParser, AcceptsTheEdgesOfTheValidUtf8Ranges) {
  const std::vector<std::string> valid = {
      "\xC2\xA0",          // U+00A0, first code point after the C1 block
      "\xDF\xBF",          // U+07FF, last 2-byte
      "\xE0\xA0\x80",      // U+0800, first 3-byte
      "\xED\x9F\xBF",      // U+D7FF, just below the surrogates
      "\xEE\x80\x80",      // U+E000, just above the surrogates
      "\xEF\xBF\xBD",      // U+FFFD
      "\xF0\x90\x80\x80",  // U+10000, first 4-byte
      "\xF4\x8F\xBF\xBF",  // U+10FFFF, the last code point
  };
  for (const auto& arg : valid) {
    SCOPED_TRACE(arg);
    EXPECT_EQ(parse_ok("echo " + arg).args, (Args{arg}));
  }
}

// B4: LF ends a line (the framer), exactly one CR before it is forgiven, any other CR is refused.
TEST(CommandParser, StripsExactlyOneTrailingCarriageReturn) {
  const auto cmd = parse_ok("PING\r");
  EXPECT_EQ(cmd.verb, "PING");
  EXPECT_TRUE(cmd.args.empty());
  EXPECT_EQ(parse_ok("echo a\r").args, (Args{"a"}));
  EXPECT_EQ(parse_ok("\r").verb, "");
}

TEST(CommandParser, RejectsASecondTrailingCarriageReturn) {
  const std::string message = parse_error("PING\r\r");
  EXPECT_NE(message.find("carriage return"), std::string::npos) << message;
  EXPECT_NE(message.find("byte 5"), std::string::npos) << message;
  parse_error("\r\r");
}

TEST(CommandParser, RejectsABareCarriageReturnInsideTheLine) {
  const std::string message = parse_error("echo a\rPING");
  EXPECT_NE(message.find("carriage return"), std::string::npos) << message;
  EXPECT_NE(message.find("byte 7"), std::string::npos) << message;
  parse_error("\rPING");
  parse_error("echo a\rb\r");
}

// B6: blank lines are a no-op, spaces separate, nothing else does, and nothing is folded.
TEST(CommandParser, TreatsEmptyAndBlankLinesAsAnEmptyVerb) {
  for (const std::string line : {"", " ", "     ", "  \r"}) {
    SCOPED_TRACE("'" + line + "'");
    const auto cmd = parse_ok(line);
    EXPECT_EQ(cmd.verb, "");
    EXPECT_TRUE(cmd.args.empty());
  }
}

// An empty quoted first word is the verb (an unknown one), not a gap before it: `"" ping` must
// never be taken for `ping`.
TEST(CommandParser, KeepsAnEmptyQuotedFirstWordAsTheVerb) {
  auto cmd = parse_ok(R"("" ping)");
  EXPECT_EQ(cmd.verb, "");
  EXPECT_EQ(cmd.args, (Args{"ping"}));
  cmd = parse_ok("'' ");
  EXPECT_EQ(cmd.verb, "");
  EXPECT_TRUE(cmd.args.empty());
}

TEST(CommandParser, TreatsRunsOfSpacesAsOneSeparator) {
  const auto cmd = parse_ok("   tail    -n  10   syslog   ");
  EXPECT_EQ(cmd.verb, "tail");
  EXPECT_EQ(cmd.args, (Args{"-n", "10", "syslog"}));
}

TEST(CommandParser, RejectsATabEvenWhereASpaceWouldDo) {
  parse_error("tail\t-n 10");
  parse_error("\t");
  parse_error("PING\t");
}

TEST(CommandParser, DoesNotTreatUnicodeSpacesAsSeparators) {
  // NBSP (U+00A0) and IDEOGRAPHIC SPACE (U+3000) belong to the token they are in.
  EXPECT_EQ(parse_ok("PING\xC2\xA0x").verb, "PING\xC2\xA0x");
  EXPECT_EQ(parse_ok("PING\xE3\x80\x80x").verb, "PING\xE3\x80\x80x");
  const auto cmd = parse_ok(
      "echo a\xC2\xA0"
      "b c\xE3\x80\x80"
      "d");
  EXPECT_EQ(cmd.verb, "echo");
  EXPECT_EQ(cmd.args, (Args{"a\xC2\xA0"
                            "b",
                            "c\xE3\x80\x80"
                            "d"}));
  EXPECT_EQ(parse_ok("\xC2\xA0").verb, "\xC2\xA0");  // not a blank line
}

TEST(CommandParser, KeepsTheCaseOfTheVerbExactly) {
  for (const std::string verb : {"PING", "ping", "Ping", "pInG", "\xC3\x89TAT", "\xC3\xA9tat"}) {
    SCOPED_TRACE(verb);
    EXPECT_EQ(parse_ok(verb + " Arg").verb, verb);
    EXPECT_EQ(parse_ok(verb + " Arg").args, (Args{"Arg"}));
  }
}

// B9: the only quoting is the protocol's own; shell metacharacters are plain bytes.
struct QuotingCase {
  const char* line;
  Args args;
};

TEST(CommandParser, UnquotesArgumentsAsTheProtocolDefines) {
  const std::vector<QuotingCase> table = {
      {R"(echo "hello world")", {"hello world"}},
      {R"(echo 'hello world')", {"hello world"}},
      {R"(echo "a\"b")", {R"(a"b)"}},
      {R"(echo "a\\b")", {R"(a\b)"}},
      {R"(echo "\\\"")", {R"(\")"}},
      {R"(echo "a\nb")", {R"(a\nb)"}},  // \n is not an escape: both bytes kept
      {R"(echo "a\'b")", {R"(a\'b)"}},  // nor is \'
      {R"(echo 'a\"b')", {R"(a\"b)"}},  // no escapes inside single quotes
      {R"(echo 'a\\b')", {R"(a\\b)"}},
      {R"(echo 'say "hi"')", {R"(say "hi")"}},
      {R"(echo "it's")", {"it's"}},
      {R"(echo "" '')", {"", ""}},
      {R"(echo a"b"c)", {R"(a"b"c)"}},  // quotes inside a bare token are literal
      {R"(echo a'b)", {"a'b"}},
      {R"(echo a\ b)", {R"(a\)", "b"}},  // no backslash escapes outside double quotes
      {R"(echo "  lead and trail  ")", {"  lead and trail  "}},
      {R"("PING" x)", {"x"}},
  };
  for (const auto& row : table) {
    SCOPED_TRACE(row.line);
    EXPECT_EQ(parse_ok(row.line).args, row.args);
  }
  EXPECT_EQ(parse_ok(R"("PING" x)").verb, "PING");
}

TEST(CommandParser, KeepsShellMetacharactersLiteral) {
  const auto cmd = parse_ok("echo $HOME `id` $(id) a;b ; | && > < * ~ ${IFS} !! #x");
  EXPECT_EQ(cmd.args, (Args{"$HOME", "`id`", "$(id)", "a;b", ";", "|", "&&", ">", "<", "*", "~",
                            "${IFS}", "!!", "#x"}));
  EXPECT_EQ(parse_ok(R"(echo "$(id); `id` $HOME")").args, (Args{"$(id); `id` $HOME"}));
  EXPECT_EQ(parse_ok("echo '$HOME'").args, (Args{"$HOME"}));
}

TEST(CommandParser, RejectsAnUnterminatedQuote) {
  const std::vector<std::pair<std::string, std::string>> table = {
      {R"(echo "abc)", "byte 6"},   {R"(echo 'abc)", "byte 6"},     {R"(echo ")", "byte 6"},
      {R"(echo "abc\")", "byte 6"},  // the closing quote is escaped
      {R"(echo "a\")", "byte 6"},   {R"(echo ok "x 'y)", "byte 9"}, {R"(")", "byte 1"},
  };
  for (const auto& [line, where] : table) {
    SCOPED_TRACE(line);
    const std::string message = parse_error(line);
    EXPECT_NE(message.find("unterminated quote"), std::string::npos) << message;
    EXPECT_NE(message.find(where), std::string::npos) << message;
  }
}

TEST(CommandParser, RejectsAClosingQuoteFollowedByAnythingButASpace) {
  const std::vector<std::pair<std::string, std::string>> table = {
      {R"(echo "abc"def)", "byte 11"},
      {R"(echo 'it''s')", "byte 10"},
      {R"(echo "a""b")", "byte 9"},
      {R"(echo ""x)", "byte 8"},
  };
  for (const auto& [line, where] : table) {
    SCOPED_TRACE(line);
    const std::string message = parse_error(line);
    EXPECT_NE(message.find("closing quote"), std::string::npos) << message;
    EXPECT_NE(message.find(where), std::string::npos) << message;
  }
  // A trailing CR is not "anything": it is stripped first.
  EXPECT_EQ(parse_ok("echo \"abc\"\r").args, (Args{"abc"}));
}

TEST(CommandParser, LeavesPlainArgumentsUnquoted) {
  EXPECT_EQ(quote_argument("syslog"), "syslog");
  EXPECT_EQ(quote_argument("-n"), "-n");
  EXPECT_EQ(quote_argument("$HOME"), "$HOME");
  EXPECT_EQ(quote_argument(""), R"("")");
  EXPECT_EQ(quote_argument("a b"), R"("a b")");
  EXPECT_EQ(quote_argument(R"(a"b\c)"), R"("a\"b\\c")");
}

TEST(CommandParser, RoundTripsQuotedArgumentsThroughTheParser) {
  const Args tricky = {
      "plain",
      "",
      " ",
      "   ",
      "two words",
      " leading",
      "trailing ",
      "a  b",
      R"(")",
      "'",
      R"("")",
      "''",
      R"(a"b)",
      "a'b",
      "it's \"quoted\"",
      R"(\)",
      R"(\\)",
      R"(back\slash\)",
      R"(\")",
      R"("\)",
      R"('\'')",
      "$HOME",
      "`id`",
      "a;b",
      "$(rm -rf /)",
      "--flag=x y",
      "caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x8E\x89",
      "nbsp\xC2\xA0inside",
  };
  for (const auto& arg : tricky) {
    SCOPED_TRACE("argument [" + arg + "] quoted as [" + quote_argument(arg) + "]");
    const auto cmd = parse_ok("echo " + quote_argument(arg));
    EXPECT_EQ(cmd.verb, "echo");
    EXPECT_EQ(cmd.args, (Args{arg}));
  }
  // All of them on one line, in order.
  std::string line = "echo";
  for (const auto& arg : tricky) line += " " + quote_argument(arg);
  EXPECT_EQ(parse_ok(line).args, tricky);
  EXPECT_EQ(parse_ok(line + "\r").args, tricky);
}

}  // namespace
}  // namespace opsagent::protocol

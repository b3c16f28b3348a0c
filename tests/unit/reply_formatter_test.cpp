// ReplyFormatter / sanitize_line: text framing that cannot be forged, and one-object JSON lines.

#include "agent/protocol/reply_formatter.hpp"

#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "agent/common/utf8.hpp"

namespace opsagent::protocol {
namespace {

using namespace std::string_literals;
using nlohmann::json;

constexpr std::string_view kFffd = "\xEF\xBF\xBD";

std::vector<std::string> split_lines(std::string_view out) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < out.size()) {
    const auto lf = out.find('\n', start);
    if (lf == std::string_view::npos) {
      lines.emplace_back(out.substr(start));
      break;
    }
    lines.emplace_back(out.substr(start, lf - start));
    start = lf + 1;
  }
  return lines;
}

// True when no byte is a control other than TAB (DEL counts as a control).
bool has_no_controls(std::string_view s) {
  for (const char c : s) {
    const auto b = static_cast<unsigned char>(c);
    if ((b < 0x20 && b != '\t') || b == 0x7F) return false;
  }
  return true;
}

// Parses a JSON-mode reply that must be exactly one LF-terminated line.
json parse_one_json_line(const std::string& out) {
  EXPECT_FALSE(out.empty());
  EXPECT_EQ(out.back(), '\n');
  EXPECT_EQ(out.find('\n'), out.size() - 1) << "more than one line: " << out;
  EXPECT_TRUE(has_no_controls(out.substr(0, out.size() - 1))) << out;
  return json::parse(out);  // throws (and fails the test) on invalid JSON
}

TEST(ReplyFormatter, StartsInTextMode) {
  ReplyFormatter fmt;
  EXPECT_EQ(fmt.mode(), Mode::text);
  fmt.set_mode(Mode::json);
  EXPECT_EQ(fmt.mode(), Mode::json);
}

TEST(ReplyFormatter, PrefixesStdoutAndStderrDataLines) {
  const ReplyFormatter fmt;
  std::string out;
  fmt.data(out, Channel::out, "hello");
  fmt.data(out, Channel::err, "warning: x");
  fmt.data(out, Channel::out, "");
  EXPECT_EQ(out, "| hello\n! warning: x\n| \n");
}

TEST(ReplyFormatter, PrefixesAChildLineThatLooksLikeAFinalLine) {
  const ReplyFormatter fmt;
  std::string out;
  fmt.data(out, Channel::out, "OK fake");
  fmt.data(out, Channel::err, "ERR denied fake");
  EXPECT_EQ(out, "| OK fake\n! ERR denied fake\n");
}

TEST(ReplyFormatter, NeverLetsADataLineStartWithOkOrErr) {
  const ReplyFormatter fmt;
  const std::vector<std::string> forged = {
      "OK",
      "OK exit=0",
      "ERR denied no",
      "\nOK injected",
      "x\nOK injected",
      "x\r\nERR internal injected",
      "\rOK overwrite the terminal line",
      "\x1B[2K\rOK erased",
      "x\xC2\x85OK after NEL",
      "x\xE2\x80\xA8OK after U+2028",
      "\0OK"s,
  };
  for (const auto channel : {Channel::out, Channel::err}) {
    for (const auto& line : forged) {
      SCOPED_TRACE(line);
      std::string out;
      fmt.data(out, channel, line);
      const auto lines = split_lines(out);
      ASSERT_EQ(lines.size(), 1U) << out;
      EXPECT_EQ(out.back(), '\n');
      EXPECT_EQ(lines[0].rfind(channel == Channel::out ? "| " : "! ", 0), 0U) << out;
      EXPECT_EQ(out.find('\r'), std::string::npos) << out;
      EXPECT_TRUE(has_no_controls(lines[0])) << out;
    }
  }
}

struct SanitizeCase {
  const char* what;
  std::string input;
  std::string expected;
};

TEST(ReplyFormatter, SanitizesControlsAndInvalidUtf8) {
  const std::vector<SanitizeCase> table = {
      {"plain ASCII", "tail -n 10", "tail -n 10"},
      {"empty", "", ""},
      {"TAB kept for tabular output", "a\tb", "a\tb"},
      {"LF", "a\nb", R"(a\x0Ab)"},
      {"CR", "a\rb", R"(a\x0Db)"},
      {"NUL", "a\0b"s, R"(a\x00b)"},
      {"ANSI escape", "\x1B[31mred", R"(\x1B[31mred)"},
      {"BEL and BS", "\a\b", R"(\x07\x08)"},
      {"DEL", "x\x7F", R"(x\x7F)"},
      {"C1 NEL",
       "a\xC2\x85"
       "b",
       R"(a\u0085b)"},
      {"C1 CSI",
       "\xC2\x9B"
       "31m",
       R"(\u009B31m)"},
      {"C1 U+0080", "\xC2\x80", R"(\u0080)"},
      {"bidi RLO (Trojan Source)",
       "abc\xE2\x80\xAE"
       "cod.exe",
       R"(abc\u202Ecod.exe)"},
      {"bidi LRE..PDF", "\xE2\x80\xAA\xE2\x80\xAC", R"(\u202A\u202C)"},
      {"bidi LRI..PDI", "\xE2\x81\xA6x\xE2\x81\xA9", R"(\u2066x\u2069)"},
      {"neighbours of bidi controls kept", "\xE2\x80\xA9\xE2\x80\xAF\xE2\x81\xAA",
       "\xE2\x80\xA9\xE2\x80\xAF\xE2\x81\xAA"},
      {"valid UTF-8 kept", "caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x8E\x89",
       "caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x8E\x89"},
      {"NBSP kept",
       "a\xC2\xA0"
       "b",
       "a\xC2\xA0"
       "b"},
      {"invalid byte FF",
       "a\xFF"
       "b",
       "a" + std::string(kFffd) + "b"},
      {"lone continuation", "\x80", std::string(kFffd)},
      {"overlong C0 AF", "\xC0\xAF", std::string(kFffd) + std::string(kFffd)},
      {"lone surrogate ED A0 80", "\xED\xA0\x80",
       std::string(kFffd) + std::string(kFffd) + std::string(kFffd)},
      {"truncated at end", "ok\xE6\x97", "ok" + std::string(kFffd) + std::string(kFffd)},
      {"above U+10FFFF", "\xF4\x90\x80\x80",
       std::string(kFffd) + std::string(kFffd) + std::string(kFffd) + std::string(kFffd)},
      {"backslash itself kept", R"(a\x0Ab)", R"(a\x0Ab)"},
  };
  for (const auto& row : table) {
    SCOPED_TRACE(row.what);
    EXPECT_EQ(sanitize_line(row.input), row.expected);
  }
}

TEST(ReplyFormatter, SanitizesEveryByteValueToPrintableText) {
  for (int b = 0; b < 256; ++b) {
    const std::string input = "x" + std::string(1, static_cast<char>(b)) + "y";
    const std::string out = sanitize_line(input);
    EXPECT_TRUE(has_no_controls(out) || b == '\t') << "byte " << b << " -> " << out;
    EXPECT_EQ(out.find('\n'), std::string::npos) << "byte " << b;
    EXPECT_EQ(out.find('\r'), std::string::npos) << "byte " << b;
  }
}

// The byte-at-a-time escaping sanitize_line had before its plain-run fast path (issue 13): the
// fast path must give exactly the same text.
std::string reference_sanitize(std::string_view bytes) {
  std::string out;
  std::size_t i = 0;
  while (i < bytes.size()) {
    const auto b0 = static_cast<unsigned char>(bytes[i]);
    if (b0 == '\t' || (b0 >= 0x20 && b0 < 0x7F)) {
      out.push_back(static_cast<char>(b0));
      ++i;
    } else if (b0 < 0x20 || b0 == 0x7F) {
      out += fmt::format("\\x{:02X}", b0);
      ++i;
    } else {
      std::uint32_t cp = 0;
      const std::size_t len = utf8_sequence(bytes, i, cp);
      if (len <= 1) {
        out += kFffd;
        ++i;
        continue;
      }
      const bool bidi = (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069);
      if (cp <= 0x9F || bidi) {
        out += fmt::format("\\u{:04X}", cp);
      } else {
        out.append(bytes.substr(i, len));
      }
      i += len;
    }
  }
  return out;
}

TEST(ReplyFormatter, SanitizesMixedTextExactlyLikeTheByteByByteReference) {
  const std::vector<std::string> pieces = {"plain text ",
                                           "\t",
                                           "\x01",
                                           "\x1B[31m",
                                           "\x7F",
                                           "caf\xC3\xA9",
                                           "\xC2\x85",
                                           "\xE2\x80\xAE",
                                           "\xF0\x9F\x98\x80",
                                           "\xFF",
                                           "\xC3",
                                           "~}|{",
                                           "0123456789abcdef",
                                           " ",
                                           "\x1F"};
  std::mt19937 rng(13);  // fixed: the same 2,000 lines every run
  std::uniform_int_distribution<std::size_t> pick(0, pieces.size() - 1);
  std::uniform_int_distribution<int> count(0, 24);
  for (int n = 0; n < 2000; ++n) {
    std::string line;
    for (int k = count(rng); k > 0; --k) line += pieces[pick(rng)];
    ASSERT_EQ(sanitize_line(line), reference_sanitize(line)) << "line " << n;
    std::string appended = "prefix";
    sanitize_append(appended, line);
    ASSERT_EQ(appended, "prefix" + reference_sanitize(line)) << "line " << n;
  }
}

TEST(ReplyFormatter, FormatsTheFinalOkLine) {
  const ReplyFormatter fmt;
  std::string out;
  fmt.ok(out, "done", {{"exit", "0", true}, {"bytes", "12", true}, {"name", "syslog"}});
  EXPECT_EQ(out, "OK done exit=0 bytes=12 name=syslog\n");
  out.clear();
  fmt.ok(out, "");
  EXPECT_EQ(out, "OK\n");
  out.clear();
  fmt.ok(out, "", {{"exit", "0", true}});
  EXPECT_EQ(out, "OK exit=0\n");
}

TEST(ReplyFormatter, FormatsTheFinalErrLineWithItsCode) {
  const ReplyFormatter fmt;
  std::string out;
  fmt.error(out, ErrorCode::denied, "no rule allows it");
  EXPECT_EQ(out, "ERR denied no rule allows it\n");
  out.clear();
  fmt.error(out, ErrorCode::limit, "");
  EXPECT_EQ(out, "ERR limit\n");
  out.clear();
  fmt.error(out, ErrorCode::failed, "exited", {{"exit", "2", true}});
  EXPECT_EQ(out, "ERR failed exited exit=2\n");
}

TEST(ReplyFormatter, KeepsFinalLinesOnOneLineWhateverTheMessageHolds) {
  const ReplyFormatter fmt;
  std::string out;
  fmt.ok(out, "done\nOK forged", {{"path", "a\nERR internal x"}});
  EXPECT_EQ(out, R"(OK done\x0AOK forged path=a\x0AERR internal x)"
                 "\n");
  out.clear();
  fmt.error(out, ErrorCode::usage, "bad byte \x1B[2J\r\nOK", {{"arg", "\xFF"}});
  EXPECT_EQ(out, R"(ERR usage bad byte \x1B[2J\x0D\x0AOK arg=)" + std::string(kFffd) + "\n");
}

TEST(ReplyFormatter, AppendsToWhatIsAlreadyInTheBuffer) {
  const ReplyFormatter fmt;
  std::string out = "| earlier\n";
  fmt.data(out, Channel::out, "line");
  fmt.ok(out, "done");
  EXPECT_EQ(out, "| earlier\n| line\nOK done\n");
}

TEST(ReplyFormatter, WritesEachJsonDataLineAsOneTypedObject) {
  ReplyFormatter fmt;
  fmt.set_mode(Mode::json);
  std::string out;
  fmt.data(out, Channel::out, "hello");
  auto j = parse_one_json_line(out);
  EXPECT_EQ(j, (json{{"type", "stdout"}, {"line", "hello"}}));

  out.clear();
  fmt.data(out, Channel::err, "OK fake\nERR denied fake\r\x1B[0m");
  j = parse_one_json_line(out);
  EXPECT_EQ(j["type"], "stderr");
  EXPECT_EQ(j["line"], "OK fake\nERR denied fake\r\x1B[0m");
}

TEST(ReplyFormatter, WritesJsonFinalLinesWithTypeAndCode) {
  ReplyFormatter fmt;
  fmt.set_mode(Mode::json);
  std::string out;
  fmt.ok(out, "done");
  EXPECT_EQ(parse_one_json_line(out), (json{{"type", "ok"}, {"message", "done"}}));

  out.clear();
  fmt.error(out, ErrorCode::denied, "no rule allows it");
  EXPECT_EQ(parse_one_json_line(out),
            (json{{"type", "error"}, {"code", "denied"}, {"message", "no rule allows it"}}));

  for (const auto code :
       {ErrorCode::usage, ErrorCode::unknown, ErrorCode::notfound, ErrorCode::limit,
        ErrorCode::timeout, ErrorCode::busy, ErrorCode::failed, ErrorCode::internal}) {
    out.clear();
    fmt.error(out, code, "x");
    EXPECT_EQ(parse_one_json_line(out)["code"], std::string(to_string(code)));
  }
}

TEST(ReplyFormatter, EmitsNumericFieldsAsJsonNumbers) {
  ReplyFormatter fmt;
  fmt.set_mode(Mode::json);
  std::string out;
  fmt.ok(out, "done",
         {{"exit", "0", true},
          {"bytes", "123456789012", true},
          {"signal", "-9", true},
          {"name", "42"},
          {"bogus", "abc", true}});
  const auto j = parse_one_json_line(out);
  EXPECT_TRUE(j["exit"].is_number_integer());
  EXPECT_EQ(j["exit"], 0);
  EXPECT_EQ(j["bytes"], 123456789012LL);
  EXPECT_EQ(j["signal"], -9);
  EXPECT_TRUE(j["name"].is_string());  // not flagged numeric: stays text
  EXPECT_EQ(j["name"], "42");
  EXPECT_EQ(j["bogus"], "abc");  // flagged numeric but not a number: kept as given

  out.clear();
  fmt.error(out, ErrorCode::failed, "exited", {{"exit", "2", true}});
  EXPECT_EQ(parse_one_json_line(out)["exit"], 2);
}

TEST(ReplyFormatter, ReplacesInvalidUtf8InJsonInsteadOfThrowing) {
  ReplyFormatter fmt;
  fmt.set_mode(Mode::json);
  std::string out;
  EXPECT_NO_THROW(fmt.data(out, Channel::out,
                           "a\xFF"
                           "b"));
  EXPECT_EQ(parse_one_json_line(out)["line"], "a" + std::string(kFffd) + "b");

  for (const std::string bad :
       {"\xC0\xAF", "\xED\xA0\x80", "ok\xE6\x97", "\x80", "\xF4\x90\x80\x80"}) {
    SCOPED_TRACE(bad);
    out.clear();
    EXPECT_NO_THROW(fmt.data(out, Channel::err, bad));
    const auto line = parse_one_json_line(out)["line"].get<std::string>();
    EXPECT_NE(line.find(kFffd), std::string::npos) << line;
    out.clear();
    EXPECT_NO_THROW(fmt.ok(out, bad, {{"path", bad}}));
    EXPECT_NO_THROW(parse_one_json_line(out));
    out.clear();
    EXPECT_NO_THROW(fmt.error(out, ErrorCode::usage, bad, {{"path", bad}}));
    EXPECT_NO_THROW(parse_one_json_line(out));
  }
}

// ---- SECURITY-MATRIX I6: long lines are split by their escaped size, and every line is bounded.

// Every byte value but LF, `n` bytes long (text escapes most of them to four bytes).
std::string every_byte(std::size_t n) {
  std::string s;
  for (std::size_t i = 0; s.size() < n; ++i) {
    if (static_cast<char>(i) != '\n') s.push_back(static_cast<char>(i));
  }
  return s;
}

TEST(ReplyFormatter, I6_SplitsALongTextLineByItsEscapedSizeAndThePiecesJoin) {
  const ReplyFormatter fmt;
  for (const std::string& line : {std::string(100'000, '\x1b'), std::string(40'000, 'a'),
                                  every_byte(300'000), std::string(kMaxDataLineText, 'x'),
                                  "caf\xC3\xA9 " + std::string(50'000, '\xC2') + "\x85"}) {
    std::string out;
    fmt.data(out, Channel::err, line);
    std::string pieces;
    const auto lines = split_lines(out);
    for (const auto& l : lines) {
      ASSERT_EQ(l.rfind("! ", 0), 0U);
      EXPECT_LE(l.size() - 2, kMaxDataLineText);
      EXPECT_TRUE(has_no_controls(l));
      pieces += l.substr(2);
    }
    EXPECT_TRUE(pieces == sanitize_line(line)) << "pieces differ for a line of " << line.size();
  }
  // Exactly at the limit: one line; one byte more: two.
  std::string out;
  fmt.data(out, Channel::out, std::string(kMaxDataLineText, 'x'));
  EXPECT_EQ(split_lines(out).size(), 1U);
  out.clear();
  fmt.data(out, Channel::out, std::string(kMaxDataLineText + 1, 'x'));
  EXPECT_EQ(split_lines(out).size(), 2U);
  // An escape is never cut: 16 KiB / 4 escapes of ESC per line.
  out.clear();
  fmt.data(out, Channel::out, std::string(kMaxDataLineText, '\x1b'));
  const auto lines = split_lines(out);
  ASSERT_EQ(lines.size(), 4U);
  std::string escapes;
  for (std::size_t i = 0; i < kMaxDataLineText / 4; ++i) escapes += "\\x1B";
  for (const auto& l : lines) EXPECT_EQ(l, "| " + escapes);
}

TEST(ReplyFormatter, I6_SplitsALongJsonLineByItsEncodedSizeAndThePiecesGiveTheBytesBack) {
  ReplyFormatter fmt;
  fmt.set_mode(Mode::json);
  for (const std::string& line :
       {std::string(100'000, '\x01'), every_byte(200'000), std::string(70'000, '"'),
        "\xE2\x82\xAC" + std::string(30'000, 'y')}) {
    std::string out;
    fmt.data(out, Channel::out, line);
    std::string joined;
    for (const auto& l : split_lines(out)) {
      EXPECT_LE(l.size(), kMaxDataLineText + 64);
      const auto j = json::parse(l);
      EXPECT_EQ(j["type"], "stdout");
      joined += j["line"].get<std::string>();
    }
    // Valid UTF-8 comes back byte for byte; invalid bytes become U+FFFD as before.
    if (line.size() != 200'000) {
      EXPECT_TRUE(joined == line);
    }
  }
}

TEST(ReplyFormatter, I6_NoFinalLineIsLongerThanTheReplyLineLimit) {
  for (const Mode mode : {Mode::text, Mode::json}) {
    ReplyFormatter fmt;
    fmt.set_mode(mode);
    const std::string huge(1U << 20, '\x1b');
    std::string out;
    fmt.error(out, ErrorCode::usage, huge, {{"path", huge}, {"arg", huge}, {"n", "1", true}});
    fmt.ok(out, huge, {{"path", huge}});
    for (const auto& l : split_lines(out)) {
      EXPECT_LT(l.size() + 1, kMaxReplyLineBytes);
      EXPECT_NE(l.find("\xE2\x80\xA6"), std::string::npos) << "a cut text is marked";
    }
    EXPECT_EQ(split_lines(out).size(), 2U);
    if (mode == Mode::json) {
      for (const auto& l : split_lines(out)) {
        EXPECT_NO_THROW({ const json parsed = json::parse(l); });
      }
    }
    // Short texts are untouched.
    out.clear();
    fmt.ok(out, "done", {{"path", "/etc/hostname"}});
    EXPECT_EQ(out.find("\xE2\x80\xA6"), std::string::npos);
  }
}

}  // namespace
}  // namespace opsagent::protocol

#include "agent/config/strict_yaml.hpp"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "agent/config/config_error.hpp"

#include "tests/support/sanitizer.hpp"

namespace opsagent::config {
namespace {

using opsagent::testing::scaled;

using Kind = YamlNode::Kind;

// The ConfigError message of parsing `text`, or "" when it parses.
std::string parse_error(const std::string& text, const YamlLimits& limits = {}) {
  try {
    parse_yaml(text, "t.yaml", limits);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

class TempDir {
 public:
  TempDir() {
    std::string templ = (std::filesystem::temp_directory_path() / "strict-yaml-XXXXXX").string();
    path_ = ::mkdtemp(templ.data());
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

TEST(StrictYaml, ParsesMapsSequencesAndScalarsWithPositions) {
  const YamlNode root = parse_yaml("a: 1\nb:\n  - x\n  - 'y'\nc: {d: e}\n", "t.yaml");
  ASSERT_EQ(root.kind, Kind::map);
  ASSERT_EQ(root.entries.size(), 3U);
  EXPECT_EQ(root.entries[0].first.scalar, "a");
  EXPECT_EQ(root.entries[0].second.scalar, "1");
  EXPECT_EQ(root.entries[0].second.mark.line, 1);
  EXPECT_EQ(root.entries[0].second.mark.column, 4);
  const YamlNode& b = root.entries[1].second;
  ASSERT_EQ(b.kind, Kind::sequence);
  ASSERT_EQ(b.items.size(), 2U);
  EXPECT_EQ(b.items[1].scalar, "y");
  EXPECT_EQ(b.items[1].mark.line, 4);
  EXPECT_EQ(b.items[1].mark.column, 5);
  EXPECT_EQ(root.entries[2].second.kind, Kind::map);
  EXPECT_EQ(root.entries[2].first.mark.line, 5);
}

TEST(StrictYaml, RecordsWhetherScalarsWereQuoted) {
  const YamlNode root = parse_yaml("a: 10\nb: \"10\"\nc: '10'\n", "t.yaml");
  EXPECT_FALSE(root.entries[0].second.quoted);
  EXPECT_TRUE(root.entries[1].second.quoted);
  EXPECT_TRUE(root.entries[2].second.quoted);
}

TEST(StrictYaml, KeepsMapEntriesInFileOrder) {
  const YamlNode root = parse_yaml("z: 1\na: 2\nm: 3\n", "t.yaml");
  EXPECT_EQ(root.entries[0].first.scalar, "z");
  EXPECT_EQ(root.entries[1].first.scalar, "a");
  EXPECT_EQ(root.entries[2].first.scalar, "m");
}

TEST(StrictYaml, TreatsEmptyTextAsNull) {
  EXPECT_EQ(parse_yaml("", "t.yaml").kind, Kind::null);
  EXPECT_EQ(parse_yaml("# only a comment\n", "t.yaml").kind, Kind::null);
}

TEST(StrictYaml, RejectsDuplicateKeysNamingBothLines) {
  const std::string err = parse_error("a: 1\nb: 2\na: 3\n");
  EXPECT_NE(err.find("t.yaml:3:1:"), std::string::npos) << err;
  EXPECT_NE(err.find("duplicate key 'a'"), std::string::npos) << err;
  EXPECT_NE(err.find("line 1"), std::string::npos) << err;
}

TEST(StrictYaml, RejectsDuplicateKeysWhenOnlyQuotingDiffers) {
  EXPECT_NE(parse_error("a: 1\n\"a\": 2\n").find("duplicate key"), std::string::npos);
}

TEST(StrictYaml, RejectsDuplicateKeysInNestedAndFlowMaps) {
  EXPECT_NE(parse_error("x:\n  y: 1\n  y: 2\n").find("duplicate key 'y'"), std::string::npos);
  EXPECT_NE(parse_error("x: {y: 1, y: 2}\n").find("duplicate key 'y'"), std::string::npos);
}

TEST(StrictYaml, AllowsTheSameKeyInDifferentMaps) {
  EXPECT_EQ(parse_error("a: {k: 1}\nb: {k: 2}\n"), "");
}

TEST(StrictYaml, RejectsNonScalarKeys) {
  EXPECT_NE(parse_error("? [a, b]\n: 1\n").find("map keys must be scalars"), std::string::npos);
  EXPECT_NE(parse_error("{a: 1}: 2\n").find("map keys must be"), std::string::npos);
}

TEST(StrictYaml, RejectsAnchors) {
  const std::string err = parse_error("a: &x 1\nb: 2\n");
  EXPECT_NE(err.find("anchors and aliases are not allowed"), std::string::npos) << err;
  EXPECT_NE(err.find("t.yaml:1:"), std::string::npos) << err;
}

TEST(StrictYaml, RejectsAliases) {
  EXPECT_NE(parse_error("a: &x [1]\nb: *x\n").find("anchors and aliases are not allowed"),
            std::string::npos);
}

TEST(StrictYaml, RejectsAliasBombQuickly) {
  std::string bomb =
      "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n";
  char prev = 'a';
  for (char c = 'b'; c <= 'j'; ++c) {
    bomb += std::string(1, c) + ": &" + c + " [";
    for (int i = 0; i < 9; ++i) bomb += std::string(i != 0 ? "," : "") + "*" + prev;
    bomb += "]\n";
    prev = c;
  }
  const auto start = std::chrono::steady_clock::now();
  EXPECT_NE(parse_error(bomb).find("anchors and aliases"), std::string::npos);
  // Expanded, the bomb has 9^10 nodes: a bound this loose still shows it never was.
  EXPECT_LT(std::chrono::steady_clock::now() - start, scaled(std::chrono::seconds(1)));
}

TEST(StrictYaml, RejectsExplicitTags) {
  EXPECT_NE(parse_error("a: !!str 10\n").find("explicit tags are not allowed"), std::string::npos);
  EXPECT_NE(parse_error("a: !2 10\n").find("explicit tags are not allowed"), std::string::npos);
  EXPECT_NE(parse_error("a: !!map {b: 1}\n").find("explicit tags are not allowed"),
            std::string::npos);
  EXPECT_NE(parse_error("a: !custom [1]\n").find("explicit tags are not allowed"),
            std::string::npos);
}

TEST(StrictYaml, RejectsSeveralDocuments) {
  const std::string err = parse_error("a: 1\n---\nb: 2\n");
  EXPECT_NE(err.find("several documents"), std::string::npos) << err;
  EXPECT_NE(err.find("t.yaml:"), std::string::npos) << err;
}

TEST(StrictYaml, AcceptsOneExplicitDocument) { EXPECT_EQ(parse_error("---\na: 1\n...\n"), ""); }

TEST(StrictYaml, RejectsTenThousandDeepNestingQuickly) {
  const auto start = std::chrono::steady_clock::now();
  const std::string flow = std::string(10'000, '[') + std::string(10'000, ']');
  EXPECT_NE(parse_error(flow).find("nesting deeper than 32"), std::string::npos);
  std::string maps;
  for (int i = 0; i < 10'000; ++i) maps += "{a: ";
  EXPECT_NE(parse_error(maps).find("t.yaml:1:"), std::string::npos);
  EXPECT_LT(std::chrono::steady_clock::now() - start, scaled(std::chrono::seconds(2)));
}

TEST(StrictYaml, AcceptsNestingUpToTheLimit) {
  YamlLimits limits;
  limits.max_depth = 4;
  EXPECT_EQ(parse_error("[[[[1]]]]", limits), "");
  EXPECT_NE(parse_error("[[[[[1]]]]]", limits).find("nesting deeper than 4"), std::string::npos);
}

TEST(StrictYaml, RejectsTooManyNodes) {
  YamlLimits limits;
  limits.max_nodes = 10;
  std::string list = "[";
  for (int i = 0; i < 20; ++i) list += "1,";
  list += "1]";
  EXPECT_NE(parse_error(list, limits).find("too many nodes"), std::string::npos);
}

TEST(StrictYaml, RejectsTextLargerThanTheLimit) {
  YamlLimits limits;
  limits.max_bytes = 16;
  EXPECT_NE(parse_error("a: 01234567890123456789\n", limits).find("larger than 16 bytes"),
            std::string::npos);
}

TEST(StrictYaml, RejectsNulBytesWithTheirPosition) {
  const std::string err = parse_error(std::string("a: 1\nb: x\0y\n", 12));
  EXPECT_NE(err.find("t.yaml:2:5: NUL byte"), std::string::npos) << err;
}

TEST(StrictYaml, RejectsTabIndentation) {
  const std::string err = parse_error("a:\n\tb: 1\n");
  EXPECT_NE(err.find("t.yaml:2:1: tab character in indentation"), std::string::npos) << err;
}

TEST(StrictYaml, AcceptsTabsBetweenTokensButNotInsideScalars) {
  const YamlNode root = parse_yaml("a:\t\"x y\"\t# note\tend\n", "t.yaml");
  EXPECT_EQ(root.entries[0].second.scalar, "x y");
  EXPECT_EQ(parse_error("a: \"x\ty\"\n"),
            "t.yaml:1:4: a: control character U+0009 in a scalar (written as an escape such as "
            "\"\\0\" or \"\\e\"); not allowed in any value");
}

// SECURITY-MATRIX I10: escapes that decode to control characters, in values and keys, at any
// depth, name the scalar's position and YAML path.
TEST(StrictYaml, I10_RejectsEscapesThatDecodeToControlCharacters) {
  const struct {
    const char* escape;
    const char* code;
  } kEscapes[] = {{"\\0", "U+0000"},     {"\\e", "U+001B"},         {"\\x01", "U+0001"},
                  {"\\u0000", "U+0000"}, {"\\t", "U+0009"},         {"\\n", "U+000A"},
                  {"\\r", "U+000D"},     {"\\x7f", "U+007F"},       {"\\x9b", "U+009B"},
                  {"\\N", "U+0085"},     {"\\U0000001b", "U+001B"}, {"\\a", "U+0007"}};
  for (const auto& e : kEscapes) {
    const std::string value = std::string("\"/etc/pass") + e.escape + "wd\"";
    const std::string text = "top:\n  list: [ok, " + value + "]\n";
    const std::string err = parse_error(text);
    EXPECT_EQ(err.rfind(std::string("t.yaml:2:14: top.list[1]: control character ") + e.code, 0),
              0U)
        << e.escape << ": " << err;
    EXPECT_NE(parse_error(std::string("\"k") + e.escape + "\": 1\n").find(e.code),
              std::string::npos)
        << "key with " << e.escape;
  }
}

TEST(StrictYaml, I10_RejectsEscapesThatDecodeToInvalidUtf8) {
  // yaml-cpp decodes "\_" (no-break space) to the lone byte 0xA0.
  const std::string err = parse_error("a: \"x\\_y\"\n");
  EXPECT_EQ(err.rfind("t.yaml:1:4: a: invalid UTF-8 in a scalar", 0), 0U) << err;
}

TEST(StrictYaml, I10_KeepsFoldedQuotedScalarsAndRefusesBlockScalars) {
  // A quoted scalar over two lines is folded by YAML into one line: no line break remains.
  EXPECT_EQ(parse_yaml("a: \"one\n  two\"\n", "t.yaml").entries[0].second.scalar, "one two");
  // Block scalars (which keep line breaks) are refused as before.
  EXPECT_NE(parse_error("a: |\n  one\n  two\n"), "");
  EXPECT_NE(parse_error("a: >\n  folded\n"), "");
}

TEST(StrictYaml, I10_AcceptsPrintableEscapesAndNonControlUnicode) {
  const YamlNode root = parse_yaml("a: \"\\x41\\u00e9\\\"\\\\\\u00a0\\/\"\n", "t.yaml");
  EXPECT_EQ(root.entries[0].second.scalar, "A\xc3\xa9\"\\\xc2\xa0/");
}

TEST(StrictYaml, ReportsSyntaxErrorsWithOneBasedLineAndColumn) {
  const std::string err = parse_error("a: 1\nb: [1, 2\n");
  EXPECT_EQ(err.rfind("t.yaml:", 0), 0U) << err;
  EXPECT_EQ(err.find("yaml-cpp"), std::string::npos) << "message is ours, not yaml-cpp's: " << err;
  EXPECT_EQ(err.find(":0:"), std::string::npos) << err;
  const std::string err2 = parse_error("a: b: c\n");
  EXPECT_EQ(err2.rfind("t.yaml:1:", 0), 0U) << err2;
}

TEST(StrictYaml, RejectsAQuoteLeftOpenUntilTheEndOfTheFile) {
  // yaml-cpp alone would read this as b = "unclosed c: 2".
  EXPECT_EQ(parse_error("a: 1\nb: \"unclosed\nc: 2\n"), "t.yaml:2:4: unclosed quoted string");
  EXPECT_EQ(parse_error("a: 'it''s\n"), "t.yaml:1:4: unclosed quoted string");
  EXPECT_EQ(parse_error("a: \"ends with escaped quote\\\"\n"),
            "t.yaml:1:4: unclosed quoted string");
}

TEST(StrictYaml, AcceptsQuotesWithEscapes) {
  const YamlNode root = parse_yaml("a: ['it''s', \"say \\\"hi\\\"\"]\n", "t.yaml");
  EXPECT_EQ(root.entries[0].second.items[0].scalar, "it's");
  EXPECT_EQ(root.entries[0].second.items[1].scalar, "say \"hi\"");
}

TEST(StrictYaml, RejectsTheNonSpecificTag) {
  EXPECT_NE(parse_error("a: ! 10\n").find("explicit tags are not allowed"), std::string::npos);
}

TEST(StrictYaml, RejectsInvalidUtf8) {
  for (const std::string& text : {std::string("a: \xff\xfe\n"), std::string("a: \xc0\xaf\n"),
                                  std::string("a: \xed\xa0\x80\n"), std::string("a: \xe2\x82\n")}) {
    EXPECT_NE(parse_error(text).find("t.yaml:1:4: invalid UTF-8"), std::string::npos) << text;
  }
}

TEST(StrictYaml, RejectsControlCharacters) {
  EXPECT_EQ(parse_error("a: x\x1b[31m\n"), "t.yaml:1:5: control character in file");
  EXPECT_EQ(parse_error("a: \"\x7f\"\n"), "t.yaml:1:5: control character in file");
  EXPECT_EQ(parse_error("a: \xc2\x9b\n"), "t.yaml:1:4: control character in file");
}

TEST(StrictYaml, AcceptsUtf8TextAndAByteOrderMark) {
  const YamlNode root = parse_yaml(
      "\xef\xbb\xbf"
      "a: \"gr\xc3\xbc\xc3\x9f"
      "e \xe2\x9c\x93\"\r\n",
      "t.yaml");
  EXPECT_EQ(root.entries.at(0).second.scalar,
            "gr\xc3\xbc\xc3\x9f"
            "e \xe2\x9c\x93");
}

TEST(StrictYaml, RejectsBinaryJunkCleanly) {
  const std::string junk("\xff\xfe{[:\x01\x02 ]]: &*! \x7f\n\x1b[31m: - ? |\n");
  EXPECT_NE(parse_error(junk), "");
  EXPECT_NE(parse_error("]]]]"), "");
  EXPECT_NE(parse_error("{{{{"), "");
  EXPECT_NE(parse_error("a: b: c"), "");
}

TEST(StrictYaml, LoadsAFile) {
  const TempDir dir;
  const auto file = dir.path() / "a.yaml";
  std::ofstream(file) << "a: [1, 2]\n";
  const YamlNode root = load_yaml_file(file);
  ASSERT_EQ(root.kind, Kind::map);
  EXPECT_EQ(root.entries[0].second.items.size(), 2U);
}

TEST(StrictYaml, NamesTheFileWhenItIsMissing) {
  const TempDir dir;
  const auto file = dir.path() / "missing.yaml";
  try {
    load_yaml_file(file);
    FAIL() << "loaded a missing file";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(file.string()), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("No such file"), std::string::npos) << e.what();
  }
}

TEST(StrictYaml, RejectsADirectory) {
  const TempDir dir;
  EXPECT_THROW(load_yaml_file(dir.path()), ConfigError);
}

TEST(StrictYaml, RejectsAFileLargerThanTheLimitBeforeParsing) {
  const TempDir dir;
  const auto file = dir.path() / "big.yaml";
  std::ofstream(file) << "a: " << std::string(2000, 'x') << "\n";
  YamlLimits limits;
  limits.max_bytes = 1000;
  try {
    load_yaml_file(file, limits);
    FAIL() << "loaded an oversized file";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("larger than 1000 bytes"), std::string::npos) << e.what();
  }
}

TEST(StrictYaml, NamesTheFileInSyntaxErrors) {
  const TempDir dir;
  const auto file = dir.path() / "bad.yaml";
  std::ofstream(file) << "a: [1, 2\n";
  try {
    load_yaml_file(file);
    FAIL() << "parsed an unterminated list";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()).rfind(file.string() + ":", 0), 0U) << e.what();
  }
}

}  // namespace
}  // namespace opsagent::config

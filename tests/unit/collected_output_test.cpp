// The pure parts of opsctl's readable output: name order for --sort, when colours are used,
// and that a hostile host name stays escaped in the collapsed, sorted and table views even
// with colours on (SECURITY-MATRIX I11: the only escape sequences are opsctl's own SGR).

#include "agent/client/collected_output.hpp"

#include <cstdio>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "agent/client/colour.hpp"

namespace opsagent::client {
namespace {

TEST(NaturalOrder, DigitRunsCompareAsNumbers) {
  EXPECT_TRUE(natural_less("web2", "web10"));
  EXPECT_FALSE(natural_less("web10", "web2"));
  EXPECT_TRUE(natural_less("db9", "web1"));
  EXPECT_TRUE(natural_less("web", "web1"));
  EXPECT_FALSE(natural_less("web1", "web1"));
  EXPECT_TRUE(natural_less("n1", "n01"));  // fewer leading zeros first: still a strict order
  EXPECT_FALSE(natural_less("n01", "n1"));
  EXPECT_TRUE(natural_less("a99999999999999999999999", "a100000000000000000000000"));
}

TEST(Colours, OnlyOnATerminalWithoutNoColorUnlessForced) {
  EXPECT_TRUE(colour_wanted(ColourChoice::automatic, true, nullptr, "xterm"));
  EXPECT_TRUE(colour_wanted(ColourChoice::automatic, true, "", "xterm"));
  EXPECT_FALSE(colour_wanted(ColourChoice::automatic, true, "1", "xterm"));
  EXPECT_FALSE(colour_wanted(ColourChoice::automatic, true, nullptr, "dumb"));
  EXPECT_FALSE(colour_wanted(ColourChoice::automatic, false, nullptr, "xterm"));
  EXPECT_TRUE(colour_wanted(ColourChoice::always, false, "1", "dumb"));
  EXPECT_FALSE(colour_wanted(ColourChoice::never, true, nullptr, "xterm"));
  EXPECT_EQ(Palette(false).paint(Paint::bad, "x"), "x");
  EXPECT_EQ(Palette(true).paint(Paint::good, "ok"), "\x1b[32mok\x1b[0m");
}

std::string read_back(std::FILE* f) {
  std::fflush(f);
  std::rewind(f);
  std::string out;
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) out.append(buf, n);
  return out;
}

// Removes opsctl's own SGR sequences; whatever ESC is left came from the input.
std::string without_sgr(std::string s) {
  for (const char* sgr :
       {"\x1b[0m", "\x1b[1m", "\x1b[31m", "\x1b[1;31m", "\x1b[32m", "\x1b[33m", "\x1b[36m"}) {
    for (auto at = s.find(sgr); at != std::string::npos; at = s.find(sgr))
      s.erase(at, std::string(sgr).size());
  }
  return s;
}

TEST(CollectedOutput, I11_ViewsEscapeNamesLinesAndMessagesWithColoursOn) {
  const std::vector<Target> targets = {{"evil\x1b[2J", "10.0.0.1", 1, ""},
                                       {"ok\xe2\x80\xae", "10.0.0.2", 1, ""}};
  for (const OutputMode mode : {OutputMode::prefix, OutputMode::grouped, OutputMode::table}) {
    for (const bool collapse : {false, true}) {
      std::FILE* out = std::tmpfile();
      std::FILE* err = std::tmpfile();
      ASSERT_NE(out, nullptr);
      ASSERT_NE(err, nullptr);
      ProgressLine progress(err, false, targets.size());
      ReportOptions options;
      options.sort = true;
      options.collapse = collapse && mode == OutputMode::grouped;
      options.colour_out = true;
      options.colour_err = true;
      auto reporter = make_collected_reporter(mode, targets, {out, err}, progress, options);
      for (std::size_t host = 0; host < targets.size(); ++host) {
        reporter->line(host, protocol::Channel::out, "x\x1b]52;c;eA==\a");
        reporter->line(host, protocol::Channel::err, "y\x9b");
        HostResult r;
        r.status = HostStatus::denied;
        r.message = "no\x1b[31m";
        reporter->result(host, r);
      }
      reporter->finish();
      const std::string text = without_sgr(read_back(out) + read_back(err));
      SCOPED_TRACE(text);
      EXPECT_EQ(text.find('\x1b'), std::string::npos);
      EXPECT_EQ(text.find('\a'), std::string::npos);
      EXPECT_EQ(text.find("\xe2\x80\xae"), std::string::npos);
      EXPECT_NE(text.find(R"(evil\x1B[2J)"), std::string::npos);
      EXPECT_NE(text.find(R"(no\x1B[31m)"), std::string::npos);
      std::fclose(out);
      std::fclose(err);
    }
  }
}

}  // namespace
}  // namespace opsagent::client

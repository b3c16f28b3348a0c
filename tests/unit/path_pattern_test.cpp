#include "agent/policy/path_pattern.hpp"

#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace opsagent::policy {
namespace {

using Parts = std::vector<std::string>;

bool matches(const std::string& pattern, const std::string& path) {
  auto parts = split_client_path(path);
  return parts.ok() && PathPattern(pattern).matches(parts.value());
}

TEST(PathPattern, SplitsAnAbsolutePathIntoComponents) {
  auto parts = split_client_path("/var/log/syslog");
  ASSERT_TRUE(parts.ok());
  EXPECT_EQ(parts.value(), (Parts{"var", "log", "syslog"}));
}

// SECURITY-MATRIX C6: lexical traversal attempts never reach the matcher.
TEST(PathPattern, SplitRejectsTraversalAndAmbiguousPaths) {
  const std::vector<std::string> bad = {
      "",
      "relative/path",
      "./etc/passwd",
      "/",
      "//etc/passwd",
      "/etc//passwd",
      "/etc/passwd/",
      "/etc/.",
      "/etc/./passwd",
      "/etc/..",
      "/var/log/../../etc/shadow",
      "/allowed/../secret",
      "/..",
      std::string("/etc/pass\0wd", 12),
      "/" + std::string(4096, 'a'),
  };
  for (const auto& path : bad) {
    EXPECT_FALSE(split_client_path(path).ok()) << '"' << path << '"';
  }
}

TEST(PathPattern, SplitReportsOverlongPathsAsALimit) {
  auto parts = split_client_path("/" + std::string(4096, 'a'));
  ASSERT_FALSE(parts.ok());
  EXPECT_EQ(parts.error().code, ErrorCode::limit);
  EXPECT_TRUE(split_client_path("/" + std::string(4095, 'a')).ok());
}

TEST(PathPattern, SplitDoesNotDecodeAnything) {
  auto parts = split_client_path("/var/log/%2e%2e/%2fetc");
  ASSERT_TRUE(parts.ok());
  EXPECT_EQ(parts.value(), (Parts{"var", "log", "%2e%2e", "%2fetc"}));
  // Names that merely start with dots are ordinary names.
  EXPECT_TRUE(split_client_path("/var/log/...").ok());
  EXPECT_TRUE(split_client_path("/var/log/..hidden").ok());
  EXPECT_TRUE(split_client_path("/var/log/.bash_history").ok());
}

TEST(PathPattern, GlobMatchesOneComponentShellStyle) {
  EXPECT_TRUE(glob_match_component("*.log", "syslog.log"));
  EXPECT_TRUE(glob_match_component("*.log", ".log"));
  EXPECT_FALSE(glob_match_component("*.log", "syslog.log.1"));
  EXPECT_TRUE(glob_match_component("a?c", "abc"));
  EXPECT_FALSE(glob_match_component("a?c", "ac"));
  EXPECT_TRUE(glob_match_component("*", ""));
  EXPECT_TRUE(glob_match_component("a*b*c", "aXXbYYc"));
  EXPECT_FALSE(glob_match_component("a*b*c", "aXXbYY"));
  EXPECT_TRUE(glob_match_component("[ab]", "[ab]"));  // brackets are literal
  EXPECT_FALSE(glob_match_component("[ab]", "a"));
  EXPECT_FALSE(glob_match_component("syslog", "Syslog"));
}

TEST(PathPattern, GlobStarStaysAWildcardWhenTheNameHoldsAStar) {
  // Found by tests/fuzz/path_resolver (corpus/path_resolver/star-in-name).
  EXPECT_TRUE(glob_match_component("*.log", "*x.log"));
  EXPECT_TRUE(glob_match_component("a*", "a*b"));
  EXPECT_TRUE(glob_match_component("*?", "**"));
  EXPECT_FALSE(glob_match_component("*.log", "*x.txt"));
}

TEST(PathPattern, GlobStaysFastOnPathologicalPatterns) {
  const std::string name(4000, 'a');
  EXPECT_FALSE(glob_match_component("*a*a*a*a*a*a*a*a*a*a*b", name));
}

TEST(PathPattern, ComputesTheLiteralRoot) {
  EXPECT_EQ(PathPattern("/var/log/*.log").root(), "/var/log");
  EXPECT_EQ(PathPattern("/var/log/*.log").root_depth(), 2U);
  EXPECT_EQ(PathPattern("/etc/**").root(), "/etc");
  EXPECT_EQ(PathPattern("/etc/**").root_depth(), 1U);
  EXPECT_EQ(PathPattern("/srv/*/conf/*.yaml").root(), "/srv");
  // Without wildcards the file's directory is the root.
  EXPECT_EQ(PathPattern("/etc/passwd").root(), "/etc");
  EXPECT_EQ(PathPattern("/etc/passwd").root_depth(), 1U);
  EXPECT_EQ(PathPattern("/vmlinuz").root(), "/");
  EXPECT_EQ(PathPattern("/vmlinuz").root_depth(), 0U);
  EXPECT_EQ(PathPattern("/etc/**").text(), "/etc/**");
}

TEST(PathPattern, RejectsMalformedPatterns) {
  for (const char* bad : {"", "etc/**", "/", "/**", "/*/x", "/e?c/x", "/etc/**.conf", "/etc/a**",
                          "/etc/../shadow", "/etc/./x", "/etc//x", "/etc/"}) {
    EXPECT_THROW(PathPattern{bad}, std::invalid_argument) << bad;
  }
}

TEST(PathPattern, DoubleStarMatchesZeroOrMoreComponents) {
  EXPECT_TRUE(matches("/etc/**", "/etc/passwd"));
  EXPECT_TRUE(matches("/etc/**", "/etc/ssh/sshd_config"));
  EXPECT_TRUE(
      matches("/etc/**", "/etc"));  // zero components; the authoriser refuses the root itself
  EXPECT_TRUE(matches("/etc/**/*.conf", "/etc/a.conf"));
  EXPECT_TRUE(matches("/etc/**/*.conf", "/etc/x/y/z/a.conf"));
  EXPECT_FALSE(matches("/etc/**/*.conf", "/etc/x/a.conf.bak"));
  EXPECT_TRUE(matches("/a/**/b/**/c", "/a/b/c"));
  EXPECT_TRUE(matches("/a/**/b/**/c", "/a/x/b/y/z/c"));
  EXPECT_FALSE(matches("/a/**/b/**/c", "/a/x/y/c"));
}

TEST(PathPattern, SingleStarStaysWithinOneComponent) {
  EXPECT_TRUE(matches("/var/log/*.log", "/var/log/dpkg.log"));
  EXPECT_FALSE(matches("/var/log/*.log", "/var/log/apt/history.log"));
  EXPECT_FALSE(matches("/var/log/*", "/var/log"));
}

TEST(PathPattern, DoesNotMatchSiblingDirectoriesWithACommonPrefix) {
  EXPECT_FALSE(matches("/var/log/*", "/var/log2/secret"));
  EXPECT_FALSE(matches("/var/log/**", "/var/log2/secret"));
  EXPECT_FALSE(matches("/var/log/**", "/var/logs"));
  EXPECT_FALSE(matches("/etc/passwd", "/etc/passwd2"));
  EXPECT_FALSE(matches("/etc/passwd", "/etc/passwd/x"));
}

TEST(PathPattern, MatchesCaseSensitively) {
  EXPECT_FALSE(matches("/etc/**", "/ETC/passwd"));
  EXPECT_FALSE(matches("/var/log/*.log", "/var/log/a.LOG"));
}

TEST(PathPattern, StaysFastWithManyDoubleStars) {
  const PathPattern pattern("/a/**/**/**/**/**/**/**/**/**/**/z");
  const Parts parts(1000, "a");
  EXPECT_FALSE(pattern.matches(parts));
}

}  // namespace
}  // namespace opsagent::policy

#include "agent/server/operational_log.hpp"

#include <cstdlib>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

namespace opsagent::server {
namespace {

// Restores JOURNAL_STREAM whatever the test does with it.
class JournalStreamEnv : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const char* v = std::getenv("JOURNAL_STREAM")) saved_ = v;
  }
  void TearDown() override {
    if (saved_.empty()) {
      ::unsetenv("JOURNAL_STREAM");
    } else {
      ::setenv("JOURNAL_STREAM", saved_.c_str(), 1);
    }
  }
  std::string saved_;
};

TEST_F(JournalStreamEnv, JournalOnlyWhenTheVariableNamesStderr) {
  ::unsetenv("JOURNAL_STREAM");
  EXPECT_FALSE(stderr_is_journal());
  struct stat st {};
  ASSERT_EQ(::fstat(STDERR_FILENO, &st), 0);
  const std::string mine = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
  ::setenv("JOURNAL_STREAM", mine.c_str(), 1);
  EXPECT_TRUE(stderr_is_journal());
  // Inherited from a parent whose stderr went to the journal, while ours goes elsewhere.
  const std::string other = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino + 1);
  ::setenv("JOURNAL_STREAM", other.c_str(), 1);
  EXPECT_FALSE(stderr_is_journal());
  for (const char* bad : {"", "12", "12:", ":5", "a:b", "1:2:3"}) {
    ::setenv("JOURNAL_STREAM", bad, 1);
    EXPECT_FALSE(stderr_is_journal()) << bad;
  }
}

}  // namespace
}  // namespace opsagent::server

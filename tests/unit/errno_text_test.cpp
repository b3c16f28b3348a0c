#include "agent/common/errno_text.hpp"

#include <cerrno>
#include <cstring>
#include <string>

#include <gtest/gtest.h>

namespace {

using opsagent::common::errno_text;

TEST(ErrnoText, IsStrerrorsTextForEveryKnownValue) {
  EXPECT_EQ(std::string(errno_text(ENOENT)), "No such file or directory");
  EXPECT_EQ(std::string(errno_text(ENOSPC)), "No space left on device");
  for (int err = 1; err < 134; ++err) {
    // NOLINTNEXTLINE(concurrency-mt-unsafe): the comparison this test exists for
    const std::string expected = std::strerror(err);
    if (expected.rfind("Unknown error", 0) == 0) {  // a gap in Linux's numbering (41, 58)
      EXPECT_EQ(std::string(errno_text(err)), "Unknown error") << err;
    } else {
      EXPECT_EQ(std::string(errno_text(err)), expected) << err;
    }
  }
}

TEST(ErrnoText, NamesAnUnknownValueWithoutAllocating) {
  EXPECT_EQ(std::string(errno_text(99999)), "Unknown error");
  EXPECT_EQ(std::string(errno_text(-1)), "Unknown error");
}

}  // namespace

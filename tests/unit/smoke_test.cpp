#include <gtest/gtest.h>

#include "agent/common/error.hpp"
TEST(ErrorCode, SpellsStableWireNames) {
  EXPECT_EQ(opsagent::to_string(opsagent::ErrorCode::denied), "denied");
}

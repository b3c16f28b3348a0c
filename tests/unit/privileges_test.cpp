#include "agent/server/privileges.hpp"

#include <gtest/gtest.h>

namespace opsagent::server {
namespace {

constexpr const char* kDroppedStatus =
    "Name:\topsagent\n"
    "Uid:\t65534\t65534\t65534\t65534\n"
    "Gid:\t65534\t65534\t65534\t65534\n"
    "Groups:\t4 65534 \n"
    "CapInh:\t0000000000000000\n"
    "CapPrm:\t0000000000000000\n"
    "CapEff:\t0000000000000000\n"
    "CapBnd:\t000001ffffffffff\n"
    "CapAmb:\t0000000000000000\n";

TEST(Privileges, ParsesCredentialsFromProcStatus) {
  const auto c = parse_credentials(kDroppedStatus);
  ASSERT_TRUE(c) << c.error().message;
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(c->uid[i], 65534U);
    EXPECT_EQ(c->gid[i], 65534U);
  }
  EXPECT_EQ(c->groups, (std::vector<gid_t>{4, 65534}));
  EXPECT_EQ(c->cap_effective, 0U);
  EXPECT_EQ(c->cap_permitted, 0U);
}

TEST(Privileges, ReadsRootCapabilitiesAsHex) {
  const auto c = parse_credentials(
      "Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t\nCapPrm:\t000001ffffffffff\n"
      "CapEff:\t000001ffffffffff\n");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_TRUE(c->groups.empty());
  EXPECT_EQ(c->cap_effective, 0x1ffffffffffULL);
}

TEST(Privileges, NamesAMissingOrMalformedLine) {
  const auto missing = parse_credentials("Uid:\t0\t0\t0\t0\n");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("lacks"), std::string::npos);
  const auto bad =
      parse_credentials("Uid:\t0\tx\nGid:\t0\t0\t0\t0\nGroups:\nCapPrm:\t0\nCapEff:\t0\n");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("Uid:"), std::string::npos) << bad.error().message;
}

TEST(Privileges, RefusesRootCommandsUnlessAllowed) {
  config::AgentConfig cfg;
  cfg.source = "/etc/opsagent/agent.yaml";
  if (::geteuid() != 0) {
    EXPECT_EQ(command_refusal(cfg), "");  // not root: nothing runs as root
    return;
  }
  EXPECT_NE(command_refusal(cfg).find("run_as.allow_root: true"), std::string::npos);
  cfg.exec.uid = 65534;
  EXPECT_EQ(command_refusal(cfg), "");
  cfg.exec.uid = 0;  // exec.user: root is still root
  EXPECT_NE(command_refusal(cfg), "");
  cfg.run_as.allow_root = true;
  EXPECT_EQ(command_refusal(cfg), "");
}

TEST(Privileges, NoUserSwitchForTheAgentsOwnUser) {
  config::AgentConfig cfg;
  EXPECT_EQ(command_user(cfg).uid, -1);
  cfg.exec.uid = ::geteuid();
  cfg.exec.gid = ::getegid();
  EXPECT_EQ(command_user(cfg).uid, -1);
  cfg.exec.uid = ::geteuid() + 1;
  EXPECT_EQ(command_user(cfg).uid, static_cast<long>(::geteuid() + 1));
}

}  // namespace
}  // namespace opsagent::server

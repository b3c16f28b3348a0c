// opsctl's command line: every option, both spellings, where options end, and the messages and
// exit statuses of usage errors.

#include "agent/client/cli.hpp"

#include <gtest/gtest.h>

namespace opsagent::client {
namespace {
using namespace std::chrono_literals;

CliOptions parse_ok(const std::vector<std::string>& args) {
  auto r = parse_command_line(args);
  if (const auto* e = std::get_if<CliExit>(&r)) {
    ADD_FAILURE() << "exit " << e->status << ": " << e->err;
    return {};
  }
  return std::get<CliOptions>(r);
}

CliExit parse_exit(const std::vector<std::string>& args) {
  auto r = parse_command_line(args);
  if (std::holds_alternative<CliOptions>(r)) {
    ADD_FAILURE() << "parsed, expected an exit";
    return {};
  }
  return std::get<CliExit>(r);
}

TEST(OpsctlCli, EveryOptionBeforeTargetsAndTheCommandAfter) {
  const CliOptions o = parse_ok({"-i",
                                 "inv.yaml",
                                 "-c",
                                 "cfg.yaml",
                                 "--cert",
                                 "a.crt",
                                 "--key",
                                 "a.key",
                                 "--ca",
                                 "ca.crt",
                                 "-p",
                                 "7443",
                                 "-o",
                                 "grouped",
                                 "-j",
                                 "8",
                                 "--connect-timeout",
                                 "250ms",
                                 "--handshake-timeout",
                                 "2s",
                                 "-t",
                                 "0",
                                 "--no-summary",
                                 "web,!web3",
                                 "run",
                                 "ls",
                                 "-l"});
  EXPECT_EQ(o.flags.inventory, "inv.yaml");
  EXPECT_EQ(o.flags.config, "cfg.yaml");
  EXPECT_EQ(o.flags.certificate, "a.crt");
  EXPECT_EQ(o.flags.private_key, "a.key");
  EXPECT_EQ(o.flags.ca, "ca.crt");
  EXPECT_EQ(o.flags.port, 7443);
  EXPECT_EQ(o.output, OutputMode::grouped);
  EXPECT_EQ(o.flags.concurrency, 8U);
  EXPECT_EQ(o.flags.connect_timeout, 250ms);
  EXPECT_EQ(o.flags.handshake_timeout, 2s);
  EXPECT_EQ(o.flags.command_timeout, 0ms);
  EXPECT_FALSE(o.summary);
  EXPECT_FALSE(o.list_targets);
  EXPECT_FALSE(o.raw_bytes);
  EXPECT_EQ(o.targets, "web,!web3");
  // "-l" after TARGETS belongs to the command, not to opsctl.
  EXPECT_EQ(o.command, (std::vector<std::string>{"run", "ls", "-l"}));
}

TEST(OpsctlCli, LongFormsEqualsSpellingsAndShortClusters) {
  const CliOptions o = parse_ok({"--inventory=inv.yaml", "--port=9999", "-j16", "--output=json",
                                 "--timeout=5m", "--raw-bytes", "--list-targets", "db1"});
  EXPECT_EQ(o.flags.inventory, "inv.yaml");
  EXPECT_EQ(o.flags.port, 9999);
  EXPECT_EQ(o.flags.concurrency, 16U);
  EXPECT_EQ(o.output, OutputMode::json);
  EXPECT_EQ(o.flags.command_timeout, 5min);
  EXPECT_TRUE(o.raw_bytes);
  EXPECT_TRUE(o.list_targets);
  EXPECT_EQ(o.targets, "db1");
  EXPECT_TRUE(o.command.empty());
  EXPECT_EQ(parse_ok({"--json", "h:1", "ping"}).output, OutputMode::json);
  // The last of a repeated option wins.
  EXPECT_EQ(parse_ok({"-p", "1", "-p", "2", "h"}).flags.port, 2);
}

TEST(OpsctlCli, DoubleDashEndsOptionsSoTargetsMayStartWithADash) {
  const CliOptions o = parse_ok({"-p", "1", "--", "-odd", "ping"});
  EXPECT_EQ(o.targets, "-odd");
  EXPECT_EQ(o.command, (std::vector<std::string>{"ping"}));
}

TEST(OpsctlCli, HelpAndVersionExitZero) {
  auto e = parse_exit({"--help"});
  EXPECT_EQ(e.status, 0);
  EXPECT_NE(e.out.find("Exit status:"), std::string::npos);
  EXPECT_NE(e.out.find("--raw-bytes"), std::string::npos);
  EXPECT_NE(e.out.find("ping"), std::string::npos) << "commands from the verb table";
  EXPECT_EQ(parse_exit({"-h"}).status, 0);
  e = parse_exit({"--version"});
  EXPECT_EQ(e.status, 0);
  EXPECT_EQ(e.out.rfind("opsctl ", 0), 0U);
}

TEST(OpsctlCli, OutputViewsAndColours) {
  CliOptions o = parse_ok({"--collapse", "--sort", "--color=never", "all", "ping"});
  EXPECT_EQ(o.output, OutputMode::grouped);  // --collapse implies grouped
  EXPECT_TRUE(o.collapse);
  EXPECT_TRUE(o.sort);
  EXPECT_EQ(o.colour, ColourChoice::never);
  o = parse_ok({"--table", "--colour", "always", "all", "ping"});
  EXPECT_EQ(o.output, OutputMode::table);
  EXPECT_EQ(o.colour, ColourChoice::always);
  o = parse_ok({"-q", "--json", "all", "ping"});
  EXPECT_TRUE(o.quiet);
  EXPECT_EQ(o.output, OutputMode::json);
  EXPECT_EQ(parse_ok({"all", "ping"}).colour, ColourChoice::automatic);
  o = parse_ok({"-i", "inv.yaml", "--list-names"});
  EXPECT_TRUE(o.list_names);
  EXPECT_TRUE(o.targets.empty());
}

TEST(OpsctlCli, UsageErrorsExit64WithOneMessage) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{}, "opsctl: no TARGETS given (see opsctl --help)"},
      {{"-p", "1"}, "opsctl: no TARGETS given (see opsctl --help)"},
      {{"--frobnicate", "x", "ping"}, "opsctl: unknown option '--frobnicate' (see opsctl --help)"},
      {{"-p", "0", "h"}, "opsctl: --port needs 1-65535 (see opsctl --help)"},
      {{"-p", "65536", "h"}, "opsctl: --port needs 1-65535 (see opsctl --help)"},
      {{"-p", "-1", "h"}, "opsctl: --port needs 1-65535 (see opsctl --help)"},
      {{"-j", "0", "h"}, "opsctl: --concurrency needs 1-9999 (see opsctl --help)"},
      {{"-j", "10000", "h"}, "opsctl: --concurrency needs 1-9999 (see opsctl --help)"},
      {{"-j", "x", "h"}, "opsctl: --concurrency needs 1-9999 (see opsctl --help)"},
      {{"-o", "table2", "h"},
       "opsctl: --output is raw, prefix, grouped, json or table (see opsctl --help)"},
      {{"--json", "--table", "h"}, "opsctl: --json and --table exclude each other"},
      {{"-o", "prefix", "--collapse", "h"}, "--collapse goes with grouped output only"},
      {{"--json", "--sort", "h"}, "--sort does not apply to JSON output"},
      {{"-q", "--table", "h"}, "--quiet shows no per-host output"},
      {{"--color", "yes", "h"}, "opsctl: --color is auto, always or never"},
      {{"--list-names", "h"}, "opsctl: --list-names takes no TARGETS"},
      {{"--connect-timeout", "0", "h"}, "--connect-timeout"},
      {{"-t", "soon", "h"}, "--timeout"},
      {{"-i"}, "--inventory"},
  };
  for (const auto& c : cases) {
    const CliExit e = parse_exit(c.args);
    EXPECT_EQ(e.status, 64) << c.message;
    EXPECT_TRUE(e.out.empty());
    EXPECT_NE(e.err.find(c.message), std::string::npos) << e.err;
    EXPECT_EQ(e.err.find('\n'), std::string::npos) << "one line: " << e.err;
  }
}

}  // namespace
}  // namespace opsagent::client

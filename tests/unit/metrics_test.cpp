#include <chrono>
#include <string>

#include <gtest/gtest.h>

#include "agent/config/config_error.hpp"
#include "agent/config/metrics_config.hpp"
#include "agent/config/strict_yaml.hpp"
#include "agent/metrics/registry.hpp"

namespace opsagent::metrics {
namespace {

using namespace std::chrono_literals;

bool has_line(const std::string& text, const std::string& line) {
  return ("\n" + text).find("\n" + line + "\n") != std::string::npos;
}

TEST(MetricsRegistry, RendersCountersByLabelWithHelpAndType) {
  Registry r;
  r.command(protocol::find_verb("ping"), Decision::allow);
  r.command(protocol::find_verb("ping"), Decision::allow);
  r.command(nullptr, Decision::reject);
  r.refused(Refusal::unmapped);
  r.reloaded(ReloadPart::tls, false);
  ScrapeState s;
  s.policy_version = "0123456789abcdef";
  s.version = "9.9.9";
  s.connections_active = 3;
  const std::string text = render(r, s);
  EXPECT_TRUE(has_line(text, "# TYPE opsagent_commands_total counter"));
  EXPECT_TRUE(has_line(text, R"(opsagent_commands_total{verb="ping",decision="allow"} 2)"));
  EXPECT_TRUE(has_line(text, R"(opsagent_commands_total{verb="unknown",decision="reject"} 1)"));
  EXPECT_TRUE(has_line(text, R"(opsagent_commands_total{verb="quit",decision="deny"} 0)"));
  EXPECT_TRUE(has_line(text, R"(opsagent_connection_refusals_total{reason="unmapped"} 1)"));
  EXPECT_TRUE(has_line(text, R"(opsagent_reloads_total{what="tls",result="failure"} 1)"));
  EXPECT_TRUE(has_line(text, R"(opsagent_policy_info{version="0123456789abcdef"} 1)"));
  EXPECT_TRUE(has_line(text, R"(opsagent_build_info{version="9.9.9"} 1)"));
  EXPECT_TRUE(has_line(text, "opsagent_connections_active 3"));
  EXPECT_EQ(text.back(), '\n');
}

TEST(MetricsRegistry, HistogramBucketsAreCumulativeWithSumAndCount) {
  Registry r;
  const std::size_t ping = verb_slot(protocol::find_verb("ping"));
  r.command_duration[ping].observe(2ms);    // le 0.005
  r.command_duration[ping].observe(700ms);  // le 1
  r.command_duration[ping].observe(400s);   // only +Inf
  const std::string text = render(r, ScrapeState{});
  EXPECT_TRUE(
      has_line(text, R"(opsagent_command_duration_seconds_bucket{verb="ping",le="0.001"} 0)"));
  EXPECT_TRUE(
      has_line(text, R"(opsagent_command_duration_seconds_bucket{verb="ping",le="0.005"} 1)"));
  EXPECT_TRUE(has_line(text, R"(opsagent_command_duration_seconds_bucket{verb="ping",le="1"} 2)"));
  EXPECT_TRUE(
      has_line(text, R"(opsagent_command_duration_seconds_bucket{verb="ping",le="300"} 2)"));
  EXPECT_TRUE(
      has_line(text, R"(opsagent_command_duration_seconds_bucket{verb="ping",le="+Inf"} 3)"));
  EXPECT_TRUE(has_line(text, R"(opsagent_command_duration_seconds_count{verb="ping"} 3)"));
  EXPECT_TRUE(has_line(text, R"(opsagent_command_duration_seconds_sum{verb="ping"} 400.702)"));
}

std::string metrics_error(const std::string& yaml) {
  try {
    const auto root = config::parse_yaml(yaml, "agent.yaml");
    config::read_metrics(root.entries.front().second, config::NodeContext{"agent.yaml", "metrics"},
                         {config::ListenAddress{"127.0.0.1", 9999}});
  } catch (const config::ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(MetricsConfig, AcceptsLoopbackOrTlsAndRefusesTheRest) {
  EXPECT_EQ(metrics_error("metrics: {listen: \"127.0.0.1:9100\"}\n"), "");
  EXPECT_EQ(metrics_error("metrics: {listen: \"[::1]:9100\"}\n"), "");
  EXPECT_EQ(metrics_error("metrics: {listen: \"0.0.0.0:9100\", tls: true}\n"), "");
  EXPECT_EQ(metrics_error("metrics: {}\n"), "");
  EXPECT_NE(metrics_error("metrics: {listen: \"0.0.0.0:9100\"}\n")
                .find("agent.yaml:1:19: metrics.listen: 0.0.0.0 is not a loopback address"),
            std::string::npos)
      << metrics_error("metrics: {listen: \"0.0.0.0:9100\"}\n");
  EXPECT_NE(metrics_error("metrics: {listen: \"127.0.0.1:9999\"}\n")
                .find("the agent's own listen already uses"),
            std::string::npos);
  EXPECT_NE(metrics_error("metrics: {listen: \"localhost:9100\"}\n").find("metrics.listen:"),
            std::string::npos);
  EXPECT_NE(metrics_error("metrics: {listn: \"127.0.0.1:9100\"}\n").find("listn"),
            std::string::npos);
}

}  // namespace
}  // namespace opsagent::metrics

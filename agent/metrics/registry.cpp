#include "agent/metrics/registry.hpp"

#include <fmt/format.h>

namespace opsagent::metrics {
namespace {

constexpr std::array<std::string_view, kRefusals> kRefusalNames = {
    "max_handshakes", "no_identity", "unmapped", "max_clients", "max_clients_per_identity"};
constexpr std::array<std::string_view, kHandshakeFailures> kHandshakeFailureNames = {
    "timeout", "evicted", "certificate", "protocol"};
constexpr std::array<std::string_view, kDecisions> kDecisionNames = {"allow", "deny", "reject"};
constexpr std::array<std::string_view, kReloadParts> kReloadPartNames = {"config", "policy", "tls"};

std::string_view slot_name(std::size_t slot) {
  const auto verbs = protocol::all_verbs();
  return slot < verbs.size() ? verbs[slot].name : std::string_view("unknown");
}

// Label values here are verb names, fixed reasons and the hex policy version: nothing that needs
// escaping. The agent version comes from the build.
void header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

}  // namespace

std::size_t this_thread_shard() noexcept {
  static std::atomic<std::size_t> next{0};
  thread_local const std::size_t kShard = next.fetch_add(1, std::memory_order_relaxed) % kShards;
  return kShard;
}

std::uint64_t Counter::value() const noexcept {
  std::uint64_t total = 0;
  for (const Shard& s : shards_) total += s.value.load(std::memory_order_relaxed);
  return total;
}

void Histogram::observe(std::chrono::nanoseconds d) noexcept {
  const double seconds = std::chrono::duration<double>(d).count();
  std::size_t i = 0;
  while (i < kDurationBuckets.size() && seconds > kDurationBuckets[i]) ++i;
  Shard& shard = shards_[this_thread_shard()];
  shard.buckets[i].fetch_add(1, std::memory_order_relaxed);
  shard.sum_ns.fetch_add(static_cast<std::uint64_t>(d.count() < 0 ? 0 : d.count()),
                         std::memory_order_relaxed);
}

std::uint64_t Histogram::cumulative(std::size_t i) const noexcept {
  std::uint64_t total = 0;
  for (const Shard& s : shards_) {
    for (std::size_t b = 0; b <= i && b < s.buckets.size(); ++b) {
      total += s.buckets[b].load(std::memory_order_relaxed);
    }
  }
  return total;
}

double Histogram::sum_seconds() const noexcept {
  std::uint64_t ns = 0;
  for (const Shard& s : shards_) ns += s.sum_ns.load(std::memory_order_relaxed);
  return static_cast<double>(ns) / 1e9;
}

std::size_t verb_slot(const protocol::VerbSpec* verb) noexcept {
  return verb == nullptr ? kVerbSlots - 1 : static_cast<std::size_t>(verb->verb);
}

Registry& registry() noexcept {
  static Registry instance;
  return instance;
}

std::string render(const Registry& r, const ScrapeState& s) {
  std::string out;
  out.reserve(std::size_t{16} * 1024);
  auto line = [&out](std::string_view name, std::string_view labels, auto value) {
    if (labels.empty()) {
      fmt::format_to(std::back_inserter(out), "{} {}\n", name, value);
    } else {
      fmt::format_to(std::back_inserter(out), "{}{{{}}} {}\n", name, labels, value);
    }
  };

  header(out, "opsagent_build_info", "gauge", "The agent's version; always 1.");
  line("opsagent_build_info", fmt::format("version=\"{}\"", s.version), 1);
  header(
      out, "opsagent_policy_info", "gauge",
      "The policy in force (first 16 hex digits of its SHA-256, as in audit records); always 1.");
  line("opsagent_policy_info", fmt::format("version=\"{}\"", s.policy_version), 1);

  header(out, "opsagent_connections_active", "gauge", "Authenticated sessions open now.");
  line("opsagent_connections_active", "", s.connections_active);
  header(out, "opsagent_handshakes_active", "gauge", "Connections in their TLS handshake now.");
  line("opsagent_handshakes_active", "", s.handshakes_active);
  header(out, "opsagent_connections_total", "counter", "TCP connections accepted.");
  line("opsagent_connections_total", "", r.connections.value());
  header(out, "opsagent_connection_refusals_total", "counter",
         "Connections turned away before serving, by reason.");
  for (std::size_t i = 0; i < kRefusals; ++i) {
    line("opsagent_connection_refusals_total", fmt::format("reason=\"{}\"", kRefusalNames[i]),
         r.refusals[i].value());
  }
  header(out, "opsagent_handshakes_total", "counter",
         "Completed TLS handshakes, by whether the session was resumed from a ticket.");
  line("opsagent_handshakes_total", "resumed=\"false\"", r.handshakes[0].value());
  line("opsagent_handshakes_total", "resumed=\"true\"", r.handshakes[1].value());
  header(out, "opsagent_handshake_failures_total", "counter", "Failed TLS handshakes, by reason.");
  for (std::size_t i = 0; i < kHandshakeFailures; ++i) {
    line("opsagent_handshake_failures_total",
         fmt::format("reason=\"{}\"", kHandshakeFailureNames[i]), r.handshake_failures[i].value());
  }

  header(out, "opsagent_commands_total", "counter",
         "Command lines, by verb and decision (reject: refused before the policy).");
  for (std::size_t v = 0; v < kVerbSlots; ++v) {
    for (std::size_t d = 0; d < kDecisions; ++d) {
      line("opsagent_commands_total",
           fmt::format(R"(verb="{}",decision="{}")", slot_name(v), kDecisionNames[d]),
           r.commands[v][d].value());
    }
  }
  header(out, "opsagent_command_duration_seconds", "histogram",
         "Time from a command line to its final reply line, by verb.");
  for (std::size_t v = 0; v < kVerbSlots; ++v) {
    const Histogram& h = r.command_duration[v];
    for (std::size_t b = 0; b < kDurationBuckets.size(); ++b) {
      line("opsagent_command_duration_seconds_bucket",
           fmt::format(R"(verb="{}",le="{}")", slot_name(v), kDurationBuckets[b]), h.cumulative(b));
    }
    const std::uint64_t count = h.cumulative(kDurationBuckets.size());
    line("opsagent_command_duration_seconds_bucket",
         fmt::format(R"(verb="{}",le="+Inf")", slot_name(v)), count);
    line("opsagent_command_duration_seconds_sum", fmt::format("verb=\"{}\"", slot_name(v)),
         h.sum_seconds());
    line("opsagent_command_duration_seconds_count", fmt::format("verb=\"{}\"", slot_name(v)),
         count);
  }
  header(out, "opsagent_reply_bytes_total", "counter",
         "Bytes of replies (data and final lines) sent to clients.");
  line("opsagent_reply_bytes_total", "", r.reply_bytes.value());
  header(out, "opsagent_children_active", "gauge", "Commands running now.");
  line("opsagent_children_active", "", s.children_active);
  header(out, "opsagent_blocking_pool_queue_depth", "gauge",
         "File jobs (hash, tail, lastlog) waiting for a blocking-pool thread.");
  line("opsagent_blocking_pool_queue_depth", "", r.blocking_queue.value());
  header(out, "opsagent_audit_write_failures_total", "counter",
         "Audit records that could not be written.");
  line("opsagent_audit_write_failures_total", "", r.audit_write_failures.value());
  header(out, "opsagent_audit_shipped_total", "counter",
         "Copies of written audit records sent to journald or syslog, or dropped (daemon absent "
         "or not keeping up; the audit file has them).");
  for (std::size_t sink = 0; sink < 2; ++sink) {
    const char* name = sink == 0 ? "journald" : "syslog";
    line("opsagent_audit_shipped_total", fmt::format(R"(sink="{}",result="sent")", name),
         r.audit_shipped[sink][0].value());
    line("opsagent_audit_shipped_total", fmt::format(R"(sink="{}",result="dropped")", name),
         r.audit_shipped[sink][1].value());
  }
  header(out, "opsagent_reloads_total", "counter", "Reload steps (SIGHUP), by part and result.");
  for (std::size_t p = 0; p < kReloadParts; ++p) {
    line("opsagent_reloads_total",
         fmt::format(R"(what="{}",result="success")", kReloadPartNames[p]),
         r.reloads[p][0].value());
    line("opsagent_reloads_total",
         fmt::format(R"(what="{}",result="failure")", kReloadPartNames[p]),
         r.reloads[p][1].value());
  }
  return out;
}

}  // namespace opsagent::metrics

// opsagent-bench-audit: the audit writer's cost, side by side with the writer it replaced.
// Not a test and not installed (scripts/bench-audit.sh runs it).
//   new   RecordEncoder + AuditLog (one writer thread, group commit)
//   old   a nlohmann::json record per call, dumped with ensure_ascii, one write(2) per record
//         under one mutex (the writer before issue 11), reproduced here as the peer
// THREADS producer threads each queue RECORDS/THREADS `command` records like the agent's; the
// run ends when every record is on disk. Prints one JSON object per writer: records, seconds,
// records_per_s, cpu_us_per_record (process user+system CPU per record, writer thread included).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <mutex>
#include <string>
#include <sys/resource.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "agent/audit/audit_log.hpp"

namespace {

double cpu_seconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

const std::vector<std::string> kArgs{"sha256", "/var/log/syslog"};

void produce_new(opsagent::audit::AuditLog& log, std::uint64_t n, std::uint64_t conn) {
  for (std::uint64_t i = 0; i < n; ++i) {
    opsagent::audit::RecordEncoder rec("command");
    rec.unum("conn", conn).str("principal", "alice").str_cut("command", "hash", 1024);
    rec.strings_cut("args", kArgs, 1024).str("decision", "allow");
    rec.str("rule", "roles.operator.hash").str("reason", "allowed by role operator");
    rec.str("policy_version", "0123456789abcdef").str("status", "ok").unum("bytes_out", 90);
    rec.num("duration_ms", 0);
    while (!log.record(std::move(rec))) std::this_thread::yield();  // queue full: back off
  }
}

struct OldWriter {
  std::mutex mutex;
  int fd = -1;
  std::uint64_t seq = 0;
};

void produce_old(OldWriter& w, std::uint64_t n, std::uint64_t conn) {
  for (std::uint64_t i = 0; i < n; ++i) {
    nlohmann::json rec = nlohmann::json::object();
    rec["conn"] = conn;
    rec["principal"] = "alice";
    rec["command"] = "hash";
    rec["args"] = kArgs;
    rec["decision"] = "allow";
    rec["rule"] = "roles.operator.hash";
    rec["reason"] = "allowed by role operator";
    rec["policy_version"] = "0123456789abcdef";
    rec["status"] = "ok";
    rec["bytes_out"] = 90;
    rec["duration_ms"] = 0;
    rec["event"] = "command";
    rec["pid"] = static_cast<long>(::getpid());
    std::lock_guard lock(w.mutex);
    rec["ts"] = "2026-12-03T06:00:00.000000Z";
    rec["seq"] = ++w.seq;
    std::string line = rec.dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
    line.push_back('\n');
    if (::write(w.fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) std::abort();
  }
}

template <typename Body>
void measure(const char* name, std::uint64_t records, int threads, Body body) {
  const double cpu0 = cpu_seconds();
  const auto t0 = std::chrono::steady_clock::now();
  body();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double cpu = cpu_seconds() - cpu0;
  std::printf("%s\n", fmt::format(R"({{"writer":"{}","threads":{},"records":{},"seconds":{:.3f},)"
                                  R"("records_per_s":{:.0f},"cpu_us_per_record":{:.3f}}})",
                                  name, threads, records, secs, static_cast<double>(records) / secs,
                                  cpu * 1e6 / static_cast<double>(records))
                          .c_str());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: opsagent-bench-audit DIR RECORDS THREADS\n");
    return 64;
  }
  const std::filesystem::path dir = argv[1];
  const std::uint64_t records = std::strtoull(argv[2], nullptr, 10);
  const int threads = std::atoi(argv[3]);
  const std::uint64_t per = records / static_cast<std::uint64_t>(threads);

  measure("new", per * threads, threads, [&] {
    auto opened = opsagent::audit::AuditLog::open(dir / "new.jsonl");
    if (!opened) std::abort();
    auto& log = opened.value();
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t) ts.emplace_back([&, t] { produce_new(*log, per, t); });
    for (auto& t : ts) t.join();
    log->flush();
  });
  measure("old", per * threads, threads, [&] {
    OldWriter w;
    w.fd = ::open((dir / "old.jsonl").c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (w.fd < 0) std::abort();
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t) ts.emplace_back([&, t] { produce_old(w, per, t); });
    for (auto& t : ts) t.join();
    ::close(w.fd);
  });
  return 0;
}

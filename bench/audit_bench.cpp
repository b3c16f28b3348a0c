// opsagent-bench-audit: the audit writer's cost, side by side with the writer it replaced.
// Not a test and not installed (scripts/bench-audit.sh runs it).
//   new   RecordEncoder + AuditLog (one writer thread, group commit)
//   old   a nlohmann::json record per call, dumped with ensure_ascii, one write(2) per record
//         under one mutex (the writer before issue 11), reproduced here as the peer
// THREADS producer threads each queue RECORDS/THREADS `command` records like the agent's; the
// run ends when every record is on disk. Prints one JSON object per writer: records, seconds,
// records_per_s, cpu_us_per_record (process user+system CPU per record, writer thread included)
// and, for the new writer, writer_cpu_us_per_record (the audit-writer thread alone: assembling,
// chaining, writing and syncing; its inverse is what the writer can sustain).
// The new writer runs once per chain (sha256, hmac-sha256) and sync policy (none, interval,
// every_record). A last part times the chain alone: HashChain::hash on one record line against
// a one-shot EVP_Digest of the same bytes (the peer).
// With a 4th argument `ship`, only the default writer (sha256, interval) runs, once per shipping
// set-up: off, journald, syslog, both, each to an AF_UNIX datagram socket in DIR drained by a
// receiver thread of this process (like a daemon); it adds shipped / dropped per sink.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <dirent.h>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <poll.h>
#include <sstream>
#include <string>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>

#include "agent/audit/audit_log.hpp"
#include "agent/audit/hash_chain.hpp"
#include "agent/metrics/registry.hpp"

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

// CPU seconds of the thread named `name` (the writer names itself), or 0 when none is running.
double thread_cpu_seconds(const char* name) {
  DIR* d = ::opendir("/proc/self/task");
  if (d == nullptr) return 0;
  double total = 0;
  while (const dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    const std::string base = std::string("/proc/self/task/") + e->d_name;
    std::ifstream comm(base + "/comm");
    std::string n;
    std::getline(comm, n);
    if (n != name) continue;
    std::ifstream stat(base + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    std::istringstream fields(text.substr(text.rfind(')') + 2));
    std::string f;
    long utime = 0;
    long stime = 0;
    for (int i = 3; i <= 15 && fields >> f; ++i) {
      if (i == 14) utime = std::stol(f);
      if (i == 15) stime = std::stol(f);
    }
    total += static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
  }
  ::closedir(d);
  return total;
}

template <typename Body>
void measure(const std::string& name, std::uint64_t records, int threads, Body body) {
  const double cpu0 = cpu_seconds();
  const auto t0 = std::chrono::steady_clock::now();
  const double writer_cpu = body();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double cpu = cpu_seconds() - cpu0;
  const auto n = static_cast<double>(records);
  std::printf("%s\n", fmt::format(R"({{"writer":"{}","threads":{},"records":{},"seconds":{:.3f},)"
                                  R"("records_per_s":{:.0f},"cpu_us_per_record":{:.3f},)"
                                  R"("writer_cpu_us_per_record":{:.3f}}})",
                                  name, threads, records, secs, n / secs, cpu * 1e6 / n,
                                  writer_cpu * 1e6 / n)
                          .c_str());
}

void measure_hash(const std::string& key, std::uint64_t n) {
  const std::string line(330, 'x');  // about the length of the bench's command record
  opsagent::audit::HashChain chain(key);
  opsagent::audit::ChainHash out;
  auto t0 = std::chrono::steady_clock::now();
  for (std::uint64_t i = 0; i < n; ++i) {
    if (!chain.hash(line, out)) std::abort();
  }
  const double chain_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  t0 = std::chrono::steady_clock::now();
  for (std::uint64_t i = 0; i < n; ++i) {
    EVP_Digest(line.data(), line.size(), digest, &length, EVP_sha256(), nullptr);
  }
  const double peer_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%s\n", fmt::format(R"({{"chain":"{}","line_bytes":{},"ns_per_record":{:.0f},)"
                                  R"("peer_evp_digest_ns":{:.0f},"ratio":{:.2f}}})",
                                  chain.algorithm(), line.size(), chain_s * 1e9 / n,
                                  peer_s * 1e9 / n, chain_s / peer_s)
                          .c_str());
}

// A bound AF_UNIX datagram socket drained by a thread until destroyed (a stand-in daemon).
class Receiver {
 public:
  explicit Receiver(const std::filesystem::path& path) : path_(path) {
    std::filesystem::remove(path_);
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path_.c_str());
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) std::abort();
    thread_ = std::thread([this] {
      std::string buf(256 * 1024, '\0');
      while (!stop_) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, 20) <= 0) continue;
        while (::recv(fd_, buf.data(), buf.size(), MSG_DONTWAIT) >= 0) received_.fetch_add(1);
      }
    });
  }
  ~Receiver() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
    std::filesystem::remove(path_);
  }
  [[nodiscard]] std::uint64_t received() const { return received_.load(); }

 private:
  std::filesystem::path path_;
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> received_{0};
  std::thread thread_;
};

// Opens the new writer at `path` with `options`, has `threads` producers queue `per` records
// each, waits until all are written; the CPU seconds of the writer thread.
double run_new_writer(const std::filesystem::path& path,
                      const opsagent::audit::AuditLog::Options& options, std::uint64_t per,
                      int threads) {
  auto opened = opsagent::audit::AuditLog::open(path, options);
  if (!opened) std::abort();
  auto& log = opened.value();
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) ts.emplace_back([&, t] { produce_new(*log, per, t); });
  for (auto& t : ts) t.join();
  log->flush();
  return thread_cpu_seconds("audit-writer");
}

int ship_bench(const std::filesystem::path& dir, std::uint64_t per, int threads) {
  using opsagent::audit::ShipFormat;
  using opsagent::audit::SinkOptions;
  auto& shipped = opsagent::metrics::registry().audit_shipped;
  for (const char* setup : {"off", "journald", "syslog", "both"}) {
    const std::string s = setup;
    std::filesystem::remove(dir / "new.jsonl");
    Receiver journal(dir / "journal.sock");
    Receiver syslog(dir / "log.sock");
    opsagent::audit::AuditLog::Options options;
    const auto sink = [](ShipFormat format, const std::filesystem::path& socket) {
      SinkOptions o;
      o.format = format;
      o.socket = socket.string();
      return o;
    };
    if (s == "journald" || s == "both") {
      options.sinks.push_back(sink(ShipFormat::journald, dir / "journal.sock"));
    }
    if (s == "syslog" || s == "both") {
      options.sinks.push_back(sink(ShipFormat::syslog, dir / "log.sock"));
    }
    std::uint64_t before[2][2];
    for (int k = 0; k < 2; ++k) {
      for (int r = 0; r < 2; ++r) before[k][r] = shipped[k][r].value();
    }
    measure("new sha256 sync=interval ship=" + s, per * threads, threads,
            [&] { return run_new_writer(dir / "new.jsonl", options, per, threads); });
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the receivers catch up
    std::printf(
        "%s\n",
        fmt::format(R"({{"ship":"{}","journald_sent":{},"journald_dropped":{},)"
                    R"("syslog_sent":{},"syslog_dropped":{},"received":{}}})",
                    s, shipped[0][0].value() - before[0][0], shipped[0][1].value() - before[0][1],
                    shipped[1][0].value() - before[1][0], shipped[1][1].value() - before[1][1],
                    journal.received() + syslog.received())
            .c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4 && !(argc == 5 && std::string(argv[4]) == "ship")) {
    std::fprintf(stderr, "usage: opsagent-bench-audit DIR RECORDS THREADS [ship]\n");
    return 64;
  }
  const std::filesystem::path dir = argv[1];
  const std::uint64_t records = std::strtoull(argv[2], nullptr, 10);
  const int threads = std::atoi(argv[3]);
  const std::uint64_t per = records / static_cast<std::uint64_t>(threads);
  if (argc == 5) return ship_bench(dir, per, threads);

  using opsagent::audit::SyncPolicy;
  const std::pair<const char*, SyncPolicy> syncs[] = {{"none", SyncPolicy::none},
                                                      {"interval", SyncPolicy::interval},
                                                      {"every_record", SyncPolicy::every_record}};
  for (const char* key : {"", "bench key"}) {
    for (const auto& [sync_name, sync] : syncs) {
      const std::string name =
          fmt::format("new {} sync={}", *key ? "hmac-sha256" : "sha256", sync_name);
      std::filesystem::remove(dir / "new.jsonl");
      measure(name, per * threads, threads, [&, key = key, sync = sync] {
        opsagent::audit::AuditLog::Options options;
        options.chain_key = key;
        options.sync = sync;
        return run_new_writer(dir / "new.jsonl", options, per, threads);
      });
    }
  }
  measure("old", per * threads, threads, [&] {
    OldWriter w;
    w.fd = ::open((dir / "old.jsonl").c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (w.fd < 0) std::abort();
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t) ts.emplace_back([&, t] { produce_old(w, per, t); });
    for (auto& t : ts) t.join();
    ::close(w.fd);
    return 0.0;
  });
  measure_hash("", 1'000'000);
  measure_hash("bench key", 1'000'000);
  return 0;
}

#include "agent/audit/audit_log.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <optional>
#include <random>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "agent/audit/log_file.hpp"
#include "agent/common/best_effort.hpp"
#include "agent/metrics/registry.hpp"

namespace opsagent::audit {
namespace asio = boost::asio;
namespace {

std::string make_instance() {
  std::random_device rd;
  std::array<char, 17> out{};
  static constexpr char kHex[] = "0123456789abcdef";
  std::uint64_t v = (std::uint64_t{rd()} << 32) ^ rd();
  for (int i = 0; i < 16; ++i, v >>= 4) out[static_cast<std::size_t>(i)] = kHex[v & 0xF];
  return std::string(out.data(), 16);
}

void report_queue_full() noexcept {
  metrics::registry().audit_write_failures.inc();
  // At most one message every 10 s: whoever fills the queue must not flood the operational log.
  static std::atomic<std::int64_t> last_report_s{-1000};
  const std::int64_t now_s = std::chrono::duration_cast<std::chrono::seconds>(
                                 std::chrono::steady_clock::now().time_since_epoch())
                                 .count();
  std::int64_t last = last_report_s.load(std::memory_order_relaxed);
  if (now_s - last < 10 || !last_report_s.compare_exchange_strong(last, now_s)) return;
  log_noexcept(spdlog::level::err,
               "audit log: queue full (writer behind); records that need no wait are lost");
}

}  // namespace

Result<std::unique_ptr<AuditLog>> AuditLog::open(const std::filesystem::path& path,
                                                 Options options) {
  auto fd = open_log_file(path);
  if (!fd) return fd.error();
  if (options.instance.empty()) options.instance = make_instance();
  std::string stamp = "\"host\":";
  append_json_string(stamp, options.host);
  stamp += ",\"instance\":";
  append_json_string(stamp, options.instance);
  stamp += ",\"pid\":" + std::to_string(::getpid());
  WriterOptions writer_options;
  writer_options.max_queue_bytes = options.max_queue_bytes;
  writer_options.sync = options.sync;
  writer_options.sync_interval = options.sync_interval;
  writer_options.sinks = std::move(options.sinks);
  try {
    HashChain chain(options.chain_key);
    writer_options.tail = read_chain_tail(path, chain);
  } catch (const std::exception& e) {
    return Error{ErrorCode::internal, std::string("audit log ") + path.string() + ": " + e.what()};
  }
  writer_options.chain_key = std::move(options.chain_key);
  auto writer = std::make_unique<AuditWriter>(path, std::move(fd.value()), std::move(stamp),
                                              std::move(writer_options));
  return std::unique_ptr<AuditLog>(new AuditLog(std::move(writer), options.instance));
}

std::string AuditLog::encode(const nlohmann::json& record) {
  std::string out;
  append_json_value(out, record);
  return out;
}

bool AuditLog::record(std::string_view event, std::initializer_list<Field> fields) noexcept {
  try {
    RecordEncoder rec(event);
    for (const Field& f : fields) {
      if (!is_reserved_key(f.key)) rec.json(f.key, f.value);
    }
    return record(std::move(rec));
  } catch (const std::exception&) {
    report_unencodable(event);
    return false;
  }
}

bool AuditLog::record(std::string_view event, nlohmann::json fields) noexcept {
  const JsonReleaser release(fields);
  try {
    RecordEncoder rec(event);
    if (fields.is_object()) {
      for (const auto& [k, v] : fields.items()) {
        if (!is_reserved_key(k)) rec.json(k, v);
      }
    }
    return record(std::move(rec));
  } catch (const std::exception&) {
    report_unencodable(event);
    return false;
  }
}

bool AuditLog::record(RecordEncoder&& rec) noexcept {
  PendingRecord* r = nullptr;
  try {
    r = new PendingRecord(rec.take());
  } catch (const std::exception&) {
    report_unencodable("queued");
    return false;
  }
  if (!writer_->enqueue(r, true)) {
    delete r;
    report_queue_full();
    return false;
  }
  return writer_->healthy();
}

Receipt AuditLog::queue(RecordEncoder rec) {
  // Everything that can allocate happens before the record is queued; waiting for it allocates
  // nothing the writer depends on (SECURITY-MATRIX H5).
  auto* record = new SharedRecord(rec.take());
  Receipt receipt(record);
  if (!writer_->enqueue(record, false)) {
    record->fail_unqueued(boost::system::error_code(ESHUTDOWN, boost::system::system_category()));
  }
  return receipt;
}

asio::awaitable<boost::system::error_code> AuditLog::commit(RecordEncoder rec) {
  const Receipt receipt = queue(std::move(rec));
  co_return co_await receipt.wait();
}

void AuditLog::report_unencodable(std::string_view event) noexcept {
  log_noexcept(spdlog::level::err, "audit log: no memory to encode a {} record; it is lost", event);
}

}  // namespace opsagent::audit

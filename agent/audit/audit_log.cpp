#include "agent/audit/audit_log.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <optional>
#include <random>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include "agent/audit/log_file.hpp"
#include "agent/common/best_effort.hpp"
#include "agent/metrics/registry.hpp"

namespace opsagent::audit {
namespace asio = boost::asio;
namespace {

// A record a session awaits. The writer only stores the result and sets `done`; the session
// polls it from its own strand (a few yields, then a timer backing off). The writer thread thus
// never posts to a session's strand: a strand queues a function first and then allocates the
// operation that schedules it, so a failed allocation there would leave the strand stuck, and
// the session hung (SECURITY-MATRIX H5).
class AwaitedRecord final : public PendingRecord {
 public:
  using PendingRecord::PendingRecord;

  bool complete(boost::system::error_code ec) noexcept override {
    ec_ = ec;
    done_.store(true, std::memory_order_release);  // the last touch: the session frees it
    return true;
  }
  [[nodiscard]] bool done() const noexcept { return done_.load(std::memory_order_acquire); }
  [[nodiscard]] boost::system::error_code result() const noexcept { return ec_; }

 private:
  boost::system::error_code ec_;
  std::atomic<bool> done_{false};
};

// Frees the record once the writer is done with it; a session frame destroyed while its record
// is still queued (only when the agent is torn down mid-command) leaves it to the writer's end.
struct RecordOwner {
  std::unique_ptr<AwaitedRecord> record;
  ~RecordOwner() {
    if (record && !record->done()) (void)record.release();
  }
};

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

asio::awaitable<boost::system::error_code> AuditLog::commit(RecordEncoder rec) {
  // Everything that can allocate happens before the record is queued; the wait allocates
  // nothing the writer depends on (SECURITY-MATRIX H5).
  RecordOwner owner{std::make_unique<AwaitedRecord>(rec.take())};
  if (!writer_->enqueue(owner.record.get(), false)) {
    owner.record.reset();
    co_return boost::system::error_code(ESHUTDOWN, boost::system::system_category());
  }
  const auto ex = co_await asio::this_coro::executor;
  asio::steady_timer timer(ex);
  auto pause = std::chrono::microseconds(20);
  for (int yields = 0; !owner.record->done(); ++yields) {
    if (yields < 4) {
      co_await asio::post(ex, asio::use_awaitable);  // from the strand itself: no new schedule
    } else {
      timer.expires_after(pause);
      co_await timer.async_wait(asio::use_awaitable);
      pause = std::min(pause * 2, std::chrono::microseconds(1000));
    }
  }
  co_return owner.record->result();
}

void AuditLog::report_unencodable(std::string_view event) noexcept {
  log_noexcept(spdlog::level::err, "audit log: no memory to encode a {} record; it is lost", event);
}

}  // namespace opsagent::audit

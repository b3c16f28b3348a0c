#include "agent/audit/audit_writer.hpp"

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "agent/audit/log_file.hpp"
#include "agent/common/best_effort.hpp"
#include "agent/common/errno_text.hpp"
#include "agent/metrics/registry.hpp"

namespace opsagent::audit {
namespace {

std::int64_t now_us() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000 + ts.tv_nsec / 1000;
}

}  // namespace

AuditWriter::AuditWriter(std::filesystem::path path, UniqueFd fd, std::string stamp,
                         WriterOptions options)
    : path_(std::move(path)),
      stamp_(std::move(stamp)),
      max_queue_bytes_(options.max_queue_bytes),
      sync_(options.sync),
      sync_interval_(options.sync_interval),
      fd_(std::move(fd)),
      // A torn last line (a crash mid-write) is ended with an LF so that the header starts a
      // line of its own; the header says so and links to the last whole record.
      terminate_torn_(options.tail.torn),
      previous_torn_(options.tail.torn),
      chain_(options.chain_key),
      last_hash_(options.tail.hash),
      batch_hash_(options.tail.hash),
      seq_(options.tail.found ? options.tail.seq : 0) {
  batch_.reserve(std::size_t{64} * 1024);
  for (auto& sink : options.sinks) {
    sinks_.push_back(std::make_unique<DatagramSink>(std::move(sink)));
  }
  thread_ = std::thread([this] { run(); });
  ::pthread_setname_np(thread_.native_handle(), "audit-writer");  // top -H, benchmarks
}

AuditWriter::~AuditWriter() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

bool AuditWriter::enqueue_chain(PendingRecord* first, PendingRecord* last, bool bounded) noexcept {
  bool wake = false;
  {
    std::lock_guard lock(mutex_);
    if (stop_ || (bounded && queued_bytes_ >= max_queue_bytes_)) return false;
    // Under the lock: time order and seq order agree.
    const std::int64_t now = now_us();
    for (PendingRecord* r = first;; r = r->next_) {
      r->time_us_ = now;
      queued_bytes_ += r->body_.size();
      ++queued_;
      if (r == last) break;
    }
    last->next_ = nullptr;
    if (tail_ != nullptr) {
      tail_->next_ = first;
    } else {
      head_ = first;
      wake = true;
    }
    tail_ = last;
  }
  if (wake) wake_.notify_one();
  return true;
}

void AuditWriter::flush() {
  std::unique_lock lock(mutex_);
  const std::uint64_t target = queued_;
  flushed_.wait(lock, [&] { return done_ >= target; });
}

Status AuditWriter::reopen() { return reopen_with("reopen"); }

Status AuditWriter::reopen_with(const char* reason) {
  auto fd = open_log_file(path_);
  if (!fd) return fd.error();
  struct stat now {};
  struct stat old {};
  const bool same_file = ::fstat(fd.value().get(), &now) == 0 &&
                         [&] {
                           std::lock_guard lock(fd_mutex_);
                           return ::fstat(fd_.get(), &old) == 0;
                         }() &&
                         now.st_dev == old.st_dev && now.st_ino == old.st_ino;
  std::lock_guard lock(fd_mutex_);
  // What went to the old file reaches its disk before the new file links to it.
  if (sync_ != SyncPolicy::none && dirty_ && ::fdatasync(fd_.get()) != 0) {
    log_noexcept(spdlog::level::err, "audit log {}: fdatasync before reopening failed: {}",
                 path_.c_str(), common::errno_text(errno));
  }
  dirty_ = false;
  fd_ = std::move(fd.value());
  if (!same_file) {
    // A header still pending (none written since start) keeps what it knew about the torn end
    // of the file before; the new file itself needs no LF.
    if (*header_reason_ == '\0') previous_torn_ = false;
    header_reason_ = reason;
    terminate_torn_ = false;
  }
  return ok_status();
}

Result<bool> AuditWriter::reopen_if_deleted() {
  struct stat st {};
  {
    std::lock_guard lock(fd_mutex_);
    if (::fstat(fd_.get(), &st) != 0) {
      return Error{ErrorCode::internal,
                   "cannot stat audit log " + path_.string() + ": " + common::errno_text(errno)};
    }
  }
  if (st.st_nlink != 0) return false;
  if (auto status = reopen_with("recreated"); !status) return status.error();
  return true;
}

void AuditWriter::complete_all(PendingRecord* head) noexcept {
  while (head != nullptr) {
    PendingRecord* r = head;
    head = r->next_;
    r->next_ = nullptr;
    if (!r->complete(r->result_)) {  // no memory to hand it on: again later
      r->next_ = retry_;
      retry_ = r;
    }
  }
}

void AuditWriter::run() noexcept {
  // SCHED_BATCH: same share of the CPU, but a wake-up of the writer does not preempt a running
  // I/O thread; it runs when a core is free or the I/O thread's slice ends. On a busy machine
  // its batches grow (measured on 2 cores at 8 x 16 pipelined pings: 22 -> 70-85 records per
  // wake-up, the I/O threads preempted 6x less often; scripts/bench-audit.sh). Latency on an
  // idle core is unchanged. A refusal (not seen: no privilege is needed) only costs that.
  sched_param param{};
  (void)::pthread_setschedparam(::pthread_self(), SCHED_BATCH, &param);
  for (;;) {
    PendingRecord* batch = nullptr;
    {
      std::unique_lock lock(mutex_);
      if (retry_ != nullptr) {
        // Completions wait for memory: try again soon, whether or not records arrive.
        wake_.wait_for(lock, std::chrono::milliseconds(1),
                       [&] { return head_ != nullptr || stop_; });
      } else if (unsynced_) {
        wake_.wait_until(lock, last_sync_ + sync_interval_,
                         [&] { return head_ != nullptr || stop_; });
      } else {
        wake_.wait(lock, [&] { return head_ != nullptr || stop_; });
      }
      if (head_ == nullptr && stop_ && retry_ == nullptr) {
        lock.unlock();
        if (unsynced_) sync_now();
        return;
      }
      batch = head_;
      head_ = tail_ = nullptr;
      queued_bytes_ = 0;
    }
    if (retry_ != nullptr) {
      PendingRecord* again = retry_;
      retry_ = nullptr;
      complete_all(again);
    }
    if (unsynced_ && std::chrono::steady_clock::now() >= last_sync_ + sync_interval_) sync_now();
    if (batch == nullptr) continue;
    std::uint64_t count = 0;
    for (PendingRecord* r = batch; r != nullptr; r = r->next_) ++count;
    const boost::system::error_code ec = write_batch(batch);
    for (PendingRecord* r = batch; r != nullptr; r = r->next_) r->result_ = ec;
    complete_all(batch);
    // The file first, then the copies: sessions are completed before anything is shipped, and
    // a batch that failed to be written is not shipped (it is not in the file).
    if (!ec && !sinks_.empty()) ship_batch();
    {
      std::lock_guard lock(mutex_);
      done_ += count;
    }
    flushed_.notify_all();
  }
}

void AuditWriter::append_time(std::int64_t time_us) {
  const std::int64_t second = time_us / 1'000'000;
  if (second != second_) {
    const auto t = static_cast<std::time_t>(second);
    std::tm tm{};
    gmtime_r(&t, &tm);
    (void)std::strftime(second_text_, sizeof second_text_, "%Y-%m-%dT%H:%M:%S", &tm);
    second_ = second;
  }
  batch_.append(second_text_);
  char frac[9] = {'.', '0', '0', '0', '0', '0', '0', 'Z', '"'};
  auto micros = static_cast<int>(time_us % 1'000'000);
  for (int i = 6; i >= 1; --i, micros /= 10) frac[i] = static_cast<char>('0' + micros % 10);
  batch_.append(frac, sizeof frac);
}

bool AuditWriter::append_line_start(std::uint64_t seq, std::int64_t time_us) {
  batch_.append("{\"seq\":");
  char digits[24];
  const auto res = std::to_chars(digits, digits + sizeof digits, seq);
  batch_.append(digits, res.ptr);
  batch_.append(R"(,"prev":")");
  batch_.append(batch_hash_.data(), batch_hash_.size());
  batch_.append(R"(","ts":")");
  append_time(time_us);
  batch_.push_back(',');
  batch_.append(stamp_);
  batch_.push_back(',');
  return true;
}

// Closes the record that starts at batch_[start] and makes its hash the next record's `prev`.
bool AuditWriter::end_line(std::size_t start) {
  batch_.push_back('}');
  const bool ok =
      chain_.hash(std::string_view(batch_).substr(start, batch_.size() - start), batch_hash_);
  batch_.push_back('\n');
  return ok;
}

bool AuditWriter::append_header(std::uint64_t seq, std::int64_t time_us) {
  const std::size_t start = batch_.size();
  append_line_start(seq, time_us);
  batch_.append(R"("event":"audit_file_start","reason":")");
  batch_.append(header_reason_);
  batch_.append(R"(","chain":")");
  batch_.append(chain_.algorithm());
  batch_.push_back('"');
  if (chain_.keyed()) {
    batch_.append(R"(,"key_id":")");
    batch_.append(chain_.key_id());
    batch_.push_back('"');
  }
  if (previous_torn_) batch_.append(",\"previous_torn\":true");
  return end_line(start);
}

bool AuditWriter::append_record(const PendingRecord& r, std::uint64_t seq) {
  const std::size_t start = batch_.size();
  append_line_start(seq, r.time_us_);
  batch_.append(r.body_);
  return end_line(start);
}

void AuditWriter::ship_batch() noexcept {
  const std::string_view all(batch_);
  std::size_t start = 0;
  while (start < all.size()) {
    std::size_t lf = all.find('\n', start);
    if (lf == std::string_view::npos) lf = all.size();
    const std::string_view line = all.substr(start, lf - start);
    start = lf + 1;
    if (line.empty()) continue;  // the LF that ended a torn line
    const RecordFields fields = scan_record(line);
    for (auto& sink : sinks_) sink->ship(line, fields);
  }
}

void AuditWriter::sync_now() noexcept {
  std::lock_guard lock(fd_mutex_);
  if (dirty_ && ::fdatasync(fd_.get()) != 0) {
    log_noexcept(spdlog::level::err, "audit log {}: fdatasync failed: {}", path_.c_str(),
                 common::errno_text(errno));
  }
  dirty_ = false;
  unsynced_ = false;
  last_sync_ = std::chrono::steady_clock::now();
}

boost::system::error_code AuditWriter::write_batch(PendingRecord* head) noexcept {
  // Under the file's lock from the first byte: a reopen cannot come between the header
  // decision and the write.
  std::lock_guard lock(fd_mutex_);
  std::uint64_t seq = seq_;
  batch_hash_ = last_hash_;
  bool hashed = true;
  try {
    batch_.clear();
    if (*header_reason_ != '\0') {
      if (terminate_torn_) batch_.push_back('\n');
      hashed = append_header(++seq, head->time_us_);
    }
    for (PendingRecord* r = head; r != nullptr && hashed; r = r->next_) {
      hashed = append_record(*r, ++seq);
    }
  } catch (const std::bad_alloc&) {
    hashed = false;
  }
  if (!hashed) {
    log_noexcept(spdlog::level::err,
                 "audit log: no memory to assemble or chain a batch of records; they are lost");
    return boost::system::error_code(ENOMEM, boost::system::system_category());
  }
  // One write per batch; a short write on a regular file means the disk is full.
  std::size_t done = 0;
  while (done < batch_.size()) {
    const ssize_t n = ::write(fd_.get(), batch_.data() + done, batch_.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : ENOSPC;
      // Take a torn fragment back off the file so the next record starts on a line of its own.
      struct stat st {};
      if (done > 0 && ::fstat(fd_.get(), &st) == 0 && st.st_size >= static_cast<off_t>(done) &&
          ::ftruncate(fd_.get(), st.st_size - static_cast<off_t>(done)) != 0) {
        log_noexcept(spdlog::level::critical, "audit log {}: cannot remove a partial batch: {}",
                     path_.c_str(), common::errno_text(errno));
      }
      metrics::registry().audit_write_failures.inc();
      if (healthy_.exchange(false)) {
        log_noexcept(spdlog::level::critical,
                     "audit log {} write failed: {}; refusing new commands until it recovers",
                     path_.c_str(), common::errno_text(err));
      }
      return boost::system::error_code(err, boost::system::system_category());
    }
    done += static_cast<std::size_t>(n);
  }
  seq_ = seq;
  last_hash_ = batch_hash_;
  header_reason_ = "";
  terminate_torn_ = false;
  previous_torn_ = false;
  dirty_ = true;
  if (sync_ == SyncPolicy::every_record) {
    // Completions wait for the disk: nothing acknowledged is lost to a power failure.
    if (::fdatasync(fd_.get()) != 0) {
      const int err = errno;
      metrics::registry().audit_write_failures.inc();
      if (healthy_.exchange(false)) {
        log_noexcept(spdlog::level::critical,
                     "audit log {} fdatasync failed: {}; refusing new commands until it recovers",
                     path_.c_str(), common::errno_text(err));
      }
      return boost::system::error_code(err, boost::system::system_category());
    }
    dirty_ = false;
  } else if (sync_ == SyncPolicy::interval) {
    unsynced_ = true;
  }
  if (!healthy_.exchange(true)) {
    log_noexcept(spdlog::level::warn, "audit log {} writable again", path_.c_str());
  }
  return {};
}

}  // namespace opsagent::audit

// HeldReplies and audit receipts: a held reply leaves only once its audit record is written; one
// whose record failed says so instead of OK (fail closed); a receipt dropped early loses nothing.

#include "agent/server/held_replies.hpp"

#include <filesystem>
#include <fstream>
#include <future>
#include <string>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <gtest/gtest.h>

#include "agent/audit/audit_log.hpp"

namespace opsagent::server {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;

const boost::system::error_code kNoSpace(ENOSPC, boost::system::system_category());

// A receipt for a record that is not queued: completed at once with `ec`.
audit::Receipt completed_receipt(boost::system::error_code ec) {
  auto* record = new audit::SharedRecord("\"event\":\"test\"");
  audit::Receipt receipt(record);
  record->fail_unqueued(ec);
  return receipt;
}

std::string take(HeldReplies& held) {
  asio::io_context io;
  auto out = asio::co_spawn(io, held.take(), asio::use_future);
  io.run();
  return out.get();
}

TEST(HeldReplies, HandsOutHeldLinesInOrder) {
  HeldReplies held;
  held.add("OK a\n");
  held.add_checked("OK pong\n", completed_receipt({}), true, protocol::Mode::text);
  held.add("OK b\n");
  EXPECT_FALSE(held.empty());
  EXPECT_EQ(take(held), "OK a\nOK pong\nOK b\n");
  EXPECT_TRUE(held.empty());
}

TEST(HeldReplies, ALineWhoseRecordFailedSaysSoInItsOwnFraming) {
  HeldReplies held;
  held.add_checked("OK pong\n", completed_receipt({}), true, protocol::Mode::text);
  held.add_checked("OK pong\n", completed_receipt(kNoSpace), true, protocol::Mode::text);
  held.add_checked("{\"ok\":true}\n", completed_receipt(kNoSpace), true, protocol::Mode::json);
  held.add_checked("OK help\n", completed_receipt(kNoSpace), false, protocol::Mode::text);
  const std::string out = take(held);
  EXPECT_EQ(out, "OK pong\n" + audit_unavailable_line(protocol::Mode::text) +
                     audit_unavailable_line(protocol::Mode::json) + "OK help\n");
  EXPECT_EQ(audit_unavailable_line(protocol::Mode::text),
            "ERR internal audit log unavailable; commands are refused\n");
}

TEST(HeldReplies, IsFullAfterItsReceiptBound) {
  HeldReplies held;
  for (std::size_t i = 0; i + 1 < HeldReplies::kMaxReceipts; ++i) {
    held.add_checked("OK pong\n", completed_receipt({}), true, protocol::Mode::text);
  }
  EXPECT_FALSE(held.full());
  held.add_checked("OK pong\n", completed_receipt({}), true, protocol::Mode::text);
  EXPECT_TRUE(held.full());
  held.clear();
  EXPECT_TRUE(held.empty());
}

class HeldRepliesWithLog : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "opsagent-held-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    auto log = audit::AuditLog::open(dir_ / "audit.jsonl");
    ASSERT_TRUE(log.ok());
    log_ = std::move(log).value();
  }
  void TearDown() override {
    log_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  [[nodiscard]] std::string file() const {
    std::ifstream in(dir_ / "audit.jsonl", std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }
  fs::path dir_;
  std::unique_ptr<audit::AuditLog> log_;
};

// Once take() hands the lines out, every record they stand for is in the file.
TEST_F(HeldRepliesWithLog, TakeWaitsUntilTheRecordsAreInTheFile) {
  HeldReplies held;
  for (int i = 0; i < 50; ++i) {
    audit::RecordEncoder rec("command");
    rec.num("n", std::int64_t{i});
    held.add_checked("OK pong\n", log_->queue(std::move(rec)), true, protocol::Mode::text);
  }
  std::string expected;
  for (int i = 0; i < 50; ++i) expected += "OK pong\n";
  EXPECT_EQ(take(held), expected);
  const std::string text = file();
  for (int i = 0; i < 50; ++i) {
    EXPECT_NE(text.find("\"n\":" + std::to_string(i) + "}\n"), std::string::npos) << i;
  }
}

// A session that ends before its records are written drops its receipts; the writer still
// writes the records and frees them (ASan's leak check covers the freeing).
TEST_F(HeldRepliesWithLog, ReceiptsDroppedEarlyLoseNoRecord) {
  {
    HeldReplies held;
    for (int i = 0; i < 20; ++i) {
      audit::RecordEncoder rec("command");
      rec.num("dropped", std::int64_t{i});
      held.add_checked("OK pong\n", log_->queue(std::move(rec)), true, protocol::Mode::text);
    }
  }
  log_->flush();
  const std::string text = file();
  for (int i = 0; i < 20; ++i) {
    EXPECT_NE(text.find("\"dropped\":" + std::to_string(i) + "}\n"), std::string::npos) << i;
  }
}

}  // namespace
}  // namespace opsagent::server

// record_buffers: per-thread reuse of audit record memory, bounded, never shared between threads
// (off under AddressSanitizer, which must see each record's memory freed).

#include "agent/audit/record_buffers.hpp"

#include <cstddef>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "agent/audit/receipt.hpp"
#include "agent/audit/record_encoder.hpp"

namespace opsagent::audit::record_buffers {
namespace {

TEST(RecordBuffers, ABodyGivenBackIsTheNextOneTakenOnTheSameThread) {
  if (!kCaching) GTEST_SKIP() << "no reuse under AddressSanitizer";
  std::string body = take_body();
  EXPECT_TRUE(body.empty());
  EXPECT_GE(body.capacity(), kBodyCapacity);
  body = R"("event":"ping")";
  const char* buffer = body.data();
  give_body(std::move(body));
  const std::string again = take_body();
  EXPECT_EQ(again.data(), buffer);
  EXPECT_TRUE(again.empty());
}

TEST(RecordBuffers, OversizedAndUndersizedBodiesAreFreedNotKept) {
  if (!kCaching) GTEST_SKIP() << "no reuse under AddressSanitizer";
  std::string kept = take_body();
  const char* kept_buffer = kept.data();
  give_body(std::move(kept));  // the top of the cache
  std::string big;
  big.reserve(kMaxKeptCapacity * 2);
  give_body(std::move(big));
  std::string small = "short";  // in the string itself: nothing to keep
  give_body(std::move(small));
  // Neither went on top of the cache.
  EXPECT_EQ(take_body().data(), kept_buffer);
}

TEST(RecordBuffers, AThreadKeepsAtMostItsBoundOfBodies) {
  if (!kCaching) GTEST_SKIP() << "no reuse under AddressSanitizer";
  std::vector<std::string> bodies;
  for (std::size_t i = 0; i < kMaxKept + 10; ++i) bodies.push_back(take_body());
  std::vector<const char*> given;
  for (auto& body : bodies) {
    given.push_back(body.data());
    give_body(std::move(body));
  }
  // The first kMaxKept given were kept and come back last in, first out; the 10 after them
  // found the cache full and were freed.
  for (std::size_t i = 0; i < kMaxKept; ++i) {
    EXPECT_EQ(take_body().data(), given[kMaxKept - 1 - i]) << i;
  }
}

TEST(RecordBuffers, AThreadThatNeverTookFreesWhatItIsGiven) {
  // The writer thread frees fire-and-forget records it never made: nothing is cached there, and
  // giving allocates nothing (the cache is not even created).
  std::thread other([] {
    std::string body;
    body.reserve(kBodyCapacity);
    give_body(std::move(body));
    void* block = ::operator new(64);
    give_block(block, 64);
  });
  other.join();
  SUCCEED();  // ASan/LSan would report a leak or a bad free
}

TEST(RecordBuffers, SharedRecordsReuseTheirBlocksAndBodies) {
  if (!kCaching) GTEST_SKIP() << "no reuse under AddressSanitizer";
  RecordEncoder first("command");
  first.str("principal", "alice");
  auto* record = new SharedRecord(first.take());
  const void* block = record;
  record->fail_unqueued({});  // the writer's share
  record->release();          // the caller's: freed into this thread's cache
  RecordEncoder second("command");
  auto* again = new SharedRecord(second.take());
  EXPECT_EQ(static_cast<const void*>(again), block);
  again->fail_unqueued({});
  again->release();
}

}  // namespace
}  // namespace opsagent::audit::record_buffers

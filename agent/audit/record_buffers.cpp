#include "agent/audit/record_buffers.hpp"

#include <new>
#include <utility>
#include <vector>

namespace opsagent::audit::record_buffers {
namespace {

// One thread's cache. Blocks of one size are kept: the first size asked for on the thread (the
// agent asks for one, a SharedRecord's); other sizes are allocated and freed as they come.
struct Cache {
  Cache() = default;
  Cache(const Cache&) = delete;
  Cache& operator=(const Cache&) = delete;
  Cache(Cache&&) = delete;
  Cache& operator=(Cache&&) = delete;
  ~Cache();

  std::vector<std::string> bodies;  // reserved on the thread's first take: give never grows it
  std::vector<void*> blocks;        // likewise
  std::size_t block_size = 0;
};

// True from this thread's first take until its cache is destroyed (thread exit); while false,
// what is given back is freed. Trivially destructible, so it can be read at any time.
// NOLINTBEGIN(cppcoreguidelines-avoid-non-const-global-variables): per thread, by design
thread_local bool g_alive = false;
thread_local Cache g_cache;
// NOLINTEND(cppcoreguidelines-avoid-non-const-global-variables)

Cache::~Cache() {
  g_alive = false;
  for (void* block : blocks) ::operator delete(block);
}

// This thread's cache, made on its first take; null when nothing is cached (kCaching).
Cache* cache_for_take() {
  if (!kCaching) return nullptr;
  if (!g_alive) {
    g_cache.bodies.reserve(kMaxKept);  // may throw: take_* may
    g_cache.blocks.reserve(kMaxKept);
    g_alive = true;
  }
  return &g_cache;
}

}  // namespace

std::string take_body() {
  Cache* cache = cache_for_take();
  if (cache != nullptr && !cache->bodies.empty()) {
    std::string body = std::move(cache->bodies.back());
    cache->bodies.pop_back();
    return body;
  }
  std::string body;
  body.reserve(kBodyCapacity);
  return body;
}

void give_body(std::string&& body) noexcept {
  // g_alive first: the cache itself may not be touched on a thread that never took (or after
  // it was destroyed).
  if (!g_alive) return;
  const std::size_t capacity = body.capacity();
  if (capacity < kBodyCapacity || capacity > kMaxKeptCapacity) return;
  if (g_cache.bodies.size() >= g_cache.bodies.capacity()) return;  // full
  body.clear();
  g_cache.bodies.push_back(std::move(body));  // within the reservation: no allocation
}

void* take_block(std::size_t size) {
  Cache* cache = cache_for_take();
  if (cache == nullptr) return ::operator new(size);
  if (cache->block_size == 0) cache->block_size = size;
  if (size == cache->block_size && !cache->blocks.empty()) {
    void* block = cache->blocks.back();
    cache->blocks.pop_back();
    return block;
  }
  return ::operator new(size);
}

void give_block(void* block, std::size_t size) noexcept {
  if (block == nullptr) return;
  if (g_alive && size == g_cache.block_size && g_cache.blocks.size() < g_cache.blocks.capacity()) {
    g_cache.blocks.push_back(block);  // within the reservation: no allocation
    return;
  }
  ::operator delete(block);
}

}  // namespace opsagent::audit::record_buffers

// opsagent-loadgen: a TLS 1.3 load generator for benchmarks (bench/, scripts/bench-peers.sh).
// Not a test and not installed. It speaks three line protocols over mutual TLS:
//   opsagent  a greeting line, then per request data lines ("| ", "! ") and one final line
//             ("OK …" or "ERR …")
//   redis     Redis's inline protocol: one request line, one reply line (+, -, :)
//   line      one reply line per request line (`openssl s_server -rev`)
// Modes:
//   requests   N connections made first, then each keeps D requests in flight (pipelining)
//              for --duration seconds or until --count requests completed
//   idle       N connections made (greeting read), "ready" on stderr, held for --duration
//              seconds without a request, then closed: the server's memory per idle session.
//              With --probe, one request is then sent on each held connection in turn (a
//              sweep, one at a time): the latency of a session among N idle ones
//   handshake  N loops (1 = serial) each making a new connection per request: TCP connect,
//              full TLS handshake (no resumption), greeting, one request, its reply, close;
//              with --resume 1 each loop offers the session (TLS 1.3 ticket) of its previous
//              connection, so every connection after a loop's first is a resumed handshake
// Prints one JSON object: requests, seconds, req_per_s, latency percentiles, client CPU.
//
// The same binary drives both sides of each comparison, so client costs cancel out of ratios.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <sys/resource.h>
#include <thread>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <fmt/format.h>

#include "bench/latency_stats.hpp"

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using Stream = ssl::stream<tcp::socket>;

namespace {

constexpr auto kUse = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kReadChunk = 64 * 1024;

enum class Proto { opsagent, redis, line };
enum class Mode { requests, handshake, idle };

struct Options {
  std::string host = "127.0.0.1";
  std::string port;
  std::string cert, key, ca;
  Proto proto = Proto::opsagent;
  Mode mode = Mode::requests;
  std::string request;  // without the line end
  int conns = 1;
  int depth = 1;
  int threads = 1;
  double duration = 5.0;
  long count = 0;       // 0: run for `duration`
  bool probe = false;   // idle mode: a sweep of one request per held connection at the end
  bool resume = false;  // handshake mode: resume each loop's previous session
  double rate = 0;  // requests mode: requests/s over all connections (0: as fast as replies come)
};

[[noreturn]] void usage(const char* problem) {
  std::fprintf(
      stderr,
      "opsagent-loadgen: %s\n"
      "usage: opsagent-loadgen --port P --cert C --key K --ca CA\n"
      "  [--host 127.0.0.1] [--proto opsagent|redis|line] [--mode requests|handshake|idle]\n"
      "  [--request LINE] [--conns N] [--depth D] [--threads T]\n"
      "  [--duration SECONDS | --count N] [--probe] [--rate REQUESTS_PER_S]\n",
      problem);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--probe") {
      o.probe = true;
      continue;
    }
    if (i + 1 >= argc) usage(fmt::format("{} needs a value", arg).c_str());
    const std::string value = argv[++i];
    if (arg == "--host") {
      o.host = value;
    } else if (arg == "--port") {
      o.port = value;
    } else if (arg == "--cert") {
      o.cert = value;
    } else if (arg == "--key") {
      o.key = value;
    } else if (arg == "--ca") {
      o.ca = value;
    } else if (arg == "--proto") {
      if (value == "opsagent") {
        o.proto = Proto::opsagent;
      } else if (value == "redis") {
        o.proto = Proto::redis;
      } else if (value == "line") {
        o.proto = Proto::line;
      } else {
        usage("--proto: opsagent, redis or line");
      }
    } else if (arg == "--mode") {
      if (value == "requests") {
        o.mode = Mode::requests;
      } else if (value == "handshake") {
        o.mode = Mode::handshake;
      } else if (value == "idle") {
        o.mode = Mode::idle;
      } else {
        usage("--mode: requests, handshake or idle");
      }
    } else if (arg == "--resume") {
      o.resume = value == "1" || value == "yes";
    } else if (arg == "--request") {
      o.request = value;
    } else if (arg == "--conns") {
      o.conns = std::atoi(value.c_str());
    } else if (arg == "--depth") {
      o.depth = std::atoi(value.c_str());
    } else if (arg == "--threads") {
      o.threads = std::atoi(value.c_str());
    } else if (arg == "--duration") {
      o.duration = std::atof(value.c_str());
    } else if (arg == "--rate") {
      o.rate = std::atof(value.c_str());
      if (!(o.rate > 0)) usage("--rate: requests per second > 0");
    } else if (arg == "--count") {
      o.count = std::atol(value.c_str());
    } else {
      usage(fmt::format("unknown option {}", arg).c_str());
    }
  }
  if (o.port.empty() || o.cert.empty() || o.key.empty() || o.ca.empty()) {
    usage("--port, --cert, --key and --ca are required");
  }
  if (o.conns < 1 || o.depth < 1 || o.threads < 1) usage("--conns, --depth, --threads >= 1");
  if (o.request.empty()) o.request = o.proto == Proto::redis ? "PING" : "ping";
  return o;
}

ssl::context make_context(const Options& o) {
  ssl::context ctx(ssl::context::tls_client);
  SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_3_VERSION);
  // Without --resume every connection of the handshake mode is a full handshake: no session
  // cache, no tickets. With it, each loop keeps its last session itself (SSL_get1_session).
  SSL_CTX_set_session_cache_mode(ctx.native_handle(), SSL_SESS_CACHE_OFF);
  if (!o.resume) SSL_CTX_set_options(ctx.native_handle(), SSL_OP_NO_TICKET);
  ctx.use_certificate_chain_file(o.cert);
  ctx.use_private_key_file(o.key, ssl::context::pem);
  ctx.load_verify_file(o.ca);
  ctx.set_verify_mode(ssl::verify_peer);
  return ctx;
}

// Splits replies out of the bytes read; knows where each protocol's reply ends.
class ReplyScanner {
 public:
  explicit ReplyScanner(Proto proto) : proto_(proto) {}

  /// Appends `data`; returns how many complete replies it finished.
  int feed(std::string_view data) {
    pending_.append(data);
    int replies = 0;
    std::size_t pos = 0;
    for (;;) {
      const void* nl = std::memchr(pending_.data() + pos, '\n', pending_.size() - pos);
      if (nl == nullptr) break;
      const auto end = static_cast<std::size_t>(static_cast<const char*>(nl) - pending_.data());
      const char first = end > pos ? pending_[pos] : '\0';
      pos = end + 1;
      if (proto_ == Proto::opsagent && (first == '|' || first == '!')) continue;  // data line
      ++replies;
    }
    pending_.erase(0, pos);
    return replies;
  }

 private:
  Proto proto_;
  std::string pending_;
};

struct Shared {
  const Options& opts;
  ssl::context& ctx;
  tcp::resolver::results_type endpoints;
  Clock::time_point deadline;
  std::atomic<long> issued{0};
  std::atomic<long> errors{0};
  std::atomic<long> resumed{0};  // handshake mode with --resume: connections that resumed
};

struct Conn {
  std::unique_ptr<Stream> stream;
  opsagent::bench::LatencyStats stats;
  long done = 0;
};

// Reads the greeting line the agent sends after the handshake.
asio::awaitable<bool> read_greeting(Stream& s, ReplyScanner& scanner, std::vector<char>& buf) {
  for (;;) {
    const auto r = co_await s.async_read_some(asio::buffer(buf), kUse);
    if (std::get<0>(r)) co_return false;
    if (scanner.feed(std::string_view(buf.data(), std::get<1>(r))) > 0) co_return true;
  }
}

asio::awaitable<bool> open(Shared& sh, Conn& c, SSL_SESSION* resume = nullptr) {
  auto exec = co_await asio::this_coro::executor;
  c.stream = std::make_unique<Stream>(exec, sh.ctx);
  if (resume != nullptr) SSL_set_session(c.stream->native_handle(), resume);
  const auto connected = co_await asio::async_connect(c.stream->next_layer(), sh.endpoints, kUse);
  if (std::get<0>(connected)) co_return false;
  c.stream->next_layer().set_option(tcp::no_delay(true));
  const auto hs = co_await c.stream->async_handshake(ssl::stream_base::client, kUse);
  if (std::get<0>(hs)) {
    std::fprintf(stderr, "handshake: %s\n", std::get<0>(hs).message().c_str());
    co_return false;
  }
  co_return true;
}

bool may_issue(Shared& sh) {
  if (sh.opts.count > 0) return sh.issued.fetch_add(1) < sh.opts.count;
  return Clock::now() < sh.deadline;
}

asio::awaitable<void> connect_one(Shared& sh, Conn& c) {
  const bool ok = co_await open(sh, c);
  if (!ok) {
    ++sh.errors;
    c.stream.reset();
    co_return;
  }
  if (sh.opts.proto == Proto::opsagent) {
    ReplyScanner scanner(sh.opts.proto);
    std::vector<char> buf(kReadChunk);
    const bool greeted = co_await read_greeting(*c.stream, scanner, buf);
    if (!greeted) {
      ++sh.errors;
      c.stream.reset();
    }
  }
}

// Keeps up to `depth` requests in flight on one connection until the run ends. With --rate, the
// connection sends its share of the rate on a fixed schedule, in bursts that fill the pipeline
// (a connection behind its schedule catches up), so that two servers are compared at the same
// load rather than each at its own saturation.
asio::awaitable<void> drive(Shared& sh, Conn& c) {
  if (!c.stream) co_return;
  const auto interval = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(sh.opts.rate > 0 ? sh.opts.conns / sh.opts.rate : 0.0));
  auto next_send = Clock::now();
  asio::steady_timer pace(co_await asio::this_coro::executor);
  const std::string line = sh.opts.request + (sh.opts.proto == Proto::redis ? "\r\n" : "\n");
  ReplyScanner scanner(sh.opts.proto);
  std::vector<char> buf(kReadChunk);
  std::deque<Clock::time_point> sent;
  std::string out;
  bool stopping = false;
  for (;;) {
    out.clear();
    // Paced: nothing until the schedule says so, then a burst that fills the pipeline, as the
    // unpaced load sends (the server's batching stays the same, only the rate is fixed).
    const bool due = interval.count() == 0 || Clock::now() >= next_send;
    while (due && !stopping && static_cast<int>(sent.size()) < sh.opts.depth) {
      next_send += interval;
      if (!may_issue(sh)) {
        stopping = true;
        break;
      }
      out += line;
      sent.push_back(Clock::now());
    }
    if (!out.empty()) {
      const auto w = co_await asio::async_write(*c.stream, asio::buffer(out), kUse);
      if (std::get<0>(w)) {
        ++sh.errors;
        co_return;
      }
    }
    if (sent.empty()) {
      if (stopping) break;
      pace.expires_at(next_send);  // ahead of schedule, nothing in flight
      co_await pace.async_wait(kUse);
      continue;
    }
    const auto r = co_await c.stream->async_read_some(asio::buffer(buf), kUse);
    if (std::get<0>(r)) {
      ++sh.errors;
      co_return;
    }
    int replies = scanner.feed(std::string_view(buf.data(), std::get<1>(r)));
    const auto now = Clock::now();
    while (replies-- > 0 && !sent.empty()) {
      c.stats.add(std::chrono::duration_cast<std::chrono::nanoseconds>(now - sent.front()).count());
      sent.pop_front();
      ++c.done;
    }
  }
}

// Idle mode's probe: one request on each held connection in turn, each awaited before the next.
asio::awaitable<void> sweep(Shared& sh, std::vector<Conn>& conns,
                            opsagent::bench::LatencyStats& stats) {
  const std::string line = sh.opts.request + (sh.opts.proto == Proto::redis ? "\r\n" : "\n");
  std::vector<char> buf(kReadChunk);
  for (auto& c : conns) {
    if (!c.stream) continue;
    ReplyScanner scanner(sh.opts.proto);
    const auto start = Clock::now();
    const auto w = co_await asio::async_write(*c.stream, asio::buffer(line), kUse);
    int replies = 0;
    bool failed = static_cast<bool>(std::get<0>(w));
    while (!failed && replies == 0) {
      const auto r = co_await c.stream->async_read_some(asio::buffer(buf), kUse);
      failed = static_cast<bool>(std::get<0>(r));
      if (!failed) replies = scanner.feed(std::string_view(buf.data(), std::get<1>(r)));
    }
    if (failed) {
      ++sh.errors;
      continue;
    }
    stats.add(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count());
  }
}

// A new connection per request: connect, full handshake, greeting, request, reply, close.
asio::awaitable<void> handshake_loop(Shared& sh, Conn& c) {
  const std::string line = sh.opts.request + (sh.opts.proto == Proto::redis ? "\r\n" : "\n");
  std::vector<char> buf(kReadChunk);
  std::unique_ptr<SSL_SESSION, decltype(&SSL_SESSION_free)> session(nullptr, &SSL_SESSION_free);
  while (may_issue(sh)) {
    const auto start = Clock::now();
    Conn one;
    const bool ok = co_await open(sh, one, session.get());
    if (!ok) {
      ++sh.errors;
      continue;
    }
    ReplyScanner scanner(sh.opts.proto);
    if (sh.opts.proto == Proto::opsagent) {
      const bool greeted = co_await read_greeting(*one.stream, scanner, buf);
      if (!greeted) {
        ++sh.errors;
        continue;
      }
    }
    const auto w = co_await asio::async_write(*one.stream, asio::buffer(line), kUse);
    if (std::get<0>(w)) {
      ++sh.errors;
      continue;
    }
    int replies = 0;
    bool failed = false;
    while (replies == 0) {
      const auto r = co_await one.stream->async_read_some(asio::buffer(buf), kUse);
      if (std::get<0>(r)) {
        failed = true;
        break;
      }
      replies = scanner.feed(std::string_view(buf.data(), std::get<1>(r)));
    }
    if (failed) {
      ++sh.errors;
      continue;
    }
    if (sh.opts.resume) {
      SSL* ssl = one.stream->native_handle();
      if (SSL_session_reused(ssl) == 1) ++sh.resumed;
      // The ticket arrived with the first reply (TLS 1.3 sends it after the handshake). The
      // socket is closed without close_notify, and SSL_free would then mark the session
      // unusable: say the shutdown happened.
      session.reset(SSL_get1_session(ssl));
      SSL_set_shutdown(ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    }
    boost::system::error_code ec;
    one.stream->next_layer().close(ec);
    c.stats.add(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count());
    ++c.done;
  }
}

void run_all(asio::io_context& io, int threads) {
  std::vector<std::thread> pool;
  for (int i = 1; i < threads; ++i) pool.emplace_back([&io] { io.run(); });
  io.run();
  for (auto& t : pool) t.join();
  io.restart();
}

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  const Options opts = parse(argc, argv);
  asio::io_context io;
  ssl::context ctx = make_context(opts);
  tcp::resolver resolver(io);
  Shared sh{opts, ctx, resolver.resolve(opts.host, opts.port), {}, {}, {}};
  std::vector<Conn> conns(static_cast<std::size_t>(opts.conns));

  if (opts.mode != Mode::handshake) {
    // In waves, so that the server's cap on concurrent handshakes is never what is measured.
    constexpr std::size_t kWave = 100;
    for (std::size_t i = 0; i < conns.size(); i += kWave) {
      for (std::size_t j = i; j < std::min(conns.size(), i + kWave); ++j) {
        asio::co_spawn(io, connect_one(sh, conns[j]), asio::detached);
      }
      run_all(io, opts.threads);
    }
  }
  if (opts.mode == Mode::idle) {
    long open_conns = 0;
    for (const auto& c : conns) open_conns += c.stream ? 1 : 0;
    std::fprintf(stderr, "ready %ld\n", open_conns);
    std::this_thread::sleep_for(std::chrono::duration<double>(opts.duration));
    opsagent::bench::LatencyStats probed;
    if (opts.probe) {
      asio::co_spawn(io, sweep(sh, conns, probed), asio::detached);
      run_all(io, 1);
    }
    std::printf("{\"mode\":\"idle\",\"conns\":%ld,\"errors\":%ld,\"probed\":%zu,%s}\n", open_conns,
                sh.errors.load(), probed.count(), probed.json_fields().c_str());
    return open_conns == opts.conns && sh.errors.load() == 0 ? 0 : 1;
  }
  const double cpu_before = cpu_seconds();
  const auto start = Clock::now();
  sh.deadline = start + std::chrono::duration_cast<Clock::duration>(
                            std::chrono::duration<double>(opts.duration));
  for (auto& c : conns) {
    if (opts.mode == Mode::requests) {
      asio::co_spawn(io, drive(sh, c), asio::detached);
    } else {
      asio::co_spawn(io, handshake_loop(sh, c), asio::detached);
    }
  }
  run_all(io, opts.threads);
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const double cpu = cpu_seconds() - cpu_before;

  opsagent::bench::LatencyStats all;
  long done = 0;
  for (auto& c : conns) {
    done += c.done;
    all.merge(c.stats);
  }
  std::printf(
      "{\"mode\":\"%s\",\"conns\":%d,\"depth\":%d,\"requests\":%ld,\"errors\":%ld,"
      "\"resumed\":%ld,\"seconds\":%.3f,\"req_per_s\":%.1f,%s,\"client_cpu_s\":%.3f}\n",
      opts.mode == Mode::requests ? "requests" : "handshake", opts.conns, opts.depth, done,
      sh.errors.load(), sh.resumed.load(), seconds,
      seconds > 0 ? static_cast<double>(done) / seconds : 0.0, all.json_fields().c_str(), cpu);
  return done > 0 ? 0 : 1;
}

#include "tests/support/metrics_probe.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <regex>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

#include "tests/support/sanitizer.hpp"

namespace opsagent::testing {

std::uint16_t metrics_port(const AgentProcess& agent, std::chrono::milliseconds wait) {
  static const std::regex line(R"(metrics endpoint on https?://127\.0\.0\.1:(\d+)/metrics)");
  const auto deadline = std::chrono::steady_clock::now() + wait;
  for (;;) {
    std::smatch m;
    const std::string log = agent.log();
    if (std::regex_search(log, m, line)) return static_cast<std::uint16_t>(std::stoi(m[1].str()));
    if (agent.port() == 0 || std::chrono::steady_clock::now() > deadline) return 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::string http_exchange(std::uint16_t port, const std::string& request) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(request.size())) {
    const auto deadline = std::chrono::steady_clock::now() + scaled(std::chrono::seconds(10));
    char buf[4096];
    while (std::chrono::steady_clock::now() < deadline && response.size() < (4U << 20)) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      response.append(buf, static_cast<std::size_t>(n));
    }
  }
  ::close(fd);
  return response;
}

std::string scrape(std::uint16_t port) {
  return http_exchange(port, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
}

double sample(const std::string& body, const std::string& series) {
  const std::string key = "\n" + series + " ";
  const auto at = body.find(key);
  if (at == std::string::npos) return -1;
  return std::stod(body.substr(at + key.size()));
}

}  // namespace opsagent::testing

#include "agent/client/host_result.hpp"

#include <algorithm>
#include <array>

namespace opsagent::client {
namespace {

int class_status(const HostResult& r) {
  switch (r.status) {
    case HostStatus::ok:
      return exit_status::kOk;
    case HostStatus::failed:
      return exit_status::kFailed;
    case HostStatus::denied:
      return exit_status::kDenied;
    case HostStatus::unreachable:
      return exit_status::kUnreachable;
    case HostStatus::timeout:
      return exit_status::kTimeout;
    case HostStatus::tls_error:
      return exit_status::kTls;
    case HostStatus::cancelled:
    case HostStatus::not_started:
      return exit_status::kOk;
    case HostStatus::error:
      break;
  }
  return (r.code == "unknown" || r.code == "usage") ? exit_status::kRejected
                                                    : exit_status::kAgentError;
}

std::optional<int> small_int(const protocol::ReplyLine& line, std::string_view key) {
  const auto v = line.int_field(key);
  if (!v || *v < 0 || *v > 255) return std::nullopt;
  return static_cast<int>(*v);
}

}  // namespace

std::string_view to_string(HostStatus status) noexcept {
  switch (status) {
    case HostStatus::ok:
      return "ok";
    case HostStatus::failed:
      return "failed";
    case HostStatus::denied:
      return "denied";
    case HostStatus::unreachable:
      return "unreachable";
    case HostStatus::timeout:
      return "timeout";
    case HostStatus::tls_error:
      return "tls_error";
    case HostStatus::error:
      return "error";
    case HostStatus::cancelled:
      return "cancelled";
    case HostStatus::not_started:
      return "not_started";
  }
  return "error";
}

HostResult result_from_final_line(const protocol::ReplyLine& line) {
  HostResult r;
  r.message = line.text;
  r.exit_code = small_int(line, "exit");
  r.signal = small_int(line, "signal");
  if (line.kind == protocol::ReplyKind::ok) {
    r.status = HostStatus::ok;
    return r;
  }
  r.code = line.code;
  if (line.code == "failed") {
    r.status = HostStatus::failed;
  } else if (line.code == "denied") {
    r.status = HostStatus::denied;
  } else if (line.code == "timeout") {
    r.status = HostStatus::timeout;
  } else {
    r.status = HostStatus::error;
  }
  return r;
}

bool shows_reply_text(const HostResult& r) {
  return r.status == HostStatus::ok && !r.exit_code && !r.signal && !r.reply_text.empty();
}

int single_host_exit_status(const HostResult& r) {
  if (r.status == HostStatus::ok) return r.exit_code.value_or(0);
  if (r.status == HostStatus::failed) {
    if (r.signal) return 128 + *r.signal;
    if (r.exit_code && *r.exit_code != 0) return *r.exit_code;
    return exit_status::kFailed;
  }
  return class_status(r);
}

int fan_out_exit_status(const std::vector<HostResult>& results) {
  // Problems that will not go away by retrying come first, a command's own failure last.
  constexpr std::array kOrder = {exit_status::kTls,      exit_status::kDenied,
                                 exit_status::kRejected, exit_status::kAgentError,
                                 exit_status::kTimeout,  exit_status::kUnreachable,
                                 exit_status::kFailed};
  std::size_t worst = kOrder.size();
  for (const auto& r : results) {
    const int code = class_status(r);
    const auto* it = std::find(kOrder.begin(), kOrder.end(), code);
    if (it != kOrder.end()) worst = std::min(worst, static_cast<std::size_t>(it - kOrder.begin()));
  }
  return worst == kOrder.size() ? exit_status::kOk : kOrder[worst];
}

}  // namespace opsagent::client

#pragma once
// How one command ended: what its final reply line says and what its `command_end` audit record
// records. Plain data, built by the gate and the command handlers.

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "agent/common/error.hpp"
#include "agent/protocol/reply_formatter.hpp"

namespace opsagent::server {

struct Outcome {
  bool ok = true;
  ErrorCode code = ErrorCode::internal;
  std::string message;
  std::vector<protocol::Field> fields;
  bool close = false;        ///< the session ends after the final line (exit, quit)
  bool client_gone = false;  ///< nothing more can be written
  std::optional<int> exit_code;
  int signal = 0;

  static Outcome success(std::string msg, std::vector<protocol::Field> f = {}) {
    Outcome o;
    o.message = std::move(msg);
    o.fields = std::move(f);
    return o;
  }
  static Outcome failure(ErrorCode c, std::string msg, std::vector<protocol::Field> f = {}) {
    Outcome o;
    o.ok = false;
    o.code = c;
    o.message = std::move(msg);
    o.fields = std::move(f);
    return o;
  }
  static Outcome from(const Error& e) { return failure(e.code, e.message); }
  static Outcome gone() {
    Outcome o = failure(ErrorCode::internal, "client disconnected");
    o.client_gone = true;
    return o;
  }
};

}  // namespace opsagent::server

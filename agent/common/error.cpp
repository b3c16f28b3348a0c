#include "agent/common/error.hpp"

namespace opsagent {

std::string_view to_string(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::usage:
      return "usage";
    case ErrorCode::unknown:
      return "unknown";
    case ErrorCode::denied:
      return "denied";
    case ErrorCode::notfound:
      return "notfound";
    case ErrorCode::limit:
      return "limit";
    case ErrorCode::timeout:
      return "timeout";
    case ErrorCode::busy:
      return "busy";
    case ErrorCode::failed:
      return "failed";
    case ErrorCode::internal:
      return "internal";
  }
  return "internal";
}

}  // namespace opsagent

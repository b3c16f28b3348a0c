#include "agent/server/admission.hpp"

#include <fmt/format.h>

namespace opsagent::server {

void Admission::set_limits(Limits limits) {
  std::lock_guard lock(mutex_);
  limits_ = limits;
}

std::uint64_t Admission::next_connection_id() {
  std::lock_guard lock(mutex_);
  return ++next_id_;
}

bool Admission::try_begin_handshake() {
  std::lock_guard lock(mutex_);
  if (handshakes_ >= limits_.max_handshakes) return false;
  ++handshakes_;
  return true;
}

void Admission::force_begin_handshake() {
  std::lock_guard lock(mutex_);
  ++handshakes_;
}

void Admission::end_handshake() {
  std::lock_guard lock(mutex_);
  --handshakes_;
}

std::string Admission::try_admit(const std::string& principal) {
  std::lock_guard lock(mutex_);
  if (clients_ >= limits_.max_clients) {
    return fmt::format("too many connections (max_clients {})", limits_.max_clients);
  }
  int& mine = per_principal_[principal];
  if (mine >= limits_.max_clients_per_identity) {
    return fmt::format("too many connections for {} (max_clients_per_identity {})", principal,
                       limits_.max_clients_per_identity);
  }
  ++mine;
  ++clients_;
  return {};
}

void Admission::release(const std::string& principal) {
  std::lock_guard lock(mutex_);
  --clients_;
  if (auto it = per_principal_.find(principal); it != per_principal_.end() && --it->second <= 0) {
    per_principal_.erase(it);
  }
}

bool Admission::try_reserve_child() {
  std::lock_guard lock(mutex_);
  if (children_ >= limits_.max_children) return false;
  ++children_;
  return true;
}

void Admission::release_child() {
  std::lock_guard lock(mutex_);
  --children_;
}

bool Admission::try_reserve_blocking(const std::string& principal) {
  std::lock_guard lock(mutex_);
  int& mine = blocking_[principal];
  if (mine >= limits_.max_file_ops_per_identity) return false;
  ++mine;
  return true;
}

void Admission::release_blocking(const std::string& principal) {
  std::lock_guard lock(mutex_);
  if (auto it = blocking_.find(principal); it != blocking_.end() && --it->second <= 0) {
    blocking_.erase(it);
  }
}

Admission::Counts Admission::counts() const {
  std::lock_guard lock(mutex_);
  return Counts{handshakes_, clients_, children_};
}

}  // namespace opsagent::server

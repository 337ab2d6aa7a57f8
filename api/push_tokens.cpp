#include "api/push_tokens.h"

namespace vigil {

std::optional<ServiceId> PushTokenIndex::find(const std::string& token) {
  const auto now = std::chrono::steady_clock::now();
  std::uint64_t generation = 0;
  {
    std::lock_guard lock(mutex_);
    auto it = ids_.find(token);
    if (it != ids_.end() && it->second.expires > now) return it->second.id;
    generation = generation_;
  }
  const auto service = store_.find_by_push_token(token);
  std::lock_guard lock(mutex_);
  if (!service) {
    ids_.erase(token);
    return std::nullopt;
  }
  if (generation == generation_) put(token, service->id, now);
  return service->id;
}

void PushTokenIndex::invalidate(const std::string& token) {
  std::lock_guard lock(mutex_);
  ++generation_;
  if (!token.empty()) ids_.erase(token);
}

void PushTokenIndex::put(const std::string& token, ServiceId id,
                         std::chrono::steady_clock::time_point now) {
  if (ids_.size() >= kMaxCachedPushTokens) ids_.clear();  // bounded; refills on demand
  ids_[token] = Known{id, now + kPushTokenTtl};
}

}  // namespace vigil

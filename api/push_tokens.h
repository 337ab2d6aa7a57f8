// PushTokenIndex: push token -> service id for the heartbeat push route, so that a beat costs no
// query. An id is learned from the Store on a miss and trusted for kPushTokenTtl, since another
// process (`vigil api` beside `vigil runner`, or a second API) may deactivate or purge the
// service meanwhile. This process's own writes invalidate their service's token once they have
// committed.
//
// A lookup that read the Store before the latest invalidation may have read the row as it was
// before that write: it answers with what it read but does not fill the cache, so once a DELETE
// has answered, no stale entry can come back. Unknown tokens are not kept: each costs one indexed
// query. At most kMaxCachedPushTokens entries are kept (the cache is emptied and refills on
// demand past that).
//
// Thread-safe: every member may be called from any API thread at once.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>

#include "core/model.h"
#include "storage/store.h"

namespace vigil {

inline constexpr std::chrono::seconds kPushTokenTtl{5};
inline constexpr std::size_t kMaxCachedPushTokens = 100'000;

class PushTokenIndex {
 public:
  // `store` must outlive the index.
  explicit PushTokenIndex(Store& store) : store_(store) {}
  PushTokenIndex(const PushTokenIndex&) = delete;
  PushTokenIndex& operator=(const PushTokenIndex&) = delete;

  // The active heartbeat whose push token is `token` (Store::find_by_push_token, up to
  // kPushTokenTtl old), or empty for any other token. Throws the Store's StorageError when the
  // lookup fails.
  std::optional<ServiceId> find(const std::string& token);

  // After a write of `service` (or of the service with `token`; "" for none) has committed:
  // the next find reads the Store again.
  void invalidate(const Service& service) { invalidate(service.push_token); }
  void invalidate(const std::string& token);

  // Invalidates `token` when it goes out of scope: held across a write, so that the
  // invalidation follows the commit however the handler leaves.
  class [[nodiscard]] Invalidation {
   public:
    Invalidation(PushTokenIndex& index, std::string token)
        : index_(index), token_(std::move(token)) {}
    ~Invalidation() { index_.invalidate(token_); }
    Invalidation(const Invalidation&) = delete;
    Invalidation& operator=(const Invalidation&) = delete;

   private:
    PushTokenIndex& index_;
    std::string token_;
  };
  Invalidation invalidate_on_exit(std::string token) { return {*this, std::move(token)}; }

 private:
  struct Known {
    ServiceId id;
    std::chrono::steady_clock::time_point expires;
  };
  // Caller holds mutex_.
  void put(const std::string& token, ServiceId id, std::chrono::steady_clock::time_point now);

  Store& store_;
  std::mutex mutex_;
  std::unordered_map<std::string, Known> ids_;  // guarded by mutex_
  std::uint64_t generation_ = 0;                // invalidations so far; guarded by mutex_
};

}  // namespace vigil

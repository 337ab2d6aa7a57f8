// vigil_service_uptime_ratio{service, window="1h|24h|7d|30d"} (issue 6): every active service's
// up ticks over all ticks in each window, from the rollups. Refreshed by the /metrics handler at
// most every `max_age` (one summarize_all per window for all services), so a scrape storm costs
// one refresh, not one per scrape. Thread-safe.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "storage/store.h"

namespace prometheus {
class Registry;
template <typename T>
class Family;
class Gauge;
}  // namespace prometheus

namespace vigil {

class UptimeGauges {
 public:
  // Shares the family with the runner's all-time vigil_service_uptime_ratio{service} when both
  // live in `registry`. `store` and `registry` must outlive this.
  UptimeGauges(Store& store, prometheus::Registry& registry,
               std::chrono::steady_clock::duration max_age = std::chrono::seconds(10));

  // Recomputes the gauges unless the last refresh is younger than max_age. A storage error is
  // logged and leaves the previous values.
  void refresh_if_stale();

 private:
  Store& store_;
  prometheus::Family<prometheus::Gauge>& family_;
  const std::chrono::steady_clock::duration max_age_;
  std::mutex mutex_;
  std::chrono::steady_clock::time_point refreshed_at_{};  // guarded by mutex_
  bool refreshed_ = false;                                // guarded by mutex_
  // (service name, window) -> its gauge; guarded by mutex_
  std::map<std::pair<std::string, std::string>, prometheus::Gauge*> gauges_;
};

}  // namespace vigil

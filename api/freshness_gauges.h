// When each active service was last probed, from the database, so that `vigil api` beside a
// separate `vigil runner` shows it too, and a dead runner is visible:
//   vigil_service_last_tick_timestamp_seconds{service}  the newest stored tick (unix seconds);
//                                                        services never probed have none
//   vigil_service_stale{service}                         1 when is_stale (storage/store.h),
//                                                        else 0; probed services only
// Read with one Store::freshness query when collected, at most every `max_age`, so a scrape
// storm costs one read. Written as text (write_samples); Collect gives the same families as
// prometheus-cpp objects. Thread-safe.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "runner/text_exposition.h"
#include "storage/store.h"

namespace vigil {

class FreshnessGauges final : public prometheus::Collectable, public TextCollectable {
 public:
  using Clock = std::function<TimePoint()>;
  // `store` must outlive this. `clock` decides staleness (the system clock by default).
  explicit FreshnessGauges(Store& store,
                           std::chrono::steady_clock::duration max_age = std::chrono::seconds(1),
                           Clock clock = &now_ms);

  // Refreshed first unless the last refresh is younger than max_age. A storage error is logged
  // and leaves the previous values.
  std::vector<prometheus::MetricFamily> Collect() const override;
  std::span<const TextFamily> text_families() const override;
  void write_samples(std::size_t index, TextExpositionWriter& out) const override;

 private:
  struct Row {
    std::string service;
    std::optional<double> last_tick_s;  // absent: never probed
    std::optional<bool> stale;          // absent: a heartbeat
  };
  using Rows = std::vector<Row>;
  std::shared_ptr<const Rows> current_rows() const;

  Store& store_;
  const std::chrono::steady_clock::duration max_age_;
  const Clock clock_;
  mutable std::mutex mutex_;
  mutable std::optional<std::chrono::steady_clock::time_point> refreshed_at_;  // guarded
  mutable std::shared_ptr<const Rows> rows_ = std::make_shared<Rows>();        // guarded
};

}  // namespace vigil

// vigil_service_uptime_ratio{service, window="1h|24h|7d|30d"}: every active service's
// up ticks over all ticks in each window, from the rollups. Recomputed when collected, at most
// every `max_age` (one Store::count_all_recent per window for all services: the windows of
// a day or more start at an hour boundary), so a scrape storm costs one refresh, not one per
// scrape. The values are kept compactly between scrapes, not as
// prometheus-cpp series (which cost a label map per series: 4 per service), and /metrics writes
// them as text (write_samples); Collect gives the same family as prometheus-cpp objects.
// Thread-safe.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "runner/text_exposition.h"
#include "storage/store.h"

namespace vigil {

class UptimeGauges final : public prometheus::Collectable, public TextCollectable {
 public:
  // `store` must outlive this.
  explicit UptimeGauges(Store& store,
                        std::chrono::steady_clock::duration max_age = std::chrono::seconds(10));

  // The family, refreshed first unless the last refresh is younger than max_age. A storage
  // error is logged and leaves the previous values.
  std::vector<prometheus::MetricFamily> Collect() const override;
  // The same family as text.
  std::span<const TextFamily> text_families() const override;
  void write_samples(std::size_t index, TextExpositionWriter& out) const override;

 private:
  static constexpr std::size_t kWindowCount = 4;
  struct Row {
    std::string service;
    std::array<std::optional<double>, kWindowCount> ratio;  // absent: no ticks in that window
  };
  using Rows = std::vector<Row>;
  // The rows, refreshed first if stale; shared so a slow scraper holds no lock while it reads.
  std::shared_ptr<const Rows> current_rows() const;
  void refresh_if_stale() const;  // needs mutex_

  Store& store_;
  const std::chrono::steady_clock::duration max_age_;
  mutable std::mutex mutex_;
  mutable std::optional<std::chrono::steady_clock::time_point> refreshed_at_;  // guarded
  struct IdName {
    ServiceId id;
    std::string name;
  };
  // The active services by id, as of services_revision_ (Store::services_revision).
  mutable std::vector<IdName> services_;                                 // guarded
  mutable std::int64_t services_revision_ = -1;                          // guarded
  mutable std::shared_ptr<const Rows> rows_ = std::make_shared<Rows>();  // guarded
};

}  // namespace vigil

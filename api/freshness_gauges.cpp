#include "api/freshness_gauges.h"

#include <exception>
#include <utility>

#include "core/logging.h"

namespace vigil {
namespace {

constexpr TextFamily kFamilies[] = {
    {"vigil_service_last_tick_timestamp_seconds",
     "When the service's newest stored tick started (unix seconds).",
     prometheus::MetricType::Gauge},
    {"vigil_service_stale",
     "1 when a probed service has had no tick for 2 x interval + timeout, else 0.",
     prometheus::MetricType::Gauge},
};

// The value of family `index` for `row`, if it has one.
std::optional<double> value_of(std::size_t index, const auto& row) {
  if (index == 0) return row.last_tick_s;
  if (row.stale) return *row.stale ? 1.0 : 0.0;
  return std::nullopt;
}

}  // namespace

FreshnessGauges::FreshnessGauges(Store& store, std::chrono::steady_clock::duration max_age,
                                 Clock clock)
    : store_(store), max_age_(max_age), clock_(std::move(clock)) {}

std::shared_ptr<const FreshnessGauges::Rows> FreshnessGauges::current_rows() const {
  std::lock_guard lock(mutex_);
  const auto steady_now = std::chrono::steady_clock::now();
  if (refreshed_at_ && steady_now - *refreshed_at_ < max_age_) return rows_;
  refreshed_at_ = steady_now;
  try {
    const TimePoint now = clock_();
    auto rows = std::make_shared<Rows>();
    for (auto& f : store_.freshness()) {
      Row& row = rows->emplace_back();
      row.service = std::move(f.name);
      if (f.last_tick_at) row.last_tick_s = double(to_unix_ms(*f.last_tick_at)) / 1000.0;
      if (f.kind != ServiceKind::heartbeat) row.stale = f.stale_at(now);
    }
    rows_ = std::move(rows);
  } catch (const std::exception& e) {
    log_warn(std::string("api: freshness gauges not refreshed: ") + e.what());
  }
  return rows_;
}

std::vector<prometheus::MetricFamily> FreshnessGauges::Collect() const {
  const auto rows = current_rows();
  std::vector<prometheus::MetricFamily> out;
  for (std::size_t i = 0; i < std::size(kFamilies); ++i) {
    prometheus::MetricFamily family{
        std::string(kFamilies[i].name), std::string(kFamilies[i].help), kFamilies[i].type, {}};
    for (const Row& row : *rows) {
      const auto value = value_of(i, row);
      if (!value) continue;
      prometheus::ClientMetric metric;
      metric.label = {{"service", row.service}};
      metric.gauge.value = *value;
      family.metric.push_back(std::move(metric));
    }
    if (!family.metric.empty()) out.push_back(std::move(family));
  }
  return out;
}

std::span<const TextFamily> FreshnessGauges::text_families() const { return kFamilies; }

void FreshnessGauges::write_samples(std::size_t index, TextExpositionWriter& out) const {
  if (index >= std::size(kFamilies)) return;
  const auto rows = current_rows();
  for (const Row& row : *rows) {
    if (!out.ok()) return;  // the scraper went away
    if (const auto value = value_of(index, row)) out.sample({{"service", row.service}}, *value);
  }
}

}  // namespace vigil

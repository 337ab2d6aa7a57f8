#include "api/uptime_gauges.h"

#include <algorithm>
#include <exception>

#include "core/logging.h"

namespace vigil {
namespace {

struct WindowSpec {
  const char* name;
  Millis length;
};
constexpr WindowSpec kWindows[] = {{"1h", Millis(3'600'000)},
                                   {"24h", Millis(86'400'000)},
                                   {"7d", Millis(7LL * 86'400'000)},
                                   {"30d", Millis(30LL * 86'400'000)}};

constexpr TextFamily kFamily{"vigil_service_uptime_ratio",
                             "Up ticks over all ticks of the service.",
                             prometheus::MetricType::Gauge};

}  // namespace

UptimeGauges::UptimeGauges(Store& store, std::chrono::steady_clock::duration max_age)
    : store_(store), max_age_(max_age) {
  static_assert(std::size(kWindows) == kWindowCount);
}

void UptimeGauges::refresh_if_stale() const {
  const auto now = std::chrono::steady_clock::now();
  if (refreshed_at_ && now - *refreshed_at_ < max_age_) return;
  refreshed_at_ = now;
  try {
    const TimePoint to = now_ms();
    // The names change rarely; reading every active service again on each refresh raised a
    // scrape's peak memory by about 90 MB at 100,000 services.
    const std::int64_t revision = store_.services_revision();
    if (revision != services_revision_) {
      std::vector<IdName> services;
      for (auto& service : store_.active_services())
        services.push_back({service.id, std::move(service.spec.name)});
      services_ = std::move(services);
      services_revision_ = revision;
    }
    auto rows = std::make_shared<Rows>(services_.size());
    for (std::size_t i = 0; i < services_.size(); ++i) (*rows)[i].service = services_[i].name;
    for (std::size_t w = 0; w < kWindowCount; ++w) {
      const auto recent = store_.count_all_recent(kWindows[w].length, to);
      for (const auto& [id, counts] : recent.services) {
        // services_ is ordered by id, as active_services returns them.
        const auto row = std::lower_bound(services_.begin(), services_.end(), id,
                                          [](const IdName& s, ServiceId v) { return s.id < v; });
        if (row == services_.end() || row->id != id || counts.count == 0) continue;
        (*rows)[std::size_t(row - services_.begin())].ratio[w] =
            double(counts.up) / double(counts.count);
      }
    }
    rows_ = std::move(rows);
  } catch (const std::exception& e) {
    log_warn(std::string("api: uptime gauges not refreshed: ") + e.what());
  }
}

std::shared_ptr<const UptimeGauges::Rows> UptimeGauges::current_rows() const {
  std::lock_guard lock(mutex_);
  refresh_if_stale();
  return rows_;
}

std::vector<prometheus::MetricFamily> UptimeGauges::Collect() const {
  const auto rows = current_rows();
  prometheus::MetricFamily family{
      std::string(kFamily.name), std::string(kFamily.help), kFamily.type, {}};
  for (const auto& row : *rows) {
    for (std::size_t w = 0; w < kWindowCount; ++w) {
      if (!row.ratio[w]) continue;
      prometheus::ClientMetric metric;
      metric.label = {{"service", row.service}, {"window", kWindows[w].name}};
      metric.gauge.value = *row.ratio[w];
      family.metric.push_back(std::move(metric));
    }
  }
  if (family.metric.empty()) return {};
  std::vector<prometheus::MetricFamily> out;
  out.push_back(std::move(family));
  return out;
}

std::span<const TextFamily> UptimeGauges::text_families() const { return {&kFamily, 1}; }

void UptimeGauges::write_samples(std::size_t index, TextExpositionWriter& out) const {
  if (index != 0) return;
  const auto rows = current_rows();
  for (const auto& row : *rows) {
    if (!out.ok()) return;  // the scraper went away
    for (std::size_t w = 0; w < kWindowCount; ++w)
      if (row.ratio[w])
        out.sample({{"service", row.service}, {"window", kWindows[w].name}}, *row.ratio[w]);
  }
}

}  // namespace vigil

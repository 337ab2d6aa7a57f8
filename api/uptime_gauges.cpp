#include "api/uptime_gauges.h"

#include <exception>
#include <unordered_map>

#include "config/logging.h"

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
    const auto services = store_.list_services();
    std::vector<Row> rows(services.size());
    std::unordered_map<ServiceId, std::size_t> row_of;
    for (std::size_t i = 0; i < services.size(); ++i) {
      rows[i].service = services[i].service.spec.name;
      row_of.emplace(services[i].service.id, i);
    }
    for (std::size_t w = 0; w < kWindowCount; ++w) {
      const auto recent = store_.summarize_all_recent(kWindows[w].length, to);
      for (const auto& [id, summary] : recent.services) {
        const auto row = row_of.find(id);
        if (row == row_of.end() || summary.count == 0) continue;
        rows[row->second].ratio[w] = double(summary.up) / double(summary.count);
      }
    }
    rows_ = std::move(rows);
  } catch (const std::exception& e) {
    log_warn(std::string("api: uptime gauges not refreshed: ") + e.what());
  }
}

std::vector<prometheus::MetricFamily> UptimeGauges::Collect() const {
  std::lock_guard lock(mutex_);
  refresh_if_stale();
  prometheus::MetricFamily family{"vigil_service_uptime_ratio",
                                  "Up ticks over all ticks of the service.",
                                  prometheus::MetricType::Gauge,
                                  {}};
  for (const auto& row : rows_) {
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

}  // namespace vigil

#include "api/uptime_gauges.h"

#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <exception>

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

UptimeGauges::UptimeGauges(Store& store, prometheus::Registry& registry,
                           std::chrono::steady_clock::duration max_age)
    : store_(store),
      family_(prometheus::BuildGauge()
                  .Name("vigil_service_uptime_ratio")
                  .Help("Up ticks over all ticks of the service.")
                  .Register(registry)),
      max_age_(max_age) {}

void UptimeGauges::refresh_if_stale() {
  std::lock_guard lock(mutex_);
  const auto now = std::chrono::steady_clock::now();
  if (refreshed_ && now - refreshed_at_ < max_age_) return;
  refreshed_ = true;
  refreshed_at_ = now;
  try {
    const TimePoint to = now_ms();
    const auto services = store_.list_services();
    std::map<std::pair<std::string, std::string>, prometheus::Gauge*> next;
    for (const auto& window : kWindows) {
      const auto summaries = store_.summarize_all(to - window.length, to);
      for (const auto& view : services) {
        const auto it = summaries.find(view.service.id);
        if (it == summaries.end() || it->second.count == 0) continue;
        std::pair key{view.service.spec.name, std::string(window.name)};
        auto found = gauges_.find(key);
        prometheus::Gauge* gauge =
            found != gauges_.end() ? found->second
                                   : &family_.Add({{"service", key.first}, {"window", key.second}});
        gauge->Set(double(it->second.up) / double(it->second.count));
        next.emplace(std::move(key), gauge);
      }
    }
    // Services gone or without ticks in a window lose that series.
    for (const auto& [key, gauge] : gauges_)
      if (!next.contains(key)) family_.Remove(gauge);
    gauges_ = std::move(next);
  } catch (const std::exception& e) {
    log_warn(std::string("api: uptime gauges not refreshed: ") + e.what());
  }
}

}  // namespace vigil

// The runner's Prometheus metrics, private to runner/: the families it registers, and the
// per-service series it adds lazily and removes with the service. Gauge/Counter updates are
// atomic; Family::Add/Remove lock, so a scrape may run on another thread at any time.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <string>

#include "runner/probe.h"
#include "storage/model.h"

namespace vigil {

// One service's series; null until the service has something to report, so a service that was
// never probed shows no probe_success rather than a misleading 0.
struct ServiceMetrics {
  prometheus::Gauge* probe_success = nullptr;
  prometheus::Gauge* probe_duration = nullptr;
  prometheus::Gauge* probe_status = nullptr;
  prometheus::Counter* probes_up = nullptr;
  prometheus::Counter* probes_down = nullptr;
  prometheus::Gauge* service_up = nullptr;
  prometheus::Gauge* uptime_ratio = nullptr;
};

class RunnerMetrics {
 public:
  explicit RunnerMetrics(prometheus::Registry& registry);
  RunnerMetrics(const RunnerMetrics&) = delete;
  RunnerMetrics& operator=(const RunnerMetrics&) = delete;

  // After a probe: the probe_* series and the probe counter.
  void record_probe(ServiceMetrics& series, const std::string& name, const ProbeResult& result);
  // The service's current status and uptime ratio from its runtime state; no-op until it has an
  // open event.
  void record_state(ServiceMetrics& series, const std::string& name, const ServiceRuntime& state);
  // Drops every series of the service (removed, or renamed: the label changes).
  void remove(ServiceMetrics& series);

  prometheus::Gauge& in_flight;
  prometheus::Histogram& lateness;
  prometheus::Counter& skipped;
  prometheus::Gauge& queue_depth;
  prometheus::Gauge& services;

 private:
  prometheus::Family<prometheus::Gauge>& probe_success_;
  prometheus::Family<prometheus::Gauge>& probe_duration_;
  prometheus::Family<prometheus::Gauge>& probe_status_;
  prometheus::Family<prometheus::Counter>& probes_total_;
  prometheus::Family<prometheus::Gauge>& service_up_;
  prometheus::Family<prometheus::Gauge>& uptime_ratio_;
};

}  // namespace vigil

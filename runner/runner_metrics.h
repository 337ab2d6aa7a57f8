// The runner's Prometheus metrics, private to runner/: the families it registers, and the
// per-service series it adds lazily and removes with the service, kept in a collector of their
// own that /metrics collects besides the registry. Every update is atomic, so a scrape may run
// on another thread at any time.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <memory>
#include <string>

#include "core/model.h"
#include "runner/probe.h"
#include "runner/service_series.h"

namespace vigil {

// One service's series (runner/service_series.h); null until the service has something to
// report.
struct ServiceMetrics {
  std::shared_ptr<ServiceSeries> series;
};

class RunnerMetrics {
 public:
  explicit RunnerMetrics(prometheus::Registry& registry);
  RunnerMetrics(const RunnerMetrics&) = delete;
  RunnerMetrics& operator=(const RunnerMetrics&) = delete;

  // After a probe: the probe_* series and the probe counter; for an HTTP probe also the
  // per-phase, redirect, size and TLS series and the phase histograms.
  void record_probe(ServiceMetrics& series, const std::string& name, const ProbeResult& result);
  // The service's current status and uptime ratio from its runtime state; no-op until it has an
  // open event.
  void record_state(ServiceMetrics& series, const std::string& name, const ServiceRuntime& state);
  // A heartbeat reported at `at`: vigil_heartbeat_last_seen_timestamp_seconds.
  void record_beat(ServiceMetrics& series, const std::string& name, TimePoint at);
  // Drops every series of the service (removed, or renamed: the label changes).
  void remove(ServiceMetrics& series);

  prometheus::Gauge& in_flight;
  prometheus::Histogram& lateness;
  prometheus::Counter& skipped;
  prometheus::Gauge& queue_depth;
  prometheus::Gauge& services;
  // Exceptions caught on the runner thread (the loop logs each and goes on probing).
  prometheus::Counter& errors;

  // The per-service series, for ApiOptions::collectables (they are not in the registry).
  std::shared_ptr<prometheus::Collectable> service_series() const { return per_service_; }

 private:
  ServiceSeries& series_of(ServiceMetrics& metrics, const std::string& name);
  void record_http(ServiceSeries& series, const ProbeResult& result);

  std::shared_ptr<ServiceSeriesCollector> per_service_;
  // Probe depth: the phase histograms across services, by phase.
  prometheus::Family<prometheus::Histogram>& http_phase_histogram_;
  std::array<prometheus::Histogram*, 5> phase_histograms_{};
};

}  // namespace vigil

// The runner's Prometheus metrics, private to runner/: the families it registers, and the
// per-service series it adds lazily and removes with the service. Gauge/Counter updates are
// atomic; Family::Add/Remove lock, so a scrape may run on another thread at any time.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <memory>
#include <string>

#include "runner/probe.h"
#include "storage/model.h"

namespace vigil {

// Probe depth (issue 4): an HTTP(S) service's probe_http_* and TLS series. The certificate and
// TLS version series exist only while the last probe reported them.
struct HttpProbeSeries {
  std::array<prometheus::Gauge*, 5> phase{};  // resolve, connect, tls, processing, transfer
  prometheus::Gauge* ssl = nullptr;
  prometheus::Gauge* redirects = nullptr;
  prometheus::Gauge* content_length = nullptr;
  prometheus::Gauge* cert_expiry = nullptr;
  prometheus::Gauge* tls_version = nullptr;
  std::string tls_version_label;
};

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
  prometheus::Gauge* heartbeat_last_seen = nullptr;  // heartbeats only (issue 3)
  std::unique_ptr<HttpProbeSeries> http;             // HTTP(S) probes only (issue 4)
};

class RunnerMetrics {
 public:
  explicit RunnerMetrics(prometheus::Registry& registry);
  RunnerMetrics(const RunnerMetrics&) = delete;
  RunnerMetrics& operator=(const RunnerMetrics&) = delete;

  // After a probe: the probe_* series and the probe counter; for an HTTP probe also the
  // per-phase, redirect, size and TLS series and the phase histograms (issue 4).
  void record_probe(ServiceMetrics& series, const std::string& name, const ProbeResult& result);
  // The service's current status and uptime ratio from its runtime state; no-op until it has an
  // open event.
  void record_state(ServiceMetrics& series, const std::string& name, const ServiceRuntime& state);
  // A heartbeat reported at `at` (issue 3): vigil_heartbeat_last_seen_timestamp_seconds.
  void record_beat(ServiceMetrics& series, const std::string& name, TimePoint at);
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
  prometheus::Family<prometheus::Gauge>& heartbeat_last_seen_;

  // Probe depth (issue 4).
  void record_http(ServiceMetrics& series, const std::string& name, const ProbeResult& result);
  void remove_http(ServiceMetrics& series);
  prometheus::Family<prometheus::Gauge>& http_phase_;
  prometheus::Family<prometheus::Histogram>& http_phase_histogram_;
  std::array<prometheus::Histogram*, 5> phase_histograms_{};  // across services, by phase
  prometheus::Family<prometheus::Gauge>& http_ssl_;
  prometheus::Family<prometheus::Gauge>& http_redirects_;
  prometheus::Family<prometheus::Gauge>& http_content_length_;
  prometheus::Family<prometheus::Gauge>& cert_expiry_;
  prometheus::Family<prometheus::Gauge>& tls_version_;
};

}  // namespace vigil

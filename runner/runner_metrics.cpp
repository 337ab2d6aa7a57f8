#include "runner/runner_metrics.h"

namespace vigil {

namespace {

prometheus::Family<prometheus::Gauge>& gauge(prometheus::Registry& registry, const char* name,
                                             const char* help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(registry);
}

prometheus::Family<prometheus::Counter>& counter(prometheus::Registry& registry, const char* name,
                                                 const char* help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(registry);
}

// ~1 ms to ~60 s: a healthy loop starts probes within a few ms; minutes of lateness mean the
// concurrency cap is far too small for the service count.
const prometheus::Histogram::BucketBoundaries kLatenessBuckets = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};

// Probe depth: the phases in PhaseTimings order, their label values, and the histogram
// buckets (0.5 ms to 10 s: a loopback connect to a slow TLS handshake far away).
constexpr const char* kPhaseNames[] = {"resolve", "connect", "tls", "processing", "transfer"};
const prometheus::Histogram::BucketBoundaries kPhaseBuckets = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

std::array<double, 5> phase_values(const PhaseTimings& p) {
  return {p.resolve_ms, p.connect_ms, p.tls_ms, p.processing_ms, p.transfer_ms};
}

template <typename T>
void drop(prometheus::Family<T>& family, T*& metric) {
  if (metric) family.Remove(metric);
  metric = nullptr;
}

}  // namespace

RunnerMetrics::RunnerMetrics(prometheus::Registry& registry)
    : in_flight(gauge(registry, "vigil_probes_in_flight", "Probes currently in flight.").Add({})),
      lateness(prometheus::BuildHistogram()
                   .Name("vigil_scheduler_lateness_seconds")
                   .Help("How late each probe started after its due time.")
                   .Register(registry)
                   .Add({}, kLatenessBuckets)),
      skipped(counter(registry, "vigil_runner_skipped_probes_total",
                      "Probe slots skipped because the previous probe was still in flight or "
                      "the runner was too far behind.")
                  .Add({})),
      queue_depth(gauge(registry, "vigil_runner_command_queue_depth",
                        "Commands waiting for the runner thread.")
                      .Add({})),
      services(gauge(registry, "vigil_services", "Services scheduled by the runner.").Add({})),
      probe_success_(
          gauge(registry, "probe_success", "Whether the last probe succeeded (1) or not (0).")),
      probe_duration_(gauge(registry, "probe_duration_seconds",
                            "Total duration of the last probe in seconds.")),
      probe_status_(gauge(registry, "probe_http_status_code",
                          "HTTP status of the last probe; 0 when no response arrived.")),
      probes_total_(counter(registry, "vigil_probes_total", "Probes finished, by result.")),
      service_up_(gauge(registry, "vigil_service_up",
                        "Current status of the service (its open event): 1 up, 0 down.")),
      uptime_ratio_(
          gauge(registry, "vigil_service_uptime_ratio", "Up ticks over all ticks of the service.")),
      heartbeat_last_seen_(gauge(registry, "vigil_heartbeat_last_seen_timestamp_seconds",
                                 "When the heartbeat service last reported (unix seconds).")),
      http_phase_(gauge(registry, "probe_http_duration_seconds",
                        "Duration of each phase of the last HTTP probe in seconds; the phases "
                        "add up to probe_duration_seconds.")),
      http_phase_histogram_(prometheus::BuildHistogram()
                                .Name("vigil_probe_http_phase_duration_seconds")
                                .Help("Duration of each phase of every HTTP probe, all services.")
                                .Register(registry)),
      http_ssl_(gauge(registry, "probe_http_ssl", "Whether the last HTTP probe ended over TLS.")),
      http_redirects_(
          gauge(registry, "probe_http_redirects", "Redirects the last HTTP probe followed.")),
      http_content_length_(gauge(registry, "probe_http_content_length",
                                 "Content-Length of the last HTTP response; -1 when unknown.")),
      cert_expiry_(gauge(registry, "probe_ssl_earliest_cert_expiry",
                         "When the soonest-expiring certificate of the chain the last probe saw "
                         "expires (unix seconds).")),
      tls_version_(gauge(registry, "probe_tls_version_info",
                         "TLS version of the last probe, as the label; always 1.")) {
  for (std::size_t i = 0; i < phase_histograms_.size(); ++i)
    phase_histograms_[i] = &http_phase_histogram_.Add({{"phase", kPhaseNames[i]}}, kPhaseBuckets);
}

void RunnerMetrics::record_probe(ServiceMetrics& series, const std::string& name,
                                 const ProbeResult& result) {
  if (!series.probe_success) {
    series.probe_success = &probe_success_.Add({{"service", name}});
    series.probe_duration = &probe_duration_.Add({{"service", name}});
    series.probe_status = &probe_status_.Add({{"service", name}});
    series.probes_up = &probes_total_.Add({{"service", name}, {"result", "up"}});
    series.probes_down = &probes_total_.Add({{"service", name}, {"result", "down"}});
  }
  series.probe_success->Set(result.up ? 1 : 0);
  series.probe_duration->Set(result.response_ms / 1000.0);
  series.probe_status->Set(result.status_code.value_or(0));
  (result.up ? series.probes_up : series.probes_down)->Increment();
  if (result.details.http) record_http(series, name, result);
}

void RunnerMetrics::record_http(ServiceMetrics& series, const std::string& name,
                                const ProbeResult& result) {
  if (!series.http) {
    series.http = std::make_unique<HttpProbeSeries>();
    auto& h = *series.http;
    for (std::size_t i = 0; i < h.phase.size(); ++i)
      h.phase[i] = &http_phase_.Add({{"service", name}, {"phase", kPhaseNames[i]}});
    h.ssl = &http_ssl_.Add({{"service", name}});
    h.redirects = &http_redirects_.Add({{"service", name}});
    h.content_length = &http_content_length_.Add({{"service", name}});
  }
  auto& h = *series.http;
  const ProbeDetails& details = result.details;
  if (result.phases) {
    const auto values = phase_values(*result.phases);
    for (std::size_t i = 0; i < values.size(); ++i) {
      h.phase[i]->Set(values[i] / 1000.0);
      phase_histograms_[i]->Observe(values[i] / 1000.0);
    }
  }
  h.ssl->Set(details.tls ? 1 : 0);
  h.redirects->Set(double(details.redirects));
  h.content_length->Set(details.content_length ? double(*details.content_length) : -1);

  if (const auto expiry = details.earliest_cert_expiry()) {
    if (!h.cert_expiry) h.cert_expiry = &cert_expiry_.Add({{"service", name}});
    h.cert_expiry->Set(double(to_unix_seconds(*expiry)));
  } else {
    drop(cert_expiry_, h.cert_expiry);
  }
  if (details.tls_version != h.tls_version_label) {
    drop(tls_version_, h.tls_version);
    h.tls_version_label = details.tls_version;
    if (!details.tls_version.empty())
      h.tls_version = &tls_version_.Add({{"service", name}, {"version", details.tls_version}});
  }
  if (h.tls_version) h.tls_version->Set(1);
}

void RunnerMetrics::remove_http(ServiceMetrics& series) {
  if (!series.http) return;
  auto& h = *series.http;
  for (auto*& phase : h.phase) drop(http_phase_, phase);
  drop(http_ssl_, h.ssl);
  drop(http_redirects_, h.redirects);
  drop(http_content_length_, h.content_length);
  drop(cert_expiry_, h.cert_expiry);
  drop(tls_version_, h.tls_version);
  series.http.reset();
}

void RunnerMetrics::record_state(ServiceMetrics& series, const std::string& name,
                                 const ServiceRuntime& state) {
  if (!state.open_event_kind) return;
  if (!series.service_up) {
    series.service_up = &service_up_.Add({{"service", name}});
    series.uptime_ratio = &uptime_ratio_.Add({{"service", name}});
  }
  series.service_up->Set(*state.open_event_kind == EventKind::uptime ? 1 : 0);
  const auto& m = state.metric;
  series.uptime_ratio->Set(m.tick_count > 0 ? double(m.up_count) / double(m.tick_count) : 0);
}

void RunnerMetrics::record_beat(ServiceMetrics& series, const std::string& name, TimePoint at) {
  if (!series.heartbeat_last_seen)
    series.heartbeat_last_seen = &heartbeat_last_seen_.Add({{"service", name}});
  series.heartbeat_last_seen->Set(double(to_unix_ms(at)) / 1000.0);
}

void RunnerMetrics::remove(ServiceMetrics& series) {
  drop(probe_success_, series.probe_success);
  drop(probe_duration_, series.probe_duration);
  drop(probe_status_, series.probe_status);
  drop(probes_total_, series.probes_up);
  drop(probes_total_, series.probes_down);
  drop(service_up_, series.service_up);
  drop(uptime_ratio_, series.uptime_ratio);
  drop(heartbeat_last_seen_, series.heartbeat_last_seen);
  remove_http(series);  // issue 4
}

}  // namespace vigil

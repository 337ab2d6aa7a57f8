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

// Probe depth: the phase histogram's buckets (0.5 ms to 10 s: a loopback connect to a slow TLS
// handshake far away).
const prometheus::Histogram::BucketBoundaries kPhaseBuckets = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

std::array<double, 5> phase_values(const PhaseTimings& p) {
  return {p.resolve_ms, p.connect_ms, p.tls_ms, p.processing_ms, p.transfer_ms};
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
      errors(counter(registry, "vigil_runner_errors_total",
                     "Unexpected errors caught on the runner thread; it logs each and goes on.")
                 .Add({})),
      per_service_(std::make_shared<ServiceSeriesCollector>()),
      http_phase_histogram_(prometheus::BuildHistogram()
                                .Name("vigil_probe_http_phase_duration_seconds")
                                .Help("Duration of each phase of every HTTP probe, all services.")
                                .Register(registry)) {
  for (std::size_t i = 0; i < phase_histograms_.size(); ++i)
    phase_histograms_[i] = &http_phase_histogram_.Add({{"phase", kPhaseLabels[i]}}, kPhaseBuckets);
}

ServiceSeries& RunnerMetrics::series_of(ServiceMetrics& metrics, const std::string& name) {
  if (!metrics.series) metrics.series = per_service_->add(name);
  return *metrics.series;
}

void RunnerMetrics::record_probe(ServiceMetrics& metrics, const std::string& name,
                                 const ProbeResult& result) {
  auto& series = series_of(metrics, name);
  series.success.set(result.up ? 1 : 0);
  series.duration_s.set(result.response_ms / 1000.0);
  series.status_code.set(result.status_code.value_or(0));
  (result.up ? series.probes_up : series.probes_down).fetch_add(1, std::memory_order_relaxed);
  series.show(ServiceSeries::kProbe);
  if (result.details.http) record_http(series, result);
}

void RunnerMetrics::record_http(ServiceSeries& series, const ProbeResult& result) {
  const ProbeDetails& details = result.details;
  if (result.phases) {
    const auto values = phase_values(*result.phases);
    for (std::size_t i = 0; i < values.size(); ++i) {
      series.phase_s[i].set(values[i] / 1000.0);
      phase_histograms_[i]->Observe(values[i] / 1000.0);
    }
  }
  series.ssl.set(details.tls ? 1 : 0);
  series.redirects.set(double(details.redirects));
  series.content_length.set(details.content_length ? double(*details.content_length) : -1);
  if (const auto expiry = details.earliest_cert_expiry()) {
    series.cert_expiry_s.set(double(to_unix_seconds(*expiry)));
    series.show(ServiceSeries::kCertExpiry);
  } else {
    series.hide(ServiceSeries::kCertExpiry);
  }
  series.set_tls_version(details.tls_version);
  series.show(ServiceSeries::kHttp);
}

void RunnerMetrics::record_state(ServiceMetrics& metrics, const std::string& name,
                                 const ServiceRuntime& state) {
  if (!state.open_event_kind) return;
  auto& series = series_of(metrics, name);
  series.up.set(*state.open_event_kind == EventKind::uptime ? 1 : 0);
  const auto& m = state.metric;
  series.uptime_ratio.set(m.tick_count > 0 ? double(m.up_count) / double(m.tick_count) : 0);
  series.show(ServiceSeries::kState);
}

void RunnerMetrics::record_beat(ServiceMetrics& metrics, const std::string& name, TimePoint at) {
  auto& series = series_of(metrics, name);
  series.last_beat_s.set(double(to_unix_ms(at)) / 1000.0);
  series.show(ServiceSeries::kBeat);
}

void RunnerMetrics::remove(ServiceMetrics& metrics) {
  if (metrics.series) per_service_->remove(*metrics.series);
  metrics.series.reset();
}

}  // namespace vigil

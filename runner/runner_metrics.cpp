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
      uptime_ratio_(gauge(registry, "vigil_service_uptime_ratio",
                          "Up ticks over all ticks of the service.")) {}

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

void RunnerMetrics::remove(ServiceMetrics& series) {
  drop(probe_success_, series.probe_success);
  drop(probe_duration_, series.probe_duration);
  drop(probe_status_, series.probe_status);
  drop(probes_total_, series.probes_up);
  drop(probes_total_, series.probes_down);
  drop(service_up_, series.service_up);
  drop(uptime_ratio_, series.uptime_ratio);
}

}  // namespace vigil

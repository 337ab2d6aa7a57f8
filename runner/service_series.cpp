#include "runner/service_series.h"

#include <algorithm>
#include <functional>
#include <set>

namespace vigil {

namespace {

// TLS version labels ("TLSv1.3", ...): a handful of distinct strings, kept for the life of the
// process so a scrape can read one through a plain pointer while the runner swaps it.
const std::string* intern(const std::string& text) {
  static std::mutex mutex;
  static std::set<std::string> strings;
  std::lock_guard lock(mutex);
  return &*strings.insert(text).first;
}

using Series = std::vector<std::shared_ptr<ServiceSeries>>;
using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

// One family with a sample per service that shows `group`; `fill` adds the service's samples
// (usually one; more for a label like phase). Empty families are left out, as prometheus-cpp
// does for a family without children.
void add_family(std::vector<MetricFamily>& out, const Series& all, const char* name,
                const char* help, MetricType type, ServiceSeries::Group group,
                const std::function<void(const ServiceSeries&, std::vector<ClientMetric>&)>& fill) {
  MetricFamily family{name, help, type, {}};
  for (const auto& series : all)
    if (series->shows(group)) fill(*series, family.metric);
  if (!family.metric.empty()) out.push_back(std::move(family));
}

ClientMetric gauge(const ServiceSeries& series, double value,
                   std::vector<ClientMetric::Label> extra = {}) {
  ClientMetric metric;
  metric.label.push_back({"service", series.name()});
  for (auto& label : extra) metric.label.push_back(std::move(label));
  std::sort(metric.label.begin(), metric.label.end());  // by name, as prometheus-cpp orders them
  metric.gauge.value = value;
  return metric;
}

// A gauge family with exactly one sample per service: `value` picks it.
void add_gauges(std::vector<MetricFamily>& out, const Series& all, const char* name,
                const char* help, ServiceSeries::Group group,
                double (*value)(const ServiceSeries&)) {
  add_family(out, all, name, help, MetricType::Gauge, group,
             [value](const ServiceSeries& s, std::vector<ClientMetric>& metrics) {
               metrics.push_back(gauge(s, value(s)));
             });
}

}  // namespace

void ServiceSeries::set_tls_version(const std::string& version) {
  const std::string* current = tls_version();
  if (version.empty()) {
    tls_version_.store(nullptr, std::memory_order_relaxed);
  } else if (!current || *current != version) {
    tls_version_.store(intern(version), std::memory_order_relaxed);
  }
}

std::shared_ptr<ServiceSeries> ServiceSeriesCollector::add(const std::string& service_name) {
  auto series = std::make_shared<ServiceSeries>(service_name);
  std::lock_guard lock(mutex_);
  series->slot_ = series_.size();
  series_.push_back(series);
  return series;
}

void ServiceSeriesCollector::remove(const ServiceSeries& series) {
  std::lock_guard lock(mutex_);
  const std::size_t slot = series.slot_;
  if (slot >= series_.size() || series_[slot].get() != &series) return;
  series_[slot] = std::move(series_.back());
  series_[slot]->slot_ = slot;
  series_.pop_back();
}

std::vector<MetricFamily> ServiceSeriesCollector::Collect() const {
  Series all;
  {
    std::lock_guard lock(mutex_);
    all = series_;  // the runner may add and remove while the families are built
  }
  using S = ServiceSeries;
  std::vector<MetricFamily> out;
  add_gauges(out, all, "probe_success", "Whether the last probe succeeded (1) or not (0).",
             S::kProbe, [](const S& s) { return s.success.get(); });
  add_gauges(out, all, "probe_duration_seconds", "Total duration of the last probe in seconds.",
             S::kProbe, [](const S& s) { return s.duration_s.get(); });
  add_gauges(out, all, "probe_http_status_code",
             "HTTP status of the last probe; 0 when no response arrived.", S::kProbe,
             [](const S& s) { return s.status_code.get(); });
  add_family(out, all, "vigil_probes_total", "Probes finished, by result.", MetricType::Counter,
             S::kProbe, [](const S& s, std::vector<ClientMetric>& metrics) {
               for (const auto& [result, count] :
                    {std::pair{"up", &s.probes_up}, std::pair{"down", &s.probes_down}}) {
                 ClientMetric metric;
                 metric.label = {{"result", result}, {"service", s.name()}};
                 metric.counter.value = double(count->load(std::memory_order_relaxed));
                 metrics.push_back(std::move(metric));
               }
             });
  add_gauges(out, all, "vigil_service_up",
             "Current status of the service (its open event): 1 up, 0 down.", S::kState,
             [](const S& s) { return s.up.get(); });
  add_gauges(out, all, "vigil_service_uptime_ratio", "Up ticks over all ticks of the service.",
             S::kState, [](const S& s) { return s.uptime_ratio.get(); });
  add_gauges(out, all, "vigil_heartbeat_last_seen_timestamp_seconds",
             "When the heartbeat service last reported (unix seconds).", S::kBeat,
             [](const S& s) { return s.last_beat_s.get(); });
  add_family(out, all, "probe_http_duration_seconds",
             "Duration of each phase of the last HTTP probe in seconds; the phases add up to "
             "probe_duration_seconds.",
             MetricType::Gauge, S::kHttp, [](const S& s, std::vector<ClientMetric>& metrics) {
               for (std::size_t i = 0; i < s.phase_s.size(); ++i)
                 metrics.push_back(gauge(s, s.phase_s[i].get(), {{"phase", kPhaseLabels[i]}}));
             });
  add_gauges(out, all, "probe_http_ssl", "Whether the last HTTP probe ended over TLS.", S::kHttp,
             [](const S& s) { return s.ssl.get(); });
  add_gauges(out, all, "probe_http_redirects", "Redirects the last HTTP probe followed.", S::kHttp,
             [](const S& s) { return s.redirects.get(); });
  add_gauges(out, all, "probe_http_content_length",
             "Content-Length of the last HTTP response; -1 when unknown.", S::kHttp,
             [](const S& s) { return s.content_length.get(); });
  add_gauges(out, all, "probe_ssl_earliest_cert_expiry",
             "When the soonest-expiring certificate of the chain the last probe saw expires (unix "
             "seconds).",
             S::kCertExpiry, [](const S& s) { return s.cert_expiry_s.get(); });
  add_family(out, all, "probe_tls_version_info",
             "TLS version of the last probe, as the label; always 1.", MetricType::Gauge, S::kHttp,
             [](const S& s, std::vector<ClientMetric>& metrics) {
               if (const std::string* version = s.tls_version())
                 metrics.push_back(gauge(s, 1, {{"version", *version}}));
             });
  return out;
}

}  // namespace vigil

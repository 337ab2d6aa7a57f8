#include "runner/service_series.h"

#include <initializer_list>
#include <iterator>
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
using S = ServiceSeries;

// Where one service's samples of a family go: ClientMetrics (Collect) or text (write_samples).
class SampleSink {
 public:
  // `labels` in name order, "service" among them.
  virtual void add(std::initializer_list<TextLabel> labels, double value) = 0;

 protected:
  ~SampleSink() = default;
};

// One family: which services have it (`group`) and their samples (usually one; more for a label
// like phase).
struct FamilySpec {
  TextFamily family;
  S::Group group;
  void (*samples)(const S&, SampleSink&);
};

// A gauge with exactly one sample per service, labelled by the service only.
template <S::Value S::*value>
void service_gauge(const S& s, SampleSink& out) {
  out.add({{"service", s.name()}}, (s.*value).get());
}

const FamilySpec kFamilies[] = {
    {{"probe_success", "Whether the last probe succeeded (1) or not (0).", MetricType::Gauge},
     S::kProbe,
     service_gauge<&S::success>},
    {{"probe_duration_seconds", "Total duration of the last probe in seconds.", MetricType::Gauge},
     S::kProbe,
     service_gauge<&S::duration_s>},
    {{"probe_http_status_code", "HTTP status of the last probe; 0 when no response arrived.",
      MetricType::Gauge},
     S::kProbe,
     service_gauge<&S::status_code>},
    {{"vigil_probes_total", "Probes finished, by result.", MetricType::Counter},
     S::kProbe,
     [](const S& s, SampleSink& out) {
       out.add({{"result", "up"}, {"service", s.name()}},
               double(s.probes_up.load(std::memory_order_relaxed)));
       out.add({{"result", "down"}, {"service", s.name()}},
               double(s.probes_down.load(std::memory_order_relaxed)));
     }},
    {{"vigil_service_up", "Current status of the service (its open event): 1 up, 0 down.",
      MetricType::Gauge},
     S::kState,
     service_gauge<&S::up>},
    {{"vigil_service_uptime_ratio", "Up ticks over all ticks of the service.", MetricType::Gauge},
     S::kState,
     service_gauge<&S::uptime_ratio>},
    {{"vigil_heartbeat_last_seen_timestamp_seconds",
      "When the heartbeat service last reported (unix seconds).", MetricType::Gauge},
     S::kBeat,
     service_gauge<&S::last_beat_s>},
    {{"probe_http_duration_seconds",
      "Duration of each phase of the last HTTP probe in seconds; the phases add up to "
      "probe_duration_seconds.",
      MetricType::Gauge},
     S::kHttp,
     [](const S& s, SampleSink& out) {
       for (std::size_t i = 0; i < s.phase_s.size(); ++i)
         out.add({{"phase", kPhaseLabels[i]}, {"service", s.name()}}, s.phase_s[i].get());
     }},
    {{"probe_http_ssl", "Whether the last HTTP probe ended over TLS.", MetricType::Gauge},
     S::kHttp,
     service_gauge<&S::ssl>},
    {{"probe_http_redirects", "Redirects the last HTTP probe followed.", MetricType::Gauge},
     S::kHttp,
     service_gauge<&S::redirects>},
    {{"probe_http_content_length", "Content-Length of the last HTTP response; -1 when unknown.",
      MetricType::Gauge},
     S::kHttp,
     service_gauge<&S::content_length>},
    {{"probe_ssl_earliest_cert_expiry",
      "When the soonest-expiring certificate of the chain the last probe saw expires (unix "
      "seconds).",
      MetricType::Gauge},
     S::kCertExpiry,
     service_gauge<&S::cert_expiry_s>},
    {{"probe_tls_version_info", "TLS version of the last probe, as the label; always 1.",
      MetricType::Gauge},
     S::kHttp,
     [](const S& s, SampleSink& out) {
       if (const std::string* version = s.tls_version())
         out.add({{"service", s.name()}, {"version", *version}}, 1);
     }},
};

// The families alone, for text_families().
const std::vector<TextFamily>& text_family_list() {
  static const std::vector<TextFamily> list = [] {
    std::vector<TextFamily> families;
    for (const auto& spec : kFamilies) families.push_back(spec.family);
    return families;
  }();
  return list;
}

class ClientMetricSink final : public SampleSink {
 public:
  ClientMetricSink(MetricType type, std::vector<ClientMetric>& into) : type_(type), into_(into) {}
  void add(std::initializer_list<TextLabel> labels, double value) override {
    ClientMetric& metric = into_.emplace_back();
    for (const auto& label : labels)
      metric.label.push_back({std::string(label.name), std::string(label.value)});
    (type_ == MetricType::Counter ? metric.counter.value : metric.gauge.value) = value;
  }

 private:
  MetricType type_;
  std::vector<ClientMetric>& into_;
};

class TextSink final : public SampleSink {
 public:
  explicit TextSink(TextExpositionWriter& out) : out_(out) {}
  void add(std::initializer_list<TextLabel> labels, double value) override {
    out_.sample(labels, value);
  }

 private:
  TextExpositionWriter& out_;
};

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

Series ServiceSeriesCollector::snapshot() const {
  std::lock_guard lock(mutex_);
  return series_;
}

std::vector<MetricFamily> ServiceSeriesCollector::Collect() const {
  const Series all = snapshot();
  std::vector<MetricFamily> out;
  for (const auto& spec : kFamilies) {
    MetricFamily family{
        std::string(spec.family.name), std::string(spec.family.help), spec.family.type, {}};
    ClientMetricSink sink(spec.family.type, family.metric);
    for (const auto& series : all)
      if (series->shows(spec.group)) spec.samples(*series, sink);
    // Empty families are left out, as prometheus-cpp does for a family without children.
    if (!family.metric.empty()) out.push_back(std::move(family));
  }
  return out;
}

std::span<const TextFamily> ServiceSeriesCollector::text_families() const {
  return text_family_list();
}

void ServiceSeriesCollector::write_samples(std::size_t index, TextExpositionWriter& out) const {
  if (index >= std::size(kFamilies)) return;
  const FamilySpec& spec = kFamilies[index];
  TextSink sink(out);
  for (const auto& series : snapshot()) {
    if (!out.ok()) return;  // the scraper went away
    if (series->shows(spec.group)) spec.samples(*series, sink);
  }
}

}  // namespace vigil

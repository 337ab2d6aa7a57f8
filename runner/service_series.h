// The runner's per-service Prometheus series (probe_*, vigil_probes_total, vigil_service_*,
// vigil_heartbeat_last_seen_*), private to runner/. Each service keeps its values in one small
// struct of atomics, written as text only when /metrics is scraped. A prometheus-cpp Family
// child costs a label map and a hash node per series (about 300 bytes, 15 series per HTTP
// service): at 100,000 services that was most of vigil's memory; building ClientMetrics for a
// scrape cost as much again, so /metrics writes the text straight (runner/text_exposition.h).
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "runner/text_exposition.h"

namespace vigil {

// The `phase` label values of probe_http_duration_seconds and of the phase histogram, in
// PhaseTimings order.
inline constexpr std::array<const char*, 5> kPhaseLabels = {"resolve", "connect", "tls",
                                                            "processing", "transfer"};

// One service's latest values. Written by the runner thread only; read by scrapes on other
// threads, hence atomics (relaxed: each value stands alone, as with prometheus-cpp's own gauges).
class ServiceSeries {
 public:
  explicit ServiceSeries(std::string name) : name_(std::move(name)) {}
  const std::string& name() const { return name_; }

  // Which groups of series exist: a service that was never probed shows no probe_success rather
  // than a misleading 0, and a probe without TLS shows no certificate expiry.
  enum Group : std::uint32_t {
    kProbe = 1,  // probe_success, probe_duration_seconds, probe_http_status_code, probes_total
    kState = 2,  // vigil_service_up, vigil_service_uptime_ratio
    kBeat = 4,   // vigil_heartbeat_last_seen_timestamp_seconds
    kHttp = 8,   // probe_http_duration_seconds{phase}, probe_http_ssl, _redirects, _content_length
    kCertExpiry = 16,  // probe_ssl_earliest_cert_expiry
  };
  void show(Group group) { groups_.fetch_or(group, std::memory_order_relaxed); }
  void hide(Group group) { groups_.fetch_and(~std::uint32_t(group), std::memory_order_relaxed); }
  bool shows(Group group) const { return groups_.load(std::memory_order_relaxed) & group; }

  // The TLS version label of probe_tls_version_info; empty: no such series.
  void set_tls_version(const std::string& version);
  const std::string* tls_version() const { return tls_version_.load(std::memory_order_relaxed); }

  struct Value {
    std::atomic<double> v{0};
    void set(double value) { v.store(value, std::memory_order_relaxed); }
    double get() const { return v.load(std::memory_order_relaxed); }
  };
  Value success, duration_s, status_code, up, uptime_ratio, last_beat_s;
  std::array<Value, kPhaseLabels.size()> phase_s;
  Value ssl, redirects, content_length, cert_expiry_s;
  std::atomic<std::uint64_t> probes_up{0}, probes_down{0};

 private:
  friend class ServiceSeriesCollector;
  const std::string name_;
  std::size_t slot_ = 0;  // index in the collector's list, under its mutex
  std::atomic<std::uint32_t> groups_{0};
  std::atomic<const std::string*> tls_version_{nullptr};  // interned, never freed
};

// Every service's series. add/remove from the runner thread; Collect and write_samples from any
// thread. Collect (prometheus-cpp objects) and the text are made from one table of families, so
// they hold the same series; /metrics writes the text.
class ServiceSeriesCollector final : public prometheus::Collectable, public TextCollectable {
 public:
  std::shared_ptr<ServiceSeries> add(const std::string& service_name);
  void remove(const ServiceSeries& series);
  std::vector<prometheus::MetricFamily> Collect() const override;
  std::span<const TextFamily> text_families() const override;
  void write_samples(std::size_t index, TextExpositionWriter& out) const override;

 private:
  // The services now: the runner may add and remove while a scrape reads them.
  std::vector<std::shared_ptr<ServiceSeries>> snapshot() const;

  mutable std::mutex mutex_;
  std::vector<std::shared_ptr<ServiceSeries>> series_;  // unordered: removal swaps in the last
};

}  // namespace vigil

// What the status page (GET /) and a service's page (GET /services/{id}) show, read from the
// Store's rollups and events. Loading is apart from rendering (api/status_page.h) so
// that the HTML can be benchmarked and tested on its own. Any thread.
//
// Figures: uptime percentages are probes up / probes (as /v1/uptime) over the UTC hours that
// overlap the window (the current hour included); daily cells are UTC days; a day's downtime
// minutes come from the downtime events (time, not probes); the sparkline is the p95 response
// time per 15 minutes over the last 24 hours.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/model.h"
#include "storage/alert_store.h"
#include "storage/store.h"

namespace vigil {

// The windows of the uptime columns: 24h, 7d, 30d, 90d.
inline constexpr std::array<int, 4> kUptimeWindowDays = {1, 7, 30, 90};
inline constexpr std::array<const char*, 4> kUptimeWindowNames = {"24h", "7d", "30d", "90d"};
inline constexpr int kBarDays = 90;
inline constexpr int kSparkBuckets = 96;     // 15-minute buckets over 24 h
inline constexpr int kDetailHours = 7 * 24;  // the service page's hourly bar
inline constexpr int kStatusPageSize = 50;   // services per page of GET /

// One cell of a bar: a UTC day or hour.
struct BarCell {
  TimePoint start;
  std::int64_t probes = 0;
  std::int64_t up = 0;
  double downtime_minutes = 0;
  std::optional<double> uptime_percent() const {
    if (probes == 0) return std::nullopt;
    return 100.0 * double(up) / double(probes);
  }
};

// One point of a response-time chart.
struct LatencyPoint {
  TimePoint start;
  std::optional<double> mean_ms;
  std::optional<double> p95_ms;
  std::optional<PhaseTimings> phases;  // means, when the probes recorded phases
};

// stale: a probed service without a tick for too long (is_stale, storage/store.h), whatever
// its last state was: neither up nor down can be claimed.
enum class ServiceState { up, down, unknown, stale };

struct ServiceRow {
  ServiceView view;
  ServiceState state = ServiceState::unknown;
  std::optional<Millis> state_for;                      // since the open event started
  std::array<std::optional<double>, 4> uptime_percent;  // kUptimeWindowNames
  std::vector<BarCell> days;                            // kBarDays, oldest first
  std::vector<LatencyPoint> sparkline;                  // kSparkBuckets, oldest first
};

struct StatusGroup {
  std::string name;  // team, else the first tag, else "" (ungrouped)
  std::vector<ServiceRow> rows;
  bool continued = false;  // the group began on an earlier page
};

struct StatusPageData {
  std::string title;
  TimePoint now;
  int total = 0;  // every active service, all pages
  int down = 0;
  int unknown = 0;
  int stale = 0;
  int page = 1;  // 1-based
  int pages = 1;
  std::vector<StatusGroup> groups;  // this page's services
  // Set by the server while a part of monitoring is silent ("runner silent for 42.0 s",
  // api/health.h): the page then says monitoring is down instead of its headline.
  std::string monitoring_down;
};

struct ServicePageData {
  std::string title;
  TimePoint now;
  ServiceRow row;                        // days and a 24 h sparkline as on the status page
  std::vector<BarCell> hours;            // kDetailHours, oldest first
  std::vector<LatencyPoint> day_chart;   // 15 minutes over 24 h
  std::vector<LatencyPoint> week_chart;  // hours over 7 d
  std::vector<Event> events;             // newest first
  std::vector<AlertRecord> alerts;       // newest first
};

ServiceState state_of(const ServiceView& view, TimePoint now);
// The group a service is listed under.
std::string group_of(const ServiceSpec& spec);

// Page `page` (1-based; past the last page gives the last) of the status page, kStatusPageSize
// services a page in group order (groups by name, ungrouped last; services by name).
StatusPageData load_status_page(Store& store, const std::string& title, TimePoint now, int page);

// Empty when there is no service `id`. `alerts` may be null (no alerts shown).
std::optional<ServicePageData> load_service_page(Store& store, AlertStore* alerts,
                                                 const std::string& title, ServiceId id,
                                                 TimePoint now);

}  // namespace vigil

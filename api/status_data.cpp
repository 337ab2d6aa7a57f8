#include "api/status_data.h"

#include <algorithm>
#include <map>
#include <utility>

#include "api/series_routes.h"

namespace vigil {
namespace {

constexpr std::int64_t kMinuteMs = 60'000;
constexpr std::int64_t kHourMs = 3'600'000;
constexpr std::int64_t kDayMs = 86'400'000;
constexpr std::int64_t kSparkStepMs = 15 * kMinuteMs;

// `count` cells of `step` ending with the one holding `now`, oldest first.
std::vector<BarCell> empty_cells(TimePoint now, std::int64_t step, int count) {
  const std::int64_t last = floor_to(to_unix_ms(now), step);
  std::vector<BarCell> cells(static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i)
    cells[static_cast<std::size_t>(i)].start = from_unix_ms(last - (count - 1 - i) * step);
  return cells;
}

// Adds the probes of hour rollups to the cells (of a step that is a multiple of an hour).
void add_probes(std::vector<BarCell>& cells, std::int64_t step,
                const std::vector<std::pair<TimePoint, RollupSummary>>& hours) {
  if (cells.empty()) return;
  const std::int64_t first = to_unix_ms(cells.front().start);
  for (const auto& [start, summary] : hours) {
    const std::int64_t index = (floor_to(to_unix_ms(start), step) - first) / step;
    if (index < 0 || index >= std::int64_t(cells.size())) continue;
    cells[std::size_t(index)].probes += summary.count;
    cells[std::size_t(index)].up += summary.up;
  }
}

// Spreads the downtime events over the cells, in minutes; an open event lasts until now.
void add_downtime(std::vector<BarCell>& cells, std::int64_t step, const std::vector<Event>& events,
                  TimePoint now) {
  if (cells.empty()) return;
  const std::int64_t first = to_unix_ms(cells.front().start);
  const std::int64_t end = std::min(first + step * std::int64_t(cells.size()), to_unix_ms(now));
  for (const Event& event : events) {
    if (event.kind != EventKind::downtime) continue;
    std::int64_t from = std::max(first, to_unix_ms(event.date_started));
    const std::int64_t to = std::min(end, event.date_ended ? to_unix_ms(*event.date_ended) : end);
    while (from < to) {
      const std::int64_t index = (from - first) / step;
      const std::int64_t cell_end = first + (index + 1) * step;
      const std::int64_t piece = std::min(to, cell_end) - from;
      cells[std::size_t(index)].downtime_minutes += double(piece) / double(kMinuteMs);
      from += piece;
    }
  }
}

// Latency points of `step` (a multiple of the rollups' period) over `count` steps up to now.
std::vector<LatencyPoint> latency_points(
    TimePoint now, std::int64_t step, int count,
    const std::vector<std::pair<TimePoint, RollupSummary>>& rollups) {
  const std::int64_t last = floor_to(to_unix_ms(now), step);
  const std::int64_t first = last - (count - 1) * step;
  std::vector<RollupSummary> merged(static_cast<std::size_t>(count));
  for (const auto& [start, summary] : rollups) {
    const std::int64_t index = (floor_to(to_unix_ms(start), step) - first) / step;
    if (index >= 0 && index < count) merged[std::size_t(index)].merge(summary);
  }
  std::vector<LatencyPoint> points(static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i) {
    const RollupSummary& s = merged[std::size_t(i)];
    LatencyPoint& point = points[std::size_t(i)];
    point.start = from_unix_ms(first + i * step);
    point.mean_ms = s.mean_ms();
    point.p95_ms = s.percentile(0.95);
    point.phases = s.phase_means();
  }
  return points;
}

// The row of one service: state, uptime windows, daily bar and sparkline, from its hour rollups
// over 90 days, minute rollups over 24 hours and downtime events over 90 days. Also hands out
// the hour rollups and events it read, for the service page's hourly bar and weekly chart.
ServiceRow load_row(Store& store, ServiceView view, TimePoint now,
                    std::vector<std::pair<TimePoint, RollupSummary>>* hours_out = nullptr,
                    std::vector<Event>* events_out = nullptr) {
  ServiceRow row;
  row.state = state_of(view, now);
  if (view.open_event)
    row.state_for = std::chrono::duration_cast<Millis>(now - view.open_event->date_started);
  const ServiceId id = view.service.id;
  row.view = std::move(view);

  row.days = empty_cells(now, kDayMs, kBarDays);
  const std::int64_t this_hour = floor_to(to_unix_ms(now), kHourMs);
  // The hours of the longest uptime window may begin before the bar's first day.
  const TimePoint since =
      std::min(row.days.front().start,
               from_unix_ms(this_hour - (kUptimeWindowDays.back() * 24 - 1) * kHourMs));
  auto hours = store.rollups(id, RollupResolution::hour, since, now + Millis(kHourMs));
  add_probes(row.days, kDayMs, hours);
  auto events = store.events_overlapping(id, since, now + Millis(1));
  add_downtime(row.days, kDayMs, events, now);

  for (std::size_t w = 0; w < kUptimeWindowDays.size(); ++w) {
    // The hours overlapping (now - window, now]: the current one and the whole ones before it.
    const std::int64_t first_hour = this_hour - (kUptimeWindowDays[w] * 24 - 1) * kHourMs;
    std::int64_t probes = 0, up = 0;
    for (const auto& [start, summary] : hours)
      if (to_unix_ms(start) >= first_hour) {
        probes += summary.count;
        up += summary.up;
      }
    if (probes > 0) row.uptime_percent[w] = 100.0 * double(up) / double(probes);
  }

  const TimePoint spark_from =
      from_unix_ms(floor_to(to_unix_ms(now), kSparkStepMs) - (kSparkBuckets - 1) * kSparkStepMs);
  auto minutes = store.rollups(id, RollupResolution::minute, spark_from, now + Millis(kMinuteMs));
  row.sparkline = latency_points(now, kSparkStepMs, kSparkBuckets, minutes);
  if (hours_out) *hours_out = std::move(hours);
  if (events_out) *events_out = std::move(events);
  return row;
}

}  // namespace

ServiceState state_of(const ServiceView& view, TimePoint now) {
  if (is_stale(view, now)) return ServiceState::stale;
  if (!view.open_event) return ServiceState::unknown;
  return view.open_event->kind == EventKind::downtime ? ServiceState::down : ServiceState::up;
}

std::string group_of(const ServiceSpec& spec) {
  if (!spec.team.empty()) return spec.team;
  if (!spec.tags.empty()) return spec.tags.front();
  return {};
}

StatusPageData load_status_page(Store& store, const std::string& title, TimePoint now, int page) {
  StatusPageData data;
  data.title = title;
  data.now = now;
  std::vector<ServiceView> views = store.list_services();
  data.total = int(views.size());
  for (const auto& view : views) {
    const ServiceState state = state_of(view, now);
    if (state == ServiceState::down) ++data.down;
    if (state == ServiceState::unknown) ++data.unknown;
    if (state == ServiceState::stale) ++data.stale;
  }
  // Group order: named groups by name, ungrouped last; services by name, then id.
  std::vector<std::pair<std::string, std::size_t>> order;
  order.reserve(views.size());
  for (std::size_t i = 0; i < views.size(); ++i)
    order.emplace_back(group_of(views[i].service.spec), i);
  std::sort(order.begin(), order.end(), [&](const auto& a, const auto& b) {
    if (a.first != b.first) {
      if (a.first.empty() || b.first.empty()) return b.first.empty();
      return a.first < b.first;
    }
    const auto& sa = views[a.second].service;
    const auto& sb = views[b.second].service;
    return sa.spec.name != sb.spec.name ? sa.spec.name < sb.spec.name : sa.id < sb.id;
  });
  data.pages = std::max(1, (data.total + kStatusPageSize - 1) / kStatusPageSize);
  data.page = std::clamp(page, 1, data.pages);
  const std::size_t begin = std::size_t(data.page - 1) * kStatusPageSize;
  const std::size_t end = std::min(order.size(), begin + kStatusPageSize);
  for (std::size_t i = begin; i < end; ++i) {
    const std::string& group = order[i].first;
    if (data.groups.empty() || data.groups.back().name != group) {
      data.groups.push_back(StatusGroup{group, {}, false});
      data.groups.back().continued = i == begin && i > 0 && order[i - 1].first == group;
    }
    data.groups.back().rows.push_back(load_row(store, std::move(views[order[i].second]), now));
  }
  return data;
}

std::optional<ServicePageData> load_service_page(Store& store, AlertStore* alerts,
                                                 const std::string& title, ServiceId id,
                                                 TimePoint now) {
  auto view = store.get_service(id);
  if (!view) return std::nullopt;
  ServicePageData data;
  data.title = title;
  data.now = now;
  std::vector<std::pair<TimePoint, RollupSummary>> hours;
  std::vector<Event> events;
  data.row = load_row(store, std::move(*view), now, &hours, &events);
  data.hours = empty_cells(now, kHourMs, kDetailHours);
  add_probes(data.hours, kHourMs, hours);
  add_downtime(data.hours, kHourMs, events, now);
  data.day_chart = data.row.sparkline;
  data.week_chart = latency_points(now, kHourMs, kDetailHours, hours);
  data.events = store.events(id, 20, std::nullopt);
  if (alerts) {
    AlertQuery query;
    query.service_id = id;
    query.limit = 10;
    data.alerts = alerts->alerts(query);
  }
  return data;
}

}  // namespace vigil

#include "api/series_routes.h"

#include <httplib.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <string_view>
#include <utility>
#include <vector>

#include "api/json_views.h"
#include "api/params.h"
#include "api/responses.h"

namespace vigil::series {
namespace {

using json = nlohmann::json;

constexpr std::int64_t kDayMs = 86'400'000;
constexpr std::int64_t kMaxWindowMs = 3660 * kDayMs;  // ten years
constexpr std::int64_t kMaxPoints = 10'000;
constexpr double kPercentileError = 0.096;  // storage/rollups.h: sqrt(1.2) - 1, rounded up

struct Window {
  std::int64_t from_ms = 0;  // inclusive
  std::int64_t to_ms = 0;    // exclusive
  std::string name;          // "30d", or "" for from/to
};

std::optional<std::int64_t> parse_seconds(std::string_view text) {
  const auto value = parse_int64(text);
  if (!value || *value < 0 || *value > kMaxWindowMs * 100 / 1000) return std::nullopt;
  return value;
}

std::int64_t seconds_param(const Params& params, const char* name, std::int64_t fallback_ms) {
  const auto text = params(name);
  if (!text) return fallback_ms;
  const auto seconds = parse_seconds(*text);
  if (!seconds) throw BadParam(std::string(name) + " must be a non-negative unix time in seconds");
  return *seconds * 1000;
}

// window=, or from= and/or to= (to defaults to now); 24h when none is given.
Window parse_window(const Params& params, TimePoint now) {
  static const std::array<std::pair<const char*, std::int64_t>, 6> kWindows = {
      {{"1h", 3'600'000},
       {"24h", kDayMs},
       {"7d", 7 * kDayMs},
       {"30d", 30 * kDayMs},
       {"90d", 90 * kDayMs},
       {"365d", 365 * kDayMs}}};
  const auto window = params("window");
  const bool has_from = params("from").has_value();
  if (window && has_from) throw BadParam("window: give either window or from/to, not both");
  Window out;
  out.to_ms = seconds_param(params, "to", to_unix_ms(now));
  if (has_from) {
    out.from_ms = seconds_param(params, "from", 0);
    if (out.from_ms >= out.to_ms) throw BadParam("from must be before to");
    if (out.to_ms - out.from_ms > kMaxWindowMs) throw BadParam("from/to: at most 3660 days apart");
    return out;
  }
  out.name = window.value_or("24h");
  const auto it = std::find_if(kWindows.begin(), kWindows.end(),
                               [&](const auto& w) { return out.name == w.first; });
  if (it == kWindows.end()) throw BadParam("window must be one of 1h, 24h, 7d, 30d, 90d, 365d");
  out.from_ms = out.to_ms - it->second;
  return out;
}

json number_or_null(const std::optional<double>& value) {
  return value ? json(*value) : json(nullptr);
}

double seconds_of(std::int64_t ms) { return double(ms) / 1000.0; }

}  // namespace

json service_metrics(Store& store, ServiceId id, const Params& params, TimePoint now) {
  const Window window = parse_window(params, now);
  const RollupSummary s =
      store.summarize(id, from_unix_ms(window.from_ms), from_unix_ms(window.to_ms));

  // Time-weighted: how the known part of the window (covered by events; an open event lasts
  // until now) splits between uptime and downtime.
  const std::int64_t end_ms = std::min(window.to_ms, to_unix_ms(now));
  std::int64_t known_ms = 0, up_ms = 0, longest_down_ms = 0, down_total_ms = 0, downtimes = 0;
  for (const Event& event :
       store.events_overlapping(id, from_unix_ms(window.from_ms), from_unix_ms(window.to_ms))) {
    const std::int64_t start = std::max(window.from_ms, to_unix_ms(event.date_started));
    const std::int64_t stop =
        std::min(end_ms, event.date_ended ? to_unix_ms(*event.date_ended) : end_ms);
    const std::int64_t length = std::max<std::int64_t>(0, stop - start);
    known_ms += length;
    if (event.kind == EventKind::uptime) {
      up_ms += length;
    } else {
      ++downtimes;
      down_total_ms += length;
      longest_down_ms = std::max(longest_down_ms, length);
    }
  }

  json phases = nullptr;
  if (const auto means = s.phase_means()) {
    phases = json{{"resolve", means->resolve_ms},
                  {"connect", means->connect_ms},
                  {"tls", means->tls_ms},
                  {"processing", means->processing_ms},
                  {"transfer", means->transfer_ms}};
  }
  json metrics = {{"service_id", id},
                  {"window", window.name.empty() ? json(nullptr) : json(window.name)},
                  {"from", seconds_of(window.from_ms)},
                  {"to", seconds_of(window.to_ms)},
                  {"probe_count", s.count},
                  {"up_count", s.up},
                  {"down_count", s.down},
                  {"uptime_percent", number_or_null(s.uptime_percent())},
                  {"uptime_percent_by_time",
                   known_ms > 0 ? json(100.0 * double(up_ms) / double(known_ms)) : json(nullptr)},
                  {"mean_ms", number_or_null(s.mean_ms())},
                  {"p50_ms", number_or_null(s.percentile(0.50))},
                  {"p90_ms", number_or_null(s.percentile(0.90))},
                  {"p95_ms", number_or_null(s.percentile(0.95))},
                  {"p99_ms", number_or_null(s.percentile(0.99))},
                  {"min_ms", s.count ? json(s.min_ms) : json(nullptr)},
                  {"max_ms", s.count ? json(s.max_ms) : json(nullptr)},
                  {"percentile_max_relative_error", kPercentileError},
                  {"downtime_events", downtimes},
                  {"longest_downtime_seconds", seconds_of(longest_down_ms)},
                  {"mttr_seconds",
                   downtimes ? json(seconds_of(down_total_ms) / double(downtimes)) : json(nullptr)},
                  {"phases_ms", phases}};
  return json{{"metrics", std::move(metrics)}};
}

json service_series(Store& store, ServiceId id, const Params& params, TimePoint now) {
  const Window window = parse_window(params, now);
  const auto step_text = params("step");
  if (!step_text) throw BadParam("step is required: 60, 300, 3600 or 86400");
  const auto step_s = parse_seconds(*step_text);
  if (!step_s || (*step_s != 60 && *step_s != 300 && *step_s != 3600 && *step_s != 86400))
    throw BadParam("step must be 60, 300, 3600 or 86400");
  const std::int64_t step = *step_s * 1000;
  const std::int64_t first = floor_to(window.from_ms, step);
  const std::int64_t last = floor_to(window.to_ms - 1, step);  // the step holding to's last ms
  if ((last - first) / step + 1 > kMaxPoints)
    throw BadParam("step: at most " + std::to_string(kMaxPoints) + " points; use a larger step");

  const RollupResolution resolution =
      step < 3'600'000 ? RollupResolution::minute : RollupResolution::hour;
  std::map<std::int64_t, RollupSummary> by_step;
  for (const auto& [bucket, summary] :
       store.rollups(id, resolution, from_unix_ms(first), from_unix_ms(last + step)))
    by_step[floor_to(to_unix_ms(bucket), step)].merge(summary);

  json points = json::array();
  for (std::int64_t t = first; t <= last; t += step) {
    const auto it = by_step.find(t);
    const RollupSummary empty;
    const RollupSummary& s = it == by_step.end() ? empty : it->second;
    points.push_back(json{{"t", t / 1000},
                          {"count", s.count},
                          {"up", s.up},
                          {"down", s.down},
                          {"uptime_percent", number_or_null(s.uptime_percent())},
                          {"mean_ms", number_or_null(s.mean_ms())},
                          {"p95_ms", number_or_null(s.percentile(0.95))}});
  }
  return json{{"series",
               {{"service_id", id},
                {"step", step / 1000},
                {"from", first / 1000},
                {"to", (last + step) / 1000},
                {"points", std::move(points)}}}};
}

json all_uptime(Store& store, const Params& params, TimePoint now) {
  Window window = parse_window(params, now);
  std::map<ServiceId, RollupSummary> summaries;
  if (!window.name.empty() && !params("to")) {
    // A named window that ends now: a long one is whole rollup rows from the hour it starts in,
    // mostly cached (storage/store.h); "from" says where it started.
    auto recent = store.summarize_all_recent(Millis(window.to_ms - window.from_ms), now);
    window.from_ms = to_unix_ms(recent.from);
    summaries = std::move(recent.services);
  } else {
    summaries = store.summarize_all(from_unix_ms(window.from_ms), from_unix_ms(window.to_ms));
  }
  json services = json::array();
  for (const ServiceView& view : store.list_services()) {
    const auto it = summaries.find(view.service.id);
    const RollupSummary empty;
    const RollupSummary& s = it == summaries.end() ? empty : it->second;
    services.push_back(json{{"id", view.service.id},
                            {"name", view.service.spec.name},
                            {"probe_count", s.count},
                            {"uptime_percent", number_or_null(s.uptime_percent())},
                            {"p95_ms", number_or_null(s.percentile(0.95))}});
  }
  return json{{"uptime",
               {{"window", window.name.empty() ? json(nullptr) : json(window.name)},
                {"from", seconds_of(window.from_ms)},
                {"to", seconds_of(window.to_ms)},
                {"services", std::move(services)}}}};
}

}  // namespace vigil::series

namespace vigil {
namespace {

// Runs a series route's body on the request's query parameters, answering its data, or a 400
// for its BadParam.
template <typename Body>
void send_series(const httplib::Request& req, httplib::Response& res, Body&& body) {
  const series::Params params = [&req](const char* name) { return optional_param(req, name); };
  nlohmann::json data;
  try {
    data = body(params);
  } catch (const series::BadParam& e) {
    throw bad_request(e.what());
  }
  send_json(res, 200, envelope(200, std::move(data)));
}

}  // namespace

void add_series_routes(Router& router, Store& store) {
  router.add(
      "/v1/services/{id}/metrics", R"(/v1/services/([^/]+)/metrics)", "GET", Gate::read,
      [&store](const httplib::Request& req, httplib::Response& res, const std::smatch& path) {
        const ServiceId id = parse_service_id(path[1].str());
        if (!store.get_service(id)) throw service_not_found(id);
        send_series(req, res, [&](const series::Params& params) {
          return series::service_metrics(store, id, params, now_ms());
        });
      });
  router.add(
      "/v1/services/{id}/series", R"(/v1/services/([^/]+)/series)", "GET", Gate::read,
      [&store](const httplib::Request& req, httplib::Response& res, const std::smatch& path) {
        const ServiceId id = parse_service_id(path[1].str());
        if (!store.get_service(id)) throw service_not_found(id);
        send_series(req, res, [&](const series::Params& params) {
          return series::service_series(store, id, params, now_ms());
        });
      });
  router.add("/v1/uptime", "/v1/uptime", "GET", Gate::read,
             [&store](const httplib::Request& req, httplib::Response& res, const std::smatch&) {
               send_series(req, res, [&](const series::Params& params) {
                 return series::all_uptime(store, params, now_ms());
               });
             });
}

}  // namespace vigil

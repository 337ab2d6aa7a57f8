// The time-series reads of the API. Each series:: function turns query parameters into the
// `data` of its route, reading the Store's rollups, apart from HTTP; add_series_routes wires them
// to
//   GET /v1/services/{id}/metrics  ?window=1h|24h|7d|30d|90d|365d or ?from=&to= (unix seconds)
//   GET /v1/services/{id}/series   the same window parameters and ?step=60|300|3600|86400
//   GET /v1/uptime                 the same window parameters, every active service
// (404 for an unknown service, 400 naming a bad parameter). Any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>

#include "api/router.h"
#include "core/model.h"
#include "storage/store.h"

namespace vigil::series {

// A bad query parameter; the message names it (the API answers 400).
class BadParam : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// A query parameter's value, or empty when the request does not have it.
using Params = std::function<std::optional<std::string>(const char* name)>;

// {"metrics": {...}} for service `id` (which the caller checked exists).
nlohmann::json service_metrics(Store& store, ServiceId id, const Params& params, TimePoint now);
// {"series": {"step", "from", "to", "points": [{t, count, up, down, uptime_percent, mean_ms,
// p95_ms}]}}: one point per step, empty steps included (count 0, nulls).
nlohmann::json service_series(Store& store, ServiceId id, const Params& params, TimePoint now);
// {"uptime": {"from", "to", "window", "services": [{id, name, probe_count, uptime_percent,
// p95_ms}]}}, ordered by id.
nlohmann::json all_uptime(Store& store, const Params& params, TimePoint now);

}  // namespace vigil::series

namespace vigil {

// Adds the three routes to `router`. `store` must outlive it; the handlers run on the server's
// pool threads.
void add_series_routes(Router& router, Store& store);

}  // namespace vigil

// The routes about vigil itself rather than its services:
//   GET /healthz        200 with each part's state (api/health.h) and the storage's, or 503
//                       naming the silent or failing part; open
//   GET /metrics        the Prometheus text exposition (api/metrics_exposition.h), streamed;
//                       gated like the /v1 reads
//   GET /v1/cluster     the members of this process's cluster (ApiOptions::cluster_members);
//                       gated like the /v1 reads
//   GET /openapi.json   the OpenAPI document built in (api/openapi.h); open
//   GET /docs           the HTML page rendered from it; open
#pragma once

#include "api/health.h"
#include "api/router.h"
#include "api/server.h"
#include "storage/store.h"

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace vigil {

// Adds the routes to `router`. /healthz judges `health` with options.health_clock and
// health_silent_after and pings `store`; /metrics writes `registry`, options.collectables and
// the API's own per-service gauges (api/uptime_gauges.h, api/freshness_gauges.h), read from
// `store`. `store`, `registry` and `options` must outlive the router; the handlers run on the
// server's pool threads and call `health` there.
void add_system_routes(Router& router, Store& store, prometheus::Registry& registry,
                       const ApiOptions& options, HealthCheck health);

}  // namespace vigil

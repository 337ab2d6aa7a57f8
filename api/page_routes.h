// The human-facing routes: HTML pages and SVG badges.
//   GET /                      the status page (api/status_page.h); ?page=1..1000000
//   GET /services/{id}         a service's page (404 page when unknown)
//   GET /v1/services/{id}/badges/{status,uptime,response-time}.svg   shields-style badges
//   GET /v1/badges/{name}/{status,uptime,response-time}.svg          (api/badges.h) of a service
//                              by id or by name; ?window=24h|7d|30d; 404 unknown, 400 bad window
// Open when options.status_page_public, else gated like the /v1 reads.
#pragma once

#include "api/health.h"
#include "api/router.h"
#include "api/server.h"
#include "storage/store.h"

namespace vigil {

// Adds the routes to `router`. The status page warns when `health` reports a silent part
// (judged as /healthz does, with options.health_clock and health_silent_after). `store` and
// `options` must outlive the router; the handlers run on the server's pool threads and call
// `health` there.
void add_page_routes(Router& router, Store& store, const ApiOptions& options, HealthCheck health);

}  // namespace vigil

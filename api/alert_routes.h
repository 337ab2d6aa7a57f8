// The alerting routes:
//   GET /v1/alerts, GET /v1/alerts/{id}   alerts, newest first and paged (api/paging.h), and one
//                                         alert with its notifications
//   POST /v1/alerts/test?channel=NAME     a test notification (202)
//   GET|POST /v1/maintenance, DELETE /v1/maintenance/{id}   maintenance windows
// (shapes and errors in api/server.h). Each answers 503 when this process has no AlertStore
// (or, for the test notification, no Alerter).
#pragma once

#include "api/router.h"
#include "api/server.h"

namespace vigil {

// Adds the routes to `router`; they read options.alerts, options.alerter and options.alerting.
// `options` must outlive it; the handlers run on the server's pool threads.
void add_alert_routes(Router& router, const ApiOptions& options);

}  // namespace vigil

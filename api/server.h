// ApiServer: the HTTP API (cpp-httplib) on its own thread pool. It reads the Store and the
// Prometheus registry, writes services to the Store, and hands changes and pushed beats to the
// runner through ServiceCommands; it never mutates runner state itself.
//
// Each group of routes has its own file and adds itself to the Router (api/router.h: gates,
// dispatch, 404/405): api/service_routes.h, push_routes.h, history_routes.h (events, ticks),
// series_routes.h, alert_routes.h (alerts, maintenance), system_routes.h (healthz, metrics,
// docs) and page_routes.h (status page, badges). They share api/params.h to read a request and
// api/responses.h to answer it.
//
// Routes (every JSON body is the envelope {"status","status_desc","data"[,"error"]}).
// The four lists (services, events, ticks, alerts) page alike (api/paging.h): ?limit=1..1000
// (100) &cursor=, and `next` beside the items is the cursor of the following page, or null on
// the last one.
//   GET /v1/services                      active services with metric and open event, ordered
//                                         by id; filters ?team= &tag= &status=up|down|stale
//                                         &muted=true|false &kind=http|heartbeat; pages in
//                                         data.services.next (older: &offset=, not with cursor)
//   POST /v1/services                     create (write): 201 {"service"} (with push_token);
//                                         400 bad field (the services file's message), 409
//                                         name taken
//   GET /v1/services/{id}                 one service (404 when unknown); push_token shown to
//                                         writers and API_READ_TOKEN holders; every service
//                                         view's url through redact_url: query values for
//                                         writers only, never a password
//   PATCH /v1/services/{id}               partial update (write): fields replace, null resets;
//                                         "active": true|false; 409 for a file service
//   DELETE /v1/services/{id}[?purge=true] deactivate (write), or delete with its history
//   GET|HEAD|POST /v1/push/{token}[/fail] a heartbeat report: 200 "OK"; 404 unknown token,
//                                         nothing written; ?status=up|down &msg= &duration_ms=
//                                         (also as a form or JSON body)
//   GET /v1/services/{id}/events          newest first; pages in data.events.next (older:
//                                         &before=<event id>, not with cursor)
//   GET /v1/services/{id}/ticks           ?from=&to= (unix seconds, inclusive, may have a
//                                         decimal fraction; filters kept with a cursor), newest
//                                         first; pages in data.ticks.next
//   GET /v1/services/{id}/metrics         (api/series_routes.h): ?window= or ?from=&to=
//   GET /v1/services/{id}/series          ... and ?step=60|300|3600|86400
//   GET /v1/uptime                        every active service's uptime and p95 of a window
//   GET /v1/alerts                        alerts, newest first: ?active=true|false &service_id=
//                                         &since=<unix seconds, created at or after>; pages in
//                                         data.next (beside data.alerts)
//   GET /v1/alerts/{id}                   one alert with its notifications (404 when unknown)
//   POST /v1/alerts/test?channel=NAME     a test notification (write): 202; 404 unknown
//                                         channel; 503 when this process runs no Alerter
//   GET /v1/maintenance                   every maintenance window, the services file's (id
//                                         null) then the API's, with active and next_start
//   POST /v1/maintenance                  create a window (write; alerting/maintenance.h shape):
//                                         201 {"window"}; 400 naming the bad field
//   DELETE /v1/maintenance/{id}           delete an API window (write): 404 when unknown
//   GET /healthz                          200 {"data":{"runner":{"status","age_seconds",
//                                         "instance"},"writer":..,"alerter":..,"storage":..,
//                                         "silent_after_seconds"}} (api/health.h), or 503
//                                         when a part is silent (the error names it and for
//                                         how long) or writes to the database fail
//                                         (data.storage "failing", the reason in
//                                         data.storage_error and the error message)
//   GET /metrics                          Prometheus text exposition of the registry, including
//                                         vigil_api_requests_total{route,code} and
//                                         vigil_api_request_duration_seconds{route}
//   GET /openapi.json, GET /docs          the OpenAPI 3 document (api/openapi.json, built in) and
//                                         an HTML page from it; open
//   GET /, GET /services/{id}             the status page and a service's page, HTML
//                                         (api/status_page.h); ?page= on /
//   GET /v1/services/{id}/badges/{status,uptime,response-time}.svg   shields-style SVG
//   GET /v1/badges/{name}/{status,uptime,response-time}.svg          badges (api/badges.h),
//                                         ?window=24h|7d|30d; 404 unknown, 400 bad window
//   (the status page and badges are open when status_page_public, else gated like /v1 reads)
// Errors use the envelope with "error": 400 bad parameter (an id that is not a positive integer,
// a bad limit/cursor/before/from/to, from after to; the message names the parameter), 401 token
// missing, 403 wrong token or a remote write without API_TOKEN, 404 unknown id or route, 405
// wrong method on a known path (with Allow), 409 conflict, 413 body over 64 KiB, 500 storage
// failure or any exception (generic message; details go to the log only).
// Access: writes need API_TOKEN as a bearer token, or a loopback client when it is unset; the
// /v1 reads and /metrics need API_READ_TOKEN (or API_TOKEN) when it is set; /healthz and the
// push routes (their token is in the path) are open.
// Connections time out after 5 s without progress; idle keep-alive connections after 1 s. The
// limits httplib lacks (414/431/408 for long, large or slow request heads, a deadline per
// request, at most 512 connections, 503 past it) are api/guarded_server.h's. A JSON body with a
// key twice is 400.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "api/commands.h"
#include "api/health.h"
#include "config/config.h"
#include "storage/cluster.h"
#include "storage/store.h"

namespace prometheus {
class Collectable;
class Registry;
}  // namespace prometheus

namespace vigil {

class AlertStore;
class Alerter;
struct AlertingConfig;

// One registered endpoint: its method and its path template as api/openapi.json documents it
// ("/v1/services/{id}"). GET also answers HEAD.
struct RouteInfo {
  std::string method;
  std::string path;
  friend bool operator==(const RouteInfo&, const RouteInfo&) = default;
};

struct ApiOptions {
  std::string write_token;    // API_TOKEN; empty: writes only from loopback clients
  std::string read_token;     // API_READ_TOKEN; empty: reads open
  Settings service_defaults;  // default interval and timeout for created services
  // The runner of this process, or null (`vigil api`): then a pushed beat is queued in the
  // database for the runner process, and writes reach it through its ChangeFeed.
  ServiceCommands* commands = nullptr;
  // Alerting: the alerts tables to read (null: /v1/alerts answers 503), and the
  // Alerter of this process for test notifications (null under `vigil api`). Must outlive it.
  AlertStore* alerts = nullptr;
  Alerter* alerter = nullptr;
  // The services file's alerting section: created and changed services' "alerts" are checked
  // against its channels (400 for an unknown one), and GET /v1/maintenance lists its windows.
  // Null: names are not checked, no file windows. Must outlive the server.
  const AlertingConfig* alerting = nullptr;
  // Status page and badges: STATUS_PAGE_TITLE, and STATUS_PAGE_PUBLIC (false: they
  // need the read token like the /v1 reads, true: open to anyone who reaches the port).
  std::string status_page_title = "vigil status";
  bool status_page_public = false;
  // Series /metrics collects besides `registry` (the runner's per-service series); a family
  // that both have (vigil_service_uptime_ratio) is exposed once with every sample. Those that
  // are also TextCollectables (runner/text_exposition.h) are written straight as text.
  std::vector<std::shared_ptr<prometheus::Collectable>> collectables;
  // /healthz and the status page: a part whose last progress is older than this is silent
  // (HEALTH_SILENT_AFTER_SECONDS), judged at health_clock() (tests inject one).
  Millis health_silent_after = default_silent_after(kDefaultBeatPeriod);
  std::function<TimePoint()> health_clock = now_ms;
  // GET /v1/cluster: the members of the cluster this process belongs to (storage/cluster.h),
  // called on a pool thread per request; it throws StorageError as the store does. Empty: the
  // route answers 503.
  std::function<std::vector<MemberView>()> cluster_members;
};

class ApiServer {
 public:
  // `store`, `registry` and `options.commands` must outlive the server.
  ApiServer(Store& store, prometheus::Registry& registry, HealthCheck health,
            ApiOptions options = {});
  ~ApiServer();  // stops
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // Binds host:port (port 0 picks a free one) and serves on a background thread. Returns the
  // bound port, or throws std::runtime_error naming the address when it cannot bind (including
  // a port another process already listens on: SO_REUSEPORT is not used). Once only.
  int start(const std::string& host, int port);
  // Stops accepting, finishes requests in progress, joins (within about a second when idle
  // keep-alive clients are connected). Idempotent.
  void stop();

  // Every endpoint registered, in registration order (for the OpenAPI consistency test).
  std::vector<RouteInfo> routes() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vigil

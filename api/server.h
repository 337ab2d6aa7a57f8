// ApiServer: the HTTP API (cpp-httplib) on its own thread pool. It reads the Store and the
// Prometheus registry, writes services to the Store, and hands changes and pushed beats to the
// runner through ServiceCommands; it never mutates runner state itself.
//
// Routes (every JSON body is the envelope {"status","status_desc","data"[,"error"]}):
//   GET /v1/services                      active services with metric and open event, ordered
//                                         by id; filters ?team= &tag= &status=up|down
//                                         &muted=true|false &kind=http|heartbeat, pages with
//                                         ?limit=1..1000 &offset=; data.services.next is the
//                                         next offset when the page is full, else null
//   POST /v1/services                     create (write): 201 {"service"} (with push_token);
//                                         400 bad field (the services file's message), 409
//                                         name taken
//   GET /v1/services/{id}                 one service (404 when unknown); push_token shown to
//                                         writers and API_READ_TOKEN holders
//   PATCH /v1/services/{id}               partial update (write): fields replace, null resets;
//                                         "active": true|false; 409 for a file service
//   DELETE /v1/services/{id}[?purge=true] deactivate (write), or delete with its history
//   GET|HEAD|POST /v1/push/{token}[/fail] a heartbeat report: 200 "OK"; 404 unknown token,
//                                         nothing written; ?status=up|down &msg= &duration_ms=
//                                         (also as a form or JSON body)
//   GET /v1/services/{id}/events          ?limit=1..1000 (100) &before=<event id>, newest first;
//                                         data.events.next is the `before` of the next page
//                                         when the page is full, else null
//   GET /v1/services/{id}/ticks           ?from=&to= (unix seconds, inclusive, may have a
//                                         decimal fraction) &limit=1..1000 (100), newest first
//   GET /v1/services/{id}/metrics         issue 6 (api/series_routes.h): ?window= or ?from=&to=
//   GET /v1/services/{id}/series          ... and ?step=60|300|3600|86400
//   GET /v1/uptime                        every active service's uptime and p95 of a window
//   GET /v1/alerts                        alerts, newest first: ?active=true|false &service_id=
//                                         &since=<unix seconds, created at or after>
//                                         &limit=1..1000 (100)  (issue 5)
//   GET /v1/alerts/{id}                   one alert with its notifications (404 when unknown)
//   POST /v1/alerts/test?channel=NAME     a test notification (write): 202; 404 unknown
//                                         channel; 503 when this process runs no Alerter
//   GET /healthz                          200 {"data":{"runner":..,"writer":..,"storage":..}}
//                                         or 503 when a part is not alive
//   GET /metrics                          Prometheus text exposition of the registry, including
//                                         vigil_api_requests_total{route,code} and
//                                         vigil_api_request_duration_seconds{route}
// Errors use the envelope with "error": 400 bad parameter (an id that is not a positive integer,
// a bad limit/before/from/to, from after to; the message names the parameter), 401 token
// missing, 403 wrong token or a remote write without API_TOKEN, 404 unknown id or route, 405
// wrong method on a known path (with Allow), 409 conflict, 413 body over 64 KiB, 500 storage
// failure or any exception (generic message; details go to the log only).
// Access: writes need API_TOKEN as a bearer token, or a loopback client when it is unset; the
// /v1 reads and /metrics need API_READ_TOKEN (or API_TOKEN) when it is set; /healthz and the
// push routes (their token is in the path) are open.
// Connections time out after 5 s without progress; idle keep-alive connections after 1 s.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "api/commands.h"
#include "config/config.h"
#include "storage/store.h"

namespace prometheus {
class Registry;
}

namespace vigil {

class AlertStore;
class Alerter;

// Liveness of the parts /healthz reports; a part that is not running in this process (e.g. the
// runner under `vigil api`) reports not_running and does not fail the check.
enum class PartHealth { alive, stalled, not_running };
struct HealthReport {
  PartHealth runner = PartHealth::not_running;
  PartHealth writer = PartHealth::not_running;
};
using HealthCheck = std::function<HealthReport()>;

struct ApiOptions {
  std::string write_token;    // API_TOKEN; empty: writes only from loopback clients
  std::string read_token;     // API_READ_TOKEN; empty: reads open
  Settings service_defaults;  // default interval and timeout for created services
  // The runner of this process, or null (`vigil api`): then a pushed beat is queued in the
  // database for the runner process, and writes reach it through its ChangeFeed.
  ServiceCommands* commands = nullptr;
  // Alerting (issue 5): the alerts tables to read (null: /v1/alerts answers 503), and the
  // Alerter of this process for test notifications (null under `vigil api`). Must outlive it.
  AlertStore* alerts = nullptr;
  Alerter* alerter = nullptr;
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

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vigil

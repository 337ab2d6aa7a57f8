// ApiServer: the HTTP API (cpp-httplib) on its own thread pool. It only reads the Store and the
// Prometheus registry; it never mutates runner state.
//
// Routes (every JSON body is the envelope {"status","status_desc","data"[,"error"]}):
//   GET /v1/services                      all active services with metric and open event
//   GET /v1/services/{id}                 one service (404 when unknown)
//   GET /v1/services/{id}/events          ?limit=1..1000 (100) &before=<event id>, newest first;
//                                         data.events.next is the `before` of the next page
//                                         when the page is full, else null
//   GET /v1/services/{id}/ticks           ?from=&to= (unix seconds, inclusive, may have a
//                                         decimal fraction) &limit=1..1000 (100), newest first
//   GET /healthz                          200 {"data":{"runner":..,"writer":..,"storage":..}}
//                                         or 503 when a part is not alive
//   GET /metrics                          Prometheus text exposition of the registry, including
//                                         vigil_api_requests_total{route,code} and
//                                         vigil_api_request_duration_seconds{route}
// Errors use the envelope with "error": 400 bad parameter (an id that is not a positive integer,
// a bad limit/before/from/to, from after to; the message names the parameter), 404 unknown id
// or route, 405 wrong method on a known path (with Allow), 413 body over 64 KiB, 500 storage
// failure or any exception (generic message; details go to the log only).
// Connections time out after 5 s without progress; idle keep-alive connections after 1 s.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "storage/store.h"

namespace prometheus {
class Registry;
}

namespace vigil {

// Liveness of the parts /healthz reports; a part that is not running in this process (e.g. the
// runner under `vigil api`) reports not_running and does not fail the check.
enum class PartHealth { alive, stalled, not_running };
struct HealthReport {
  PartHealth runner = PartHealth::not_running;
  PartHealth writer = PartHealth::not_running;
};
using HealthCheck = std::function<HealthReport()>;

class ApiServer {
 public:
  // `store` and `registry` must outlive the server.
  ApiServer(Store& store, prometheus::Registry& registry, HealthCheck health);
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

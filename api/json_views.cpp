#include "api/json_views.h"

#include <utility>

namespace vigil {

using nlohmann::json;

namespace {

// Whole seconds stay integers ("15", not "15.0"), so the common case reads like the seed shape.
json seconds_value(Millis duration) {
  const auto ms = duration.count();
  if (ms % 1000 == 0) return ms / 1000;
  return static_cast<double>(ms) / 1000.0;
}

const char* status_word(const ServiceView& view) {
  if (!view.open_event) return "unknown";
  return view.open_event->kind == EventKind::uptime ? "up" : "down";
}

}  // namespace

json event_json(const Event& event) {
  json out = json::object();
  out["id"] = event.id;
  out["event"] = to_string(event.kind);
  out["date_started"] = to_unix_seconds(event.date_started);
  out["date_ended"] = event.date_ended ? json(to_unix_seconds(*event.date_ended)) : json(nullptr);
  out["created_at"] = to_unix_seconds(event.created_at);
  out["updated_at"] = to_unix_seconds(event.updated_at);
  return out;
}

json metric_json(const Metric& metric) {
  json out = json::object();
  out["average_response_time_ms"] = metric.average_response_time_ms;
  out["down_count"] = metric.down_count;
  out["tick_count"] = metric.tick_count;
  out["up_count"] = metric.up_count;
  out["uptime_percent"] = metric.uptime_percent;
  return out;
}

json service_json(const ServiceView& view) {
  const Service& service = view.service;
  json out = json::object();
  out["id"] = service.id;
  out["name"] = service.spec.name;
  out["url"] = service.spec.url;
  out["created_at"] = to_unix_seconds(service.created_at);
  out["updated_at"] = to_unix_seconds(service.updated_at);
  // The open event is both the current status and the latest event: a probed service always
  // has exactly one open event and it is the newest.
  json open = view.open_event ? event_json(*view.open_event) : json(nullptr);
  out["current_status"] = open;
  out["latest_event"] = json::object({{"data", std::move(open)}});
  out["metric"] = json::object({{"data", metric_json(view.metric)}});
  // Additions beyond the seed shape, for users who want the state without reading events.
  out["status"] = status_word(view);
  out["active"] = service.active;
  out["interval_seconds"] = seconds_value(service.spec.interval);
  return out;
}

json tick_json(const Tick& tick) {
  json out = json::object();
  out["ts"] = to_unix_seconds(tick.ts);
  out["ts_ms"] = to_unix_ms(tick.ts);
  out["up"] = tick.up;
  out["status_code"] = tick.status_code ? json(*tick.status_code) : json(nullptr);
  out["response_ms"] = tick.response_ms;
  out["error"] = tick.error.empty() ? json(nullptr) : json(tick.error);
  out["region"] = tick.region;
  return out;
}

json envelope(int status, json data) {
  json out = json::object();
  out["status"] = status;
  out["status_desc"] = status_desc(status);
  out["data"] = std::move(data);
  return out;
}

json error_envelope(int status, const std::string& message) {
  json out = envelope(status, json::object());
  out["error"] = message;
  return out;
}

const char* status_desc(int status) {
  switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
  }
}

}  // namespace vigil

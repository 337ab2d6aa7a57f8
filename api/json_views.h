// The one place that turns vigil's values into the JSON the API serves. Every route uses these,
// so a service, an event or a tick has the same shape everywhere. Timestamps are unix seconds.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "core/model.h"
#include "core/url_redaction.h"
#include "storage/store.h"

namespace vigil {

// Each append_*_json appends one value's JSON to `out` as text, without building a nlohmann
// tree: keys sorted, compact, invalid UTF-8 replaced by U+FFFD.

// {"id","event","date_started","date_ended"(null while open),"created_at","updated_at"}
void append_event_json(std::string& out, const Event& event);

// {"average_response_time_ms","down_count","tick_count","up_count","uptime_percent"}
void append_metric_json(std::string& out, const Metric& metric);

// What a service's JSON may show, and when it is rendered.
struct ServiceJsonOptions {
  bool with_push_token = false;                // heartbeats: "push_token"
  UrlAudience audience = UrlAudience::reader;  // "url" through redact_url (core/url_redaction.h)
  std::optional<TimePoint> now{};              // for "muted" and "stale"; empty: the system clock
};

// {"id","name","url","created_at","updated_at","current_status": event|null,
//  "latest_event": {"data": event|null}, "metric": {"data": metric}}
// plus "status" ("up", "down", "unknown" before the first tick, "stale" when is_stale at `now`,
// storage/store.h), "last_tick_at"|null (unix seconds), "active" and
// "interval_seconds", and "kind", "source", "team"|null, "priority" ("p1".."p5"),
// "runbook"|null, "tags", "muted" (false once a snooze ran out), "muted_until"|null (while a
// snooze runs); heartbeats have url null, "grace_seconds", "threshold" and, only when
// `with_push_token`, "push_token". The url is redacted for `audience`.
void append_service_json(std::string& out, const ServiceView& view,
                         const ServiceJsonOptions& options = {});

// {"ts" (unix seconds),"ts_ms","up","status_code"|null,"response_ms","error"|null,"region",
//  "message"|null (a heartbeat report's msg),
//  "phases_ms": {"resolve","connect","tls","processing","transfer"}|null (the probe's
//  phases in ms, adding up to response_ms)}
void append_tick_json(std::string& out, const Tick& tick);

// {"status": code, "status_desc": "OK", "data": data}
nlohmann::json envelope(int status, nlohmann::json data);

// The same envelope as text around `data_json`, JSON text the caller already rendered.
std::string envelope_text(int status, std::string_view data_json);

// The same envelope written in place around data the caller appends between the two calls,
// for large bodies that would otherwise be copied into envelope_text.
void append_envelope_begin(std::string& out);
void append_envelope_end(std::string& out, int status);

// {"status": code, "status_desc": reason, "data": {}, "error": message}
nlohmann::json error_envelope(int status, const std::string& message);

// The standard reason phrase for an HTTP status ("OK", "Not Found", ...).
const char* status_desc(int status);

}  // namespace vigil

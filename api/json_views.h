// The one place that turns vigil's values into the JSON the API serves. Every route uses these,
// so a service, an event or a tick has the same shape everywhere. Timestamps are unix seconds.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "storage/model.h"
#include "storage/store.h"

namespace vigil {

// {"id","event","date_started","date_ended"(null while open),"created_at","updated_at"}
nlohmann::json event_json(const Event& event);

// {"average_response_time_ms","down_count","tick_count","up_count","uptime_percent"}
nlohmann::json metric_json(const Metric& metric);

// {"id","name","url","created_at","updated_at","current_status": event|null,
//  "latest_event": {"data": event|null}, "metric": {"data": metric}}
nlohmann::json service_json(const ServiceView& view);

// {"ts" (unix seconds),"ts_ms","up","status_code"|null,"response_ms","error"|null,"region"}
nlohmann::json tick_json(const Tick& tick);

// {"status": code, "status_desc": "OK", "data": data}
nlohmann::json envelope(int status, nlohmann::json data);

// {"status": code, "status_desc": reason, "data": {}, "error": message}
nlohmann::json error_envelope(int status, const std::string& message);

// The standard reason phrase for an HTTP status ("OK", "Not Found", ...).
const char* status_desc(int status);

}  // namespace vigil

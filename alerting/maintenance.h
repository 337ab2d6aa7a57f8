// Maintenance windows: periods during which a service's alerts are recorded but not sent, like a
// mute. One-off (start, end) or recurring (every day or every week at a local time, for a
// duration), for named services, for tags, or for every service. They come from the services
// file's alerting section, or from the API (kept by the AlertStore as their definition, with an
// id).
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "alerting/timezone.h"
#include "core/model.h"
#include "storage/alert_store.h"

namespace vigil {

struct MaintenanceWindow {
  std::vector<std::string> services;  // by name
  std::vector<std::string> tags;      // any of them; with services empty too: every service
  // One-off: [start, end).
  std::optional<TimePoint> start;
  std::optional<TimePoint> end;
  // Recurring: from `minute_of_day` local time in `zone` on `weekday` (0 Sunday .. 6 Saturday;
  // empty: every day) for `duration` of real time (so a window across a DST change is still
  // `duration` long). A start time skipped by a DST change begins the window as many minutes
  // after the change; one that occurs twice begins it at the first.
  std::optional<int> weekday;
  int minute_of_day = 0;
  Millis duration{0};
  std::shared_ptr<const TimeZone> zone = TimeZone::fixed(0, "UTC");
  std::optional<std::int64_t> id;  // API-created windows only
  bool recurring() const { return !start; }

  bool applies_to(const ServiceSpec& spec) const;
  bool active_at(TimePoint now) const;
  // The start of the next occurrence after `now` (empty for a one-off window that has begun).
  std::optional<TimePoint> next_start(TimePoint now) const;
};

// A service inside any window that applies to it at `now`.
bool in_maintenance(const std::vector<MaintenanceWindow>& windows, const ServiceSpec& spec,
                    TimePoint now);

// The "maintenance" list of the alerting section: each entry
//   {"start": <unix s>, "end": <unix s>}  or
//   {"every": "sun 02:00" | "daily 02:00", "duration_minutes": N,
//    "timezone": "UTC" | "+02:00" | an IANA name like "Europe/Berlin"},
// with optional "services": [names] and "tags": [tags]. Throws ConfigError naming the field.
std::vector<MaintenanceWindow> parse_maintenance(const nlohmann::json& list,
                                                 const std::string& where);
// One entry of that list (`where` names it, e.g. "maintenance"; a POST /v1/maintenance body).
MaintenanceWindow parse_maintenance_window(const nlohmann::json& entry, const std::string& where);
// The entry parse_maintenance_window reads back to an equal window: what is stored.
nlohmann::json maintenance_definition_json(const MaintenanceWindow& window);
// What the API shows: the definition plus "id" (null for a services-file window), "source"
// ("file" or "api"), "active" at `now` and "next_start" (unix seconds or null).
nlohmann::json maintenance_json(const MaintenanceWindow& window, TimePoint now);

// The windows created through the API, as `store` keeps them, each with its id, oldest first.
// One that no longer parses (its time zone gone from the system) is logged, once per window in
// this process, and skipped: the others still count. Throws StorageError.
std::vector<MaintenanceWindow> load_maintenance_windows(AlertStore& store);
// Stores `window` (its id is ignored) in `store` and returns it with its new id. Throws
// StorageError.
MaintenanceWindow store_maintenance_window(AlertStore& store, const MaintenanceWindow& window,
                                           TimePoint at);

}  // namespace vigil

// Maintenance windows: periods during which a service's alerts are recorded but not sent, like a
// mute. One-off (start, end) or recurring (every day or every week at a local time, for a
// duration), for named services, for tags, or for every service.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "storage/model.h"

namespace vigil {

struct MaintenanceWindow {
  std::vector<std::string> services;  // by name
  std::vector<std::string> tags;      // any of them; with services empty too: every service
  // One-off: [start, end).
  std::optional<TimePoint> start;
  std::optional<TimePoint> end;
  // Recurring: from `minute_of_day` local time on `weekday` (0 Sunday .. 6 Saturday; empty:
  // every day) for `duration`. Local time is UTC + utc_offset.
  std::optional<int> weekday;
  int minute_of_day = 0;
  Millis duration{0};
  Millis utc_offset{0};
  bool recurring() const { return !start; }

  bool applies_to(const ServiceSpec& spec) const;
  bool active_at(TimePoint now) const;
};

// A service inside any window that applies to it at `now`.
bool in_maintenance(const std::vector<MaintenanceWindow>& windows, const ServiceSpec& spec,
                    TimePoint now);

// The "maintenance" list of the alerting section: each entry
//   {"start": <unix s>, "end": <unix s>}  or
//   {"every": "sun 02:00" | "daily 02:00", "duration_minutes": N, "timezone": "UTC" | "+02:00"},
// with optional "services": [names] and "tags": [tags]. Throws ConfigError naming the field.
std::vector<MaintenanceWindow> parse_maintenance(const nlohmann::json& list,
                                                 const std::string& where);

}  // namespace vigil

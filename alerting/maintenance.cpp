#include "alerting/maintenance.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>

#include "core/config_error.h"
#include "core/logging.h"

namespace vigil {
namespace {

using json = nlohmann::json;

std::int64_t positive_mod(std::int64_t a, std::int64_t b) { return ((a % b) + b) % b; }

// Unix seconds as the API shows them: a whole number unless there are milliseconds.
json seconds_json(std::int64_t ms) {
  if (ms % 1000 == 0) return ms / 1000;
  return static_cast<double>(ms) / 1000.0;
}

std::vector<std::string> names(const json& entry, const char* key, const std::string& at) {
  std::vector<std::string> out;
  if (!entry.contains(key)) return out;
  const json& list = entry[key];
  if (!list.is_array()) throw ConfigError(at + "." + key + ": expected a list of strings");
  for (const auto& item : list) {
    if (!item.is_string()) throw ConfigError(at + "." + key + ": expected a list of strings");
    out.push_back(item.get<std::string>());
  }
  return out;
}

TimePoint unix_seconds(const json& entry, const char* key, const std::string& at) {
  const json& value = entry.at(key);
  if (!value.is_number() || !std::isfinite(value.get<double>()) || value.get<double>() < 0 ||
      value.get<double>() > 1e11)
    throw ConfigError(at + "." + key + ": expected a unix time in seconds");
  return from_unix_ms(static_cast<std::int64_t>(value.get<double>() * 1000));
}

constexpr std::array<const char*, 7> kDays = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

// The window's occurrence starting on local day `day` (days since 1970-01-01, local calendar),
// or empty when it does not recur on that day.
std::optional<std::int64_t> occurrence_ms(const MaintenanceWindow& window, std::int64_t day) {
  if (window.weekday && positive_mod(day + 4, 7) != *window.weekday)
    return std::nullopt;  // 1970-01-01 was a Thursday
  return window.zone->to_utc(day * 86'400 + window.minute_of_day * 60LL) * 1000;
}

// The local day (days since 1970-01-01 on the zone's calendar) of `now`.
std::int64_t local_day(const MaintenanceWindow& window, TimePoint now) {
  const std::int64_t seconds = to_unix_seconds(now);
  const std::int64_t local = seconds + window.zone->offset_at(seconds);
  return local >= 0 ? local / 86'400 : (local - 86'399) / 86'400;
}

}  // namespace

bool MaintenanceWindow::applies_to(const ServiceSpec& spec) const {
  if (services.empty() && tags.empty()) return true;
  if (std::find(services.begin(), services.end(), spec.name) != services.end()) return true;
  for (const auto& tag : spec.tags)
    if (std::find(tags.begin(), tags.end(), tag) != tags.end()) return true;
  return false;
}

bool MaintenanceWindow::active_at(TimePoint now) const {
  if (!recurring()) return now >= *start && now < *end;
  // An occurrence lasts at most a week: one that started up to 8 local days ago may still run.
  const std::int64_t today = local_day(*this, now);
  const std::int64_t at = to_unix_ms(now);
  for (std::int64_t day = today - 8; day <= today + 1; ++day)
    if (const auto begins = occurrence_ms(*this, day))
      if (at >= *begins && at < *begins + duration.count()) return true;
  return false;
}

std::optional<TimePoint> MaintenanceWindow::next_start(TimePoint now) const {
  if (!recurring()) return now < *start ? start : std::nullopt;
  const std::int64_t today = local_day(*this, now);
  for (std::int64_t day = today - 1; day <= today + 8; ++day)
    if (const auto begins = occurrence_ms(*this, day); begins && *begins > to_unix_ms(now))
      return from_unix_ms(*begins);
  return std::nullopt;
}

bool in_maintenance(const std::vector<MaintenanceWindow>& windows, const ServiceSpec& spec,
                    TimePoint now) {
  for (const auto& window : windows)
    if (window.applies_to(spec) && window.active_at(now)) return true;
  return false;
}

MaintenanceWindow parse_maintenance_window(const json& entry, const std::string& at) {
  static const std::set<std::string> known = {
      "services", "tags", "start", "end", "every", "duration_minutes", "timezone"};
  if (!entry.is_object()) throw ConfigError(at + ": expected an object");
  for (const auto& [key, value] : entry.items())
    if (!known.contains(key))
      throw ConfigError(at + ": unknown key " + json(key).dump() +
                        " (known: services, tags, start, end, every, duration_minutes, "
                        "timezone)");
  MaintenanceWindow window;
  window.services = names(entry, "services", at);
  window.tags = names(entry, "tags", at);
  const bool one_off = entry.contains("start") || entry.contains("end");
  if (one_off == entry.contains("every"))
    throw ConfigError(at + ": give either \"start\" and \"end\", or \"every\"");
  if (one_off) {
    if (!entry.contains("start") || !entry.contains("end"))
      throw ConfigError(at + ": a one-off window needs both \"start\" and \"end\"");
    if (entry.contains("duration_minutes") || entry.contains("timezone"))
      throw ConfigError(at + ": duration_minutes and timezone are for a recurring window");
    window.start = unix_seconds(entry, "start", at);
    window.end = unix_seconds(entry, "end", at);
    if (*window.end <= *window.start) throw ConfigError(at + ".end: must be after start");
    return window;
  }
  const json& every = entry["every"];
  const std::string text = every.is_string() ? every.get<std::string>() : "";
  const auto space = text.find(' ');
  const std::string day = space == std::string::npos ? "" : text.substr(0, space);
  const std::string clock = space == std::string::npos ? "" : text.substr(space + 1);
  const auto digit = [&](std::size_t i) {
    return std::isdigit(static_cast<unsigned char>(clock[i]));
  };
  bool ok = clock.size() == 5 && clock[2] == ':' && digit(0) && digit(1) && digit(3) && digit(4);
  if (ok) {
    const int hour = (clock[0] - '0') * 10 + (clock[1] - '0');
    const int minute = (clock[3] - '0') * 10 + (clock[4] - '0');
    ok = hour < 24 && minute < 60;
    window.minute_of_day = hour * 60 + minute;
  }
  if (ok && day != "daily") {
    const auto found = std::find(kDays.begin(), kDays.end(), day);
    ok = found != kDays.end();
    if (ok) window.weekday = static_cast<int>(found - kDays.begin());
  }
  if (!ok)
    throw ConfigError(at + ".every: expected \"<sun..sat|daily> HH:MM\", got " + every.dump());
  if (!entry.contains("duration_minutes") || !entry["duration_minutes"].is_number() ||
      !std::isfinite(entry["duration_minutes"].get<double>()) ||
      entry["duration_minutes"].get<double>() <= 0 ||
      entry["duration_minutes"].get<double>() > (window.weekday ? 7 * 1440 : 1440))
    throw ConfigError(at + ".duration_minutes: required, minutes above 0 and at most the period");
  window.duration =
      Millis(static_cast<std::int64_t>(entry["duration_minutes"].get<double>() * 60'000));
  if (entry.contains("timezone")) {
    const json& zone = entry["timezone"];
    if (!zone.is_string())
      throw ConfigError(at +
                        ".timezone: expected \"UTC\", an offset like \"+02:00\" or a name "
                        "like \"Europe/Berlin\", got " +
                        zone.dump());
    try {
      window.zone = TimeZone::load(zone.get<std::string>());
    } catch (const TimeZoneError& e) {
      throw ConfigError(at + ".timezone: " + e.what());
    }
  }
  return window;
}

std::vector<MaintenanceWindow> parse_maintenance(const json& list, const std::string& where) {
  if (!list.is_array()) throw ConfigError(where + ": expected a list of windows");
  std::vector<MaintenanceWindow> out;
  for (std::size_t i = 0; i < list.size(); ++i)
    out.push_back(parse_maintenance_window(list[i], where + "[" + std::to_string(i) + "]"));
  return out;
}

json maintenance_definition_json(const MaintenanceWindow& window) {
  json out = json::object();
  if (!window.services.empty()) out["services"] = window.services;
  if (!window.tags.empty()) out["tags"] = window.tags;
  if (!window.recurring()) {
    out["start"] = seconds_json(to_unix_ms(*window.start));
    out["end"] = seconds_json(to_unix_ms(*window.end));
    return out;
  }
  char clock[16];
  std::snprintf(clock, sizeof clock, "%02d:%02d", window.minute_of_day / 60,
                window.minute_of_day % 60);
  out["every"] = std::string(window.weekday ? kDays[*window.weekday] : "daily") + " " + clock;
  if (window.duration.count() % 60'000 == 0)
    out["duration_minutes"] = window.duration.count() / 60'000;
  else
    out["duration_minutes"] = static_cast<double>(window.duration.count()) / 60'000.0;
  out["timezone"] = window.zone->name();
  return out;
}

json maintenance_json(const MaintenanceWindow& window, TimePoint now) {
  json out = maintenance_definition_json(window);
  out["id"] = window.id ? json(*window.id) : json(nullptr);
  out["source"] = window.id ? "api" : "file";
  out["services"] = window.services;
  out["tags"] = window.tags;
  out["active"] = window.active_at(now);
  const auto next = window.next_start(now);
  out["next_start"] = next ? seconds_json(to_unix_ms(*next)) : json(nullptr);
  return out;
}

std::vector<MaintenanceWindow> load_maintenance_windows(AlertStore& store) {
  // Read every second by the Alerter: a window that does not parse is said once.
  static std::mutex logged_mutex;
  static std::set<std::int64_t> logged;
  std::vector<MaintenanceWindow> out;
  for (const auto& stored : store.maintenance_windows()) {
    const std::string where = "maintenance window " + std::to_string(stored.id);
    try {
      auto window = parse_maintenance_window(json::parse(stored.definition), where);
      window.id = stored.id;
      out.push_back(std::move(window));
    } catch (const std::exception& e) {
      std::lock_guard lock(logged_mutex);
      if (logged.insert(stored.id).second) log_error("skipping stored " + where + ": " + e.what());
    }
  }
  return out;
}

MaintenanceWindow store_maintenance_window(AlertStore& store, const MaintenanceWindow& window,
                                           TimePoint at) {
  MaintenanceWindow stored = window;
  stored.id = store.add_maintenance_window(maintenance_definition_json(window).dump(), at);
  return stored;
}

}  // namespace vigil

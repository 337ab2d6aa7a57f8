#include "alerting/maintenance.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>

#include "config/config.h"

namespace vigil {
namespace {

using json = nlohmann::json;

constexpr std::int64_t kDayMs = 86'400'000;
constexpr std::int64_t kWeekMs = 7 * kDayMs;

std::int64_t positive_mod(std::int64_t a, std::int64_t b) { return ((a % b) + b) % b; }

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

// "UTC", "Z" or "+HH:MM" / "-HH:MM".
Millis parse_offset(const std::string& text, const std::string& at) {
  if (text == "UTC" || text == "Z" || text == "Etc/UTC") return Millis(0);
  if (text.size() == 6 && (text[0] == '+' || text[0] == '-') && text[3] == ':' &&
      std::isdigit(static_cast<unsigned char>(text[1])) &&
      std::isdigit(static_cast<unsigned char>(text[2])) &&
      std::isdigit(static_cast<unsigned char>(text[4])) &&
      std::isdigit(static_cast<unsigned char>(text[5]))) {
    const int hours = (text[1] - '0') * 10 + (text[2] - '0');
    const int minutes = (text[4] - '0') * 10 + (text[5] - '0');
    if (hours <= 14 && minutes < 60) {
      const std::int64_t ms = (hours * 60 + minutes) * 60'000LL;
      return Millis(text[0] == '-' ? -ms : ms);
    }
  }
  throw ConfigError(at + ".timezone: expected \"UTC\" or an offset like \"+02:00\", got " +
                    json(text).dump());
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
  const std::int64_t local = to_unix_ms(now) + utc_offset.count();
  std::int64_t position;  // within the period, from its local midnight (Sunday for a week)
  std::int64_t begins = minute_of_day * 60'000LL;
  std::int64_t period = kDayMs;
  if (weekday) {
    // 1970-01-01 was a Thursday (4).
    const std::int64_t day = local >= 0 ? local / kDayMs : (local - kDayMs + 1) / kDayMs;
    position = positive_mod(day + 4, 7) * kDayMs + positive_mod(local, kDayMs);
    begins += *weekday * kDayMs;
    period = kWeekMs;
  } else {
    position = positive_mod(local, kDayMs);
  }
  return positive_mod(position - begins, period) < duration.count();
}

bool in_maintenance(const std::vector<MaintenanceWindow>& windows, const ServiceSpec& spec,
                    TimePoint now) {
  for (const auto& window : windows)
    if (window.applies_to(spec) && window.active_at(now)) return true;
  return false;
}

std::vector<MaintenanceWindow> parse_maintenance(const json& list, const std::string& where) {
  if (!list.is_array()) throw ConfigError(where + ": expected a list of windows");
  std::vector<MaintenanceWindow> out;
  static const std::set<std::string> known = {
      "services", "tags", "start", "end", "every", "duration_minutes", "timezone"};
  for (std::size_t i = 0; i < list.size(); ++i) {
    const std::string at = where + "[" + std::to_string(i) + "]";
    const json& entry = list[i];
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
    } else {
      const json& every = entry["every"];
      const std::string text = every.is_string() ? every.get<std::string>() : "";
      static const std::array<const char*, 7> days = {"sun", "mon", "tue", "wed",
                                                      "thu", "fri", "sat"};
      const auto space = text.find(' ');
      const std::string day = space == std::string::npos ? "" : text.substr(0, space);
      const std::string clock = space == std::string::npos ? "" : text.substr(space + 1);
      bool ok = clock.size() == 5 && clock[2] == ':' && std::isdigit((unsigned char)clock[0]) &&
                std::isdigit((unsigned char)clock[1]) && std::isdigit((unsigned char)clock[3]) &&
                std::isdigit((unsigned char)clock[4]);
      if (ok) {
        const int hour = (clock[0] - '0') * 10 + (clock[1] - '0');
        const int minute = (clock[3] - '0') * 10 + (clock[4] - '0');
        ok = hour < 24 && minute < 60;
        window.minute_of_day = hour * 60 + minute;
      }
      if (ok && day != "daily") {
        const auto found = std::find(days.begin(), days.end(), day);
        ok = found != days.end();
        if (ok) window.weekday = static_cast<int>(found - days.begin());
      }
      if (!ok)
        throw ConfigError(at + ".every: expected \"<sun..sat|daily> HH:MM\", got " + every.dump());
      if (!entry.contains("duration_minutes") || !entry["duration_minutes"].is_number() ||
          entry["duration_minutes"].get<double>() <= 0 ||
          entry["duration_minutes"].get<double>() > (window.weekday ? 7 * 1440 : 1440))
        throw ConfigError(at +
                          ".duration_minutes: required, minutes above 0 and at most the period");
      window.duration =
          Millis(static_cast<std::int64_t>(entry["duration_minutes"].get<double>() * 60'000));
      if (entry.contains("timezone")) {
        if (!entry["timezone"].is_string())
          throw ConfigError(at + ".timezone: expected \"UTC\" or an offset like \"+02:00\"");
        window.utc_offset = parse_offset(entry["timezone"].get<std::string>(), at);
      }
    }
    out.push_back(std::move(window));
  }
  return out;
}

}  // namespace vigil

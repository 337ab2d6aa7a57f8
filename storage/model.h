// The values vigil keeps: what a service is, what one probe produced (a tick), the rolling
// metric and the uptime/downtime events. Plain data shared by config, runner, storage and api.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace vigil {

// Wall-clock instants at millisecond precision; the API renders them as unix seconds.
using TimePoint = std::chrono::time_point<std::chrono::system_clock, std::chrono::milliseconds>;
using Millis = std::chrono::milliseconds;

inline TimePoint now_ms() {
  return std::chrono::time_point_cast<Millis>(std::chrono::system_clock::now());
}
inline std::int64_t to_unix_ms(TimePoint t) { return t.time_since_epoch().count(); }
inline std::int64_t to_unix_seconds(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}
inline TimePoint from_unix_ms(std::int64_t ms) { return TimePoint(Millis(ms)); }

using ServiceId = std::int64_t;

// An inclusive range of HTTP status codes that count as up ("200-299" or a single 204).
struct StatusRange {
  int lo = 200;
  int hi = 399;
  bool contains(int code) const { return code >= lo && code <= hi; }
  friend bool operator==(const StatusRange&, const StatusRange&) = default;
};

// What the services file (or later the API) declares about one service.
struct ServiceSpec {
  std::string name;
  std::string url;
  Millis interval{15'000};
  Millis timeout{15'000};
  std::string method = "GET";
  std::vector<std::pair<std::string, std::string>> headers;  // sent in this order
  std::vector<StatusRange> expected_status{StatusRange{200, 399}};

  bool accepts_status(int code) const {
    for (const auto& range : expected_status)
      if (range.contains(code)) return true;
    return false;
  }
  friend bool operator==(const ServiceSpec&, const ServiceSpec&) = default;
};

// A service as stored: its spec plus identity and bookkeeping.
struct Service {
  ServiceId id = 0;
  ServiceSpec spec;
  bool active = true;
  TimePoint created_at;
  TimePoint updated_at;
};

enum class EventKind { uptime, downtime };
inline const char* to_string(EventKind kind) {
  return kind == EventKind::uptime ? "uptime" : "downtime";
}

// A period during which a service was up (uptime) or down (downtime). Open while date_ended
// is empty; a service has exactly one open event once it has been probed.
struct Event {
  std::int64_t id = 0;
  ServiceId service_id = 0;
  EventKind kind = EventKind::uptime;
  TimePoint date_started;
  std::optional<TimePoint> date_ended;
  TimePoint created_at;
  TimePoint updated_at;
};

// Rolling per-service counters, updated by every tick.
struct Metric {
  std::int64_t tick_count = 0;
  std::int64_t up_count = 0;
  std::int64_t down_count = 0;
  double average_response_time_ms = 0;  // running mean over all ticks
  double uptime_percent = 0;            // 100 * up_count / tick_count

  // Folds one more tick into the counters.
  void add(bool up, double response_ms) {
    ++tick_count;
    (up ? up_count : down_count) += 1;
    average_response_time_ms += (response_ms - average_response_time_ms) / double(tick_count);
    uptime_percent = 100.0 * double(up_count) / double(tick_count);
  }
  friend bool operator==(const Metric&, const Metric&) = default;
};

// The raw result of one probe of one service.
struct Tick {
  ServiceId service_id = 0;
  TimePoint ts;  // when the probe started
  bool up = false;
  std::optional<int> status_code;  // absent when no HTTP response arrived
  double response_ms = 0;
  std::string error;  // empty when up; otherwise why it is down
  std::string region;
};

// What the runner hands the writer for one tick: the tick itself, the service's metric after
// it, and, when the status changed (or it is the first tick), the kind of event that starts at
// tick.ts (the open event, if any, ends at that instant).
struct TickRecord {
  Tick tick;
  Metric metric_after;
  std::optional<EventKind> opens_event;
};

// The live state the runner needs to continue where a previous run stopped.
struct ServiceRuntime {
  Metric metric;
  std::optional<EventKind> open_event_kind;
  std::optional<TimePoint> open_event_started;
  std::optional<TimePoint> last_tick_at;
};

}  // namespace vigil

// The values vigil keeps: what a service is, what one probe produced (a tick), the rolling
// metric and the uptime/downtime events. Plain data shared by config, runner, storage and api.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/commit.h"

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
// The start of the period of length `step` (> 0) that holds `t`, periods counted from 0: rounds
// down, also for a negative `t`.
inline std::int64_t floor_to(std::int64_t t, std::int64_t step) {
  const std::int64_t r = t % step;
  return r < 0 ? t - r - step : t - r;
}

// Minimum interval a service may declare.
inline constexpr Millis kMinInterval{100};
// The longest interval, timeout, grace or retry interval: a year (past it, durations in ms
// computed from them could overflow).
inline constexpr long long kMaxDurationSeconds = 31'536'000;

using ServiceId = std::int64_t;

// An inclusive range of HTTP status codes that count as up ("200-299" or a single 204).
struct StatusRange {
  int lo = 200;
  int hi = 399;
  bool contains(int code) const { return code >= lo && code <= hi; }
  friend bool operator==(const StatusRange&, const StatusRange&) = default;
};

// ---- probe depth: conditions, HTTP/TLS options, TCP conversation, thresholds ----

struct CompiledConditions;  // core/conditions.h: the parsed, ready-to-evaluate form

// The conditions a response must meet besides its status (which stays in expected_status).
// `source` is the canonical JSON text of the services file's "conditions" object (without
// "status"), empty when there are none: it is what is compared and stored. `compiled` is built
// from it once, when the spec is parsed or read back, and shared by every copy of the spec.
struct Conditions {
  std::string source;
  std::shared_ptr<const CompiledConditions> compiled;
  bool empty() const { return source.empty(); }
  friend bool operator==(const Conditions& a, const Conditions& b) { return a.source == b.source; }
};

enum class IpVersion { any, v4, v6 };

// Every probe-depth field of a service, defaults as in the README. Persisted as one JSON column
// (services.probe_options) holding only the fields that differ from these defaults.
struct ProbeOptions {
  Conditions conditions;
  std::string body;  // request body (POST, PUT, PATCH, DELETE)
  bool follow_redirects = true;
  int max_redirects = 10;
  bool insecure_skip_verify = false;
  std::string ca_file;      // PEM bundle trusted instead of the system's
  std::string client_cert;  // PEM
  std::string client_key;   // PEM
  std::string proxy;        // empty: no proxy (the http_proxy environment is ignored)
  IpVersion ip_version = IpVersion::any;
  std::string user_agent;     // empty: "vigil/<version>"
  std::string source_ip;      // local address the probe leaves from; empty: PROBER_SOURCE_IP's
  std::string tcp_send;       // tcp:// only: written after connecting
  std::string tcp_expect;     // tcp:// only: must be read back within the timeout
  int failure_threshold = 1;  // consecutive down ticks before the service is down
  int success_threshold = 1;  // consecutive up ticks before it is up again
  std::optional<Millis> retry_interval;  // while failing but not yet down
  friend bool operator==(const ProbeOptions&, const ProbeOptions&) = default;
};

// Non-overlapping phases of one probe, in ms, that add up to its total (response_ms): name
// resolution, TCP connect, TLS handshake (0 without TLS), request sent to first response byte,
// first byte to the end. A probe that stopped early charges the time to the phase it was in.
struct PhaseTimings {
  double resolve_ms = 0;
  double connect_ms = 0;
  double tls_ms = 0;
  double processing_ms = 0;
  double transfer_ms = 0;
  friend bool operator==(const PhaseTimings&, const PhaseTimings&) = default;
};

// ---- service management and heartbeats: kind, source, alert-routing metadata ----

// How a service is checked: probed over the network by the runner (http: any URL scheme the
// probes support), or expected to push heartbeats to /v1/push/{push_token} (heartbeat).
enum class ServiceKind { http, heartbeat };
inline const char* to_string(ServiceKind kind) {
  return kind == ServiceKind::heartbeat ? "heartbeat" : "http";
}

// Who owns a service row: the services file (reconciled at every start) or the write API. A
// file sync never touches a service the API created, and the API does not edit file services.
enum class ServiceSource { file, api };
inline const char* to_string(ServiceSource source) {
  return source == ServiceSource::api ? "api" : "file";
}

inline constexpr int kDefaultPriority = 3;  // p3

// The error of the down tick a heartbeat gets when its deadline passes without a report.
inline constexpr const char* kMissedHeartbeat = "missed heartbeat";

// A heartbeat report pushed to /v1/push/{token}: what the API hands the runner.
struct BeatReport {
  TimePoint at;                       // when it arrived
  bool up = true;                     // false: the job reported a failure (/fail, status=down)
  std::string message;                // "msg", at most 1 KiB; stored with the tick
  std::optional<double> duration_ms;  // how long the job ran; becomes the tick's response time
};

// What the services file or the write API declares about one service.
struct ServiceSpec {
  std::string name;
  std::string url;
  Millis interval{15'000};
  Millis timeout{15'000};
  std::string method = "GET";
  std::vector<std::pair<std::string, std::string>> headers;  // sent in this order
  std::vector<StatusRange> expected_status{StatusRange{200, 399}};
  ProbeOptions probe;  // conditions, HTTP/TLS options, TCP conversation, thresholds

  // Service management and heartbeats.
  ServiceKind kind = ServiceKind::http;
  Millis grace{0};                  // heartbeat: slack past interval x threshold before it is down
  int threshold = 1;                // heartbeat: consecutive missed intervals before it is down
  std::string team;                 // empty: none
  int priority = kDefaultPriority;  // 1 (p1, most urgent) to 5 (p5)
  std::string runbook;              // http(s) URL; empty: none
  std::vector<std::string> tags;
  bool muted = false;
  std::optional<TimePoint> muted_until;  // a snooze: the mute ends by itself at this instant
  // Alerting: the channels its alerts go to, by name (empty: by team, else the
  // default), checked against the alerting section by whoever knows it; and its reminder period
  // (empty: each channel's own repeat_every_seconds).
  std::vector<std::string> alert_channels;  // services file: "alerts"
  std::optional<Millis> repeat_every;       // services file: "repeat_every_seconds"

  // Muted at `now`: muted, and the snooze, if any, has not run out.
  bool muted_at(TimePoint now) const { return muted && (!muted_until || now < *muted_until); }

  friend bool operator==(const ServiceSpec&, const ServiceSpec&) = default;
};

// A service as stored: its spec plus identity and bookkeeping.
struct Service {
  ServiceId id = 0;
  ServiceSpec spec;
  bool active = true;
  ServiceSource source = ServiceSource::file;
  std::string push_token;  // heartbeats only: the secret in /v1/push/{token}
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
  std::optional<PhaseTimings> phases;  // probe depth: HTTP and TCP probes; absent otherwise
  std::string message;                 // heartbeats: the msg pushed with the beat; empty otherwise
  // Set by Store::ticks only: orders ticks of the same ts (the API's paging key with ts).
  std::int64_t seq = 0;
};

// An event that started at `started`: what is left of a status change whose tick record the
// writer had to drop (a full queue).
struct EventStart {
  EventKind kind = EventKind::uptime;
  TimePoint started;
  friend bool operator==(const EventStart&, const EventStart&) = default;
};

// What the runner hands the writer for one tick: the tick itself, the service's metric after
// it, and, when the status changed (or it is the first tick), the kind of event that starts at
// tick.ts (the open event, if any, ends at that instant).
struct TickRecord {
  Tick tick;
  Metric metric_after;
  std::optional<EventKind> opens_event;
  // Set by the writer only: status changes of this service after its previous record and before
  // this tick, oldest first, whose own records a full queue dropped. Each is applied like a
  // record's opens_event at its start, before this record's own.
  std::vector<EventStart> folded_events{};
  // Resolved by the writer once the transaction carrying this record commits (a pushed beat's
  // tick: the push waits for it); dropped with the record when the record is dropped. Empty
  // for a record nobody waits on.
  CommitPromise stored{};
  // The queued beat (Store::claim_beats) this record's tick stores, removed by the transaction
  // that stores the tick: a beat pushed to `vigil api` is neither lost nor stored twice when
  // the runner process dies in between. Empty for every other record.
  std::optional<std::int64_t> queued_beat{};
  // True when the record changes no event: the writer may drop it first.
  bool plain() const { return !opens_event && folded_events.empty(); }
};

// The live state the runner needs to continue where a previous run stopped.
struct ServiceRuntime {
  Metric metric;
  std::optional<EventKind> open_event_kind;
  std::optional<TimePoint> open_event_started;
  std::optional<TimePoint> last_tick_at;
  std::optional<TimePoint> last_beat_at;  // heartbeats: the newest pushed report
  // Probe depth: the current run of raw results, for failure/success thresholds. Not stored:
  // after a restart both start again from 0.
  int consecutive_failures = 0;
  int consecutive_successes = 0;
};

}  // namespace vigil

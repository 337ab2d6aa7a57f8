#include "runner/state_machine.h"

#include <cmath>
#include <string_view>
#include <utility>

namespace vigil {

namespace {

EventKind kind_of(const ProbeResult& result) {
  return result.up ? EventKind::uptime : EventKind::downtime;
}

// "850ms", "12s", "4m12s", "3h0m5s", "2d1h0m0s": compact, and exact to the second.
std::string format_duration(Millis duration) {
  using namespace std::chrono;
  if (duration < seconds(1)) return std::to_string(duration.count()) + "ms";
  const auto total = duration_cast<seconds>(duration).count();
  const auto days = total / 86400;
  const auto hours = total % 86400 / 3600;
  const auto minutes = total % 3600 / 60;
  const auto secs = total % 60;
  std::string out;
  if (days > 0) out += std::to_string(days) + "d";
  if (!out.empty() || hours > 0) out += std::to_string(hours) + "h";
  if (!out.empty() || minutes > 0) out += std::to_string(minutes) + "m";
  out += std::to_string(secs) + "s";
  return out;
}

std::string format_ms(double ms) { return std::to_string(std::llround(ms)) + " ms"; }

// Why the probe went the way it did: "HTTP 503 in 12 ms" when an answer arrived and its status
// decided, otherwise the probe's own reason ("connection refused", "timeout after 2000 ms").
std::string describe_result(const ProbeResult& result) {
  constexpr std::string_view kStatusReason = "HTTP status ";
  const bool decided_by_status =
      result.status_code &&
      (result.error.empty() || std::string_view(result.error).starts_with(kStatusReason));
  if (decided_by_status) {
    return "HTTP " + std::to_string(*result.status_code) + " in " + format_ms(result.response_ms);
  }
  if (!result.error.empty()) return result.error;
  return "in " + format_ms(result.response_ms);
}

}  // namespace

TickOutcome apply_probe_result(ServiceRuntime& state, ServiceId service, const ProbeResult& result,
                               TimePoint started, const std::string& region,
                               Thresholds thresholds) {
  TickOutcome outcome;
  state.metric.add(result.up, result.response_ms);
  state.last_tick_at = started;
  if (result.up) {
    ++state.consecutive_successes;
    state.consecutive_failures = 0;
  } else {
    ++state.consecutive_failures;
    state.consecutive_successes = 0;
  }
  const int run = result.up ? state.consecutive_successes : state.consecutive_failures;
  const bool run_long_enough = run >= (result.up ? thresholds.successes : thresholds.failures);

  const EventKind kind = kind_of(result);
  if (run_long_enough && (!state.open_event_kind || *state.open_event_kind != kind)) {
    Transition transition{kind, state.open_event_kind, std::nullopt};
    if (state.open_event_kind && state.open_event_started) {
      transition.previous_duration = started - *state.open_event_started;
    }
    outcome.transition = transition;
    outcome.record.opens_event = kind;
    state.open_event_kind = kind;
    state.open_event_started = started;
  }

  Tick& tick = outcome.record.tick;
  tick.service_id = service;
  tick.ts = started;
  tick.up = result.up;
  tick.status_code = result.status_code;
  tick.response_ms = result.response_ms;
  tick.error = result.error;
  tick.region = region;
  tick.phases = result.phases;
  outcome.record.metric_after = state.metric;
  return outcome;
}

std::string describe_transition(const std::string& service_name, const Transition& transition,
                                const ProbeResult& result) {
  if (transition.to == EventKind::uptime) {
    if (transition.from == EventKind::downtime && transition.previous_duration) {
      return service_name + " UP after " + format_duration(*transition.previous_duration) + " down";
    }
    return service_name + " UP: " + describe_result(result);
  }
  return service_name + " DOWN: " + describe_result(result);
}

}  // namespace vigil

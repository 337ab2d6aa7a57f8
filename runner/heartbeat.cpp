#include "runner/heartbeat.h"

#include <algorithm>

namespace vigil {

TimePoint heartbeat_deadline(const ServiceSpec& spec, const ServiceRuntime& state,
                             TimePoint watched_since) {
  if (state.open_event_kind == EventKind::downtime && state.last_tick_at)
    return std::max(*state.last_tick_at, watched_since) + spec.interval + spec.grace;
  const TimePoint base = state.last_beat_at   ? *state.last_beat_at
                         : state.last_tick_at ? *state.last_tick_at
                                              : watched_since;
  return std::max(base, watched_since) + spec.interval * spec.threshold + spec.grace;
}

ProbeResult beat_result(const BeatReport& beat) {
  ProbeResult result;
  result.up = beat.up;
  result.response_ms = beat.duration_ms.value_or(0);
  if (!beat.up)
    result.error = beat.message.empty() ? "reported down" : "reported down: " + beat.message;
  return result;
}

ProbeResult missed_heartbeat_result() {
  ProbeResult result;
  result.up = false;
  result.error = kMissedHeartbeat;
  return result;
}

}  // namespace vigil

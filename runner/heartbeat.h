// Heartbeat services: not probed, they report in. The pure rules of their deadlines and
// of the ticks reports and silences become; the runner's loop holds the state and the heap of
// deadlines, and passes the results through the same state machine as a probe's.
#pragma once

#include "core/model.h"
#include "runner/probe.h"

namespace vigil {

// When silence gives the heartbeat its next down tick, in wall time. Up, or never reported: at
// last report + interval x threshold + grace (the base is its last tick when no report is known,
// `watched_since` when it has no tick at all). Down: one interval + grace after its last tick, so
// a silent heartbeat gets one down tick per interval and its uptime stays tick-based. Never
// based before `watched_since`: its creation, or its reactivation, which gives it a full period
// to report again rather than a missed deadline at once.
TimePoint heartbeat_deadline(const ServiceSpec& spec, const ServiceRuntime& state,
                             TimePoint watched_since);

// A report as a probe result: up, or down with "reported down[: msg]"; the job's duration as the
// response time. The msg itself goes with the tick as its message.
ProbeResult beat_result(const BeatReport& beat);

// The result of a deadline that passed without a report: down, error kMissedHeartbeat.
ProbeResult missed_heartbeat_result();

}  // namespace vigil

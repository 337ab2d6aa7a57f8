// The per-service state machine: folds a probe result into the service's live state and decides
// whether an event starts. Pure and synchronous; the runner thread calls it for every finished
// probe and hands the returned record to the writer.
#pragma once

#include <optional>
#include <string>

#include "runner/probe.h"
#include "storage/model.h"

namespace vigil {

struct Transition {
  EventKind to;
  std::optional<EventKind> from;            // empty for a service's first tick
  std::optional<Millis> previous_duration;  // how long the previous event lasted
};

struct TickOutcome {
  TickRecord record;
  std::optional<Transition> transition;
};

// Updates `state` (metric, open event) with the result of a probe that started at `started`,
// and returns the record to store. An event opens on the first tick and whenever up/down
// differs from the open event's kind.
TickOutcome apply_probe_result(ServiceRuntime& state, ServiceId service, const ProbeResult& result,
                               TimePoint started, const std::string& region);

// "payments DOWN: HTTP 503 in 12 ms" / "payments DOWN: connection refused" / "payments UP after
// 4m12s down" / (first tick) "payments UP: HTTP 200 in 8 ms": the log line for a transition.
std::string describe_transition(const std::string& service_name, const Transition& transition,
                                const ProbeResult& result);

}  // namespace vigil

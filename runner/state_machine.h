// The per-service state machine: folds a probe result into the service's live state and decides
// whether an event starts. Pure and synchronous; the runner thread calls it for every finished
// probe and hands the returned record to the writer.
#pragma once

#include <optional>
#include <string>

#include "core/model.h"
#include "runner/probe.h"

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

// Probe depth: how many consecutive raw results of one kind it takes to change the
// service's status (its open event). 1 and 1: every tick decides.
struct Thresholds {
  int failures = 1;   // consecutive down ticks before the service is down
  int successes = 1;  // consecutive up ticks before it is up (again)
};

// Updates `state` (metric, counters, open event) with the result of a probe that started at
// `started`, and returns the record to store. The tick and the metric are always the raw
// result. An event of a kind opens, at this tick, once the current run of results of that kind
// reaches its threshold and the open event (if any) is of the other kind; before the first
// event the service has no status, so with thresholds above 1 the first event waits for its
// run too.
TickOutcome apply_probe_result(ServiceRuntime& state, ServiceId service, const ProbeResult& result,
                               TimePoint started, const std::string& region,
                               Thresholds thresholds = {});

// "payments DOWN: HTTP 503 in 12 ms" / "payments DOWN: connection refused" / "payments UP after
// 4m12s down" / (first tick) "payments UP: HTTP 200 in 8 ms": the log line for a transition.
std::string describe_transition(const std::string& service_name, const Transition& transition,
                                const ProbeResult& result);

}  // namespace vigil

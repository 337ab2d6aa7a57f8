// What /healthz (and the status page's headline) decide from: when each part of the process that
// probes last made progress. The parts are the runner (its loop went round: Runner::last_alive),
// the writer (it committed, or had nothing to commit: Writer::last_progress) and the alerter (it
// handled its queue: Alerter::last_progress). `vigil run` reads them from its own threads;
// `vigil api` from the beats the runner process writes to the database (storage/component_beats.h).
// A part is silent once its last progress is older than the bound; the decision is a pure
// function of the report and `now`, so tests give it any clock.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/model.h"

namespace vigil {

// The parts /healthz checks, in the order it reports them.
inline constexpr std::array<std::string_view, 3> kHealthParts = {"runner", "writer", "alerter"};

// Beats are written this often by default (HEALTH_BEAT_SECONDS).
inline constexpr Millis kDefaultBeatPeriod{2'000};
// The bound's floor: the runner and alerter loops wake once a second, and a large writer batch
// or a busy machine can hold one back for a few more.
inline constexpr Millis kMinSilentAfter{2'000};

// The default bound for a beat period: 3 periods (two beats may be lost or late without a false
// alarm), and never under 10 s.
inline Millis default_silent_after(Millis beat_period) {
  return std::max(3 * beat_period, Millis(10'000));
}

// One part's latest progress as this process knows it.
struct PartProgress {
  std::string part;  // one of kHealthParts
  std::string instance;
  TimePoint progressed_at;
};

struct HealthReport {
  // A part may appear once per instance (one per runner process's PROBER_REGION). A part that
  // does not appear is not running here and has no beat in the database: not_running, which
  // does not fail the check (a `vigil api` with no runner process yet, or one stopped cleanly).
  std::vector<PartProgress> parts;
  // Non-empty while the writer's commits fail (disk full, file read-only, locked by another
  // process): the last storage error. /healthz then answers 503 naming it.
  std::string storage_failure;
};
using HealthCheck = std::function<HealthReport()>;

enum class PartState { alive, silent, not_running };
std::string_view part_state_word(PartState state);  // "alive", "silent", "not_running"

struct PartVerdict {
  std::string part;
  PartState state = PartState::not_running;
  std::optional<Millis> age;  // now - its last progress, never negative; empty if not running
  std::string instance;       // of the stalest instance, which decides
};

// One verdict per entry of kHealthParts, in that order. A part with several instances is judged
// by its stalest one: silent when its age exceeds `silent_after`.
std::vector<PartVerdict> judge_parts(const std::vector<PartProgress>& parts, TimePoint now,
                                     Millis silent_after);

// "runner silent for 12.3 s" for each silent verdict, joined by ", "; empty when none is silent.
std::string describe_silent(const std::vector<PartVerdict>& verdicts);

}  // namespace vigil

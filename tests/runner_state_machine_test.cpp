#include <gtest/gtest.h>

#include <vector>

#include "runner/state_machine.h"

namespace vigil {
namespace {

using namespace std::chrono_literals;

ProbeResult result(bool up, std::optional<int> status, double ms, std::string error) {
  ProbeResult r;
  r.up = up;
  r.status_code = status;
  r.response_ms = ms;
  r.error = std::move(error);
  return r;
}
ProbeResult up(int status = 200, double ms = 12) { return result(true, status, ms, ""); }
ProbeResult down_status(int status, double ms = 12) {
  return result(false, status, ms, "HTTP status " + std::to_string(status) + " not expected");
}
ProbeResult down_error(const std::string& error, double ms = 3) {
  return result(false, std::nullopt, ms, error);
}

const TimePoint kT0 = from_unix_ms(1'700'000'000'000);

TEST(StateMachine, FirstTickOpensAnEventOfItsKind) {
  ServiceRuntime up_state;
  const TickOutcome first_up = apply_probe_result(up_state, 7, up(200, 40), kT0, "eu-west");
  EXPECT_EQ(first_up.record.opens_event, EventKind::uptime);
  ASSERT_TRUE(first_up.transition);
  EXPECT_EQ(first_up.transition->to, EventKind::uptime);
  EXPECT_FALSE(first_up.transition->from);
  EXPECT_FALSE(first_up.transition->previous_duration);
  EXPECT_EQ(up_state.open_event_kind, EventKind::uptime);
  EXPECT_EQ(up_state.open_event_started, kT0);
  EXPECT_EQ(up_state.last_tick_at, kT0);

  const Tick& tick = first_up.record.tick;
  EXPECT_EQ(tick.service_id, 7);
  EXPECT_EQ(tick.ts, kT0);
  EXPECT_TRUE(tick.up);
  EXPECT_EQ(tick.status_code, 200);
  EXPECT_EQ(tick.response_ms, 40);
  EXPECT_EQ(tick.error, "");
  EXPECT_EQ(tick.region, "eu-west");
  EXPECT_EQ(first_up.record.metric_after.tick_count, 1);

  ServiceRuntime down_state;
  const TickOutcome first_down =
      apply_probe_result(down_state, 8, down_error("connection refused"), kT0, "");
  EXPECT_EQ(first_down.record.opens_event, EventKind::downtime);
  EXPECT_FALSE(first_down.record.tick.up);
  EXPECT_FALSE(first_down.record.tick.status_code);
  EXPECT_EQ(first_down.record.tick.error, "connection refused");
  EXPECT_EQ(down_state.open_event_kind, EventKind::downtime);
}

TEST(StateMachine, UpUpDownDownUpOpensEventsOnlyOnChanges) {
  ServiceRuntime state;
  const std::vector<ProbeResult> results = {up(200, 10), up(200, 20), down_status(503, 30),
                                            down_error("connection refused", 40), up(200, 50)};
  std::vector<std::optional<EventKind>> opens;
  std::vector<TickOutcome> outcomes;
  for (std::size_t i = 0; i < results.size(); ++i) {
    outcomes.push_back(apply_probe_result(state, 1, results[i], kT0 + i * 60s, ""));
    opens.push_back(outcomes.back().record.opens_event);
    EXPECT_EQ(outcomes.back().transition.has_value(), opens.back().has_value());
  }
  EXPECT_EQ(opens, (std::vector<std::optional<EventKind>>{EventKind::uptime, std::nullopt,
                                                          EventKind::downtime, std::nullopt,
                                                          EventKind::uptime}));

  // The down transition knows it follows 2 minutes of uptime; the up one 2 minutes of downtime.
  ASSERT_TRUE(outcomes[2].transition);
  EXPECT_EQ(outcomes[2].transition->from, EventKind::uptime);
  EXPECT_EQ(outcomes[2].transition->previous_duration, Millis(120s));
  ASSERT_TRUE(outcomes[4].transition);
  EXPECT_EQ(outcomes[4].transition->from, EventKind::downtime);
  EXPECT_EQ(outcomes[4].transition->previous_duration, Millis(120s));

  const Metric& m = state.metric;
  EXPECT_EQ(m.tick_count, 5);
  EXPECT_EQ(m.up_count, 3);
  EXPECT_EQ(m.down_count, 2);
  EXPECT_DOUBLE_EQ(m.average_response_time_ms, 30.0);
  EXPECT_DOUBLE_EQ(m.uptime_percent, 60.0);
  EXPECT_EQ(outcomes.back().record.metric_after, m);
  EXPECT_EQ(outcomes[1].record.metric_after.tick_count, 2);  // a snapshot, not a reference
  EXPECT_EQ(state.open_event_kind, EventKind::uptime);
  EXPECT_EQ(state.open_event_started, kT0 + 240s);
  EXPECT_EQ(state.last_tick_at, kT0 + 240s);
}

TEST(StateMachine, RestoredStateContinuesItsOpenEvent) {
  ServiceRuntime state;
  state.metric.add(true, 10);
  state.open_event_kind = EventKind::uptime;
  state.open_event_started = kT0;

  const TickOutcome same = apply_probe_result(state, 1, up(), kT0 + 1h, "");
  EXPECT_FALSE(same.record.opens_event);
  EXPECT_FALSE(same.transition);
  EXPECT_EQ(same.record.metric_after.tick_count, 2);

  const TickOutcome changed = apply_probe_result(state, 1, down_status(500), kT0 + 2h, "");
  EXPECT_EQ(changed.record.opens_event, EventKind::downtime);
  ASSERT_TRUE(changed.transition);
  EXPECT_EQ(changed.transition->previous_duration, Millis(2h));
}

TEST(DescribeTransition, SaysWhatHappenedInOneLine) {
  const Transition first_down{EventKind::downtime, std::nullopt, std::nullopt};
  EXPECT_EQ(describe_transition("payments", first_down, down_status(503, 12.4)),
            "payments DOWN: HTTP 503 in 12 ms");
  EXPECT_EQ(describe_transition("payments", first_down, down_error("connection refused")),
            "payments DOWN: connection refused");

  const Transition went_down{EventKind::downtime, EventKind::uptime, Millis(3h)};
  // A response arrived but something else made it down: that reason, not the status.
  const ProbeResult timed_out = result(false, 200, 2000, "timeout after 2000 ms");
  EXPECT_EQ(describe_transition("payments", went_down, timed_out),
            "payments DOWN: timeout after 2000 ms");

  const Transition recovered{EventKind::uptime, EventKind::downtime, Millis(4min + 12s)};
  EXPECT_EQ(describe_transition("payments", recovered, up()), "payments UP after 4m12s down");
  const Transition recovered_fast{EventKind::uptime, EventKind::downtime, Millis(850)};
  EXPECT_EQ(describe_transition("payments", recovered_fast, up()), "payments UP after 850ms down");
  const Transition recovered_slow{EventKind::uptime, EventKind::downtime, Millis(24h + 1h + 5s)};
  EXPECT_EQ(describe_transition("payments", recovered_slow, up()),
            "payments UP after 1d1h0m5s down");

  const Transition first_up{EventKind::uptime, std::nullopt, std::nullopt};
  EXPECT_EQ(describe_transition("payments", first_up, up(200, 7.6)),
            "payments UP: HTTP 200 in 8 ms");
}

}  // namespace
}  // namespace vigil

// ---- probe depth: failure and success thresholds ----

namespace vigil {
namespace {

TEST(StateMachineThresholds, ThreeFailuresBeforeDownTwoSuccessesBeforeUp) {
  ServiceRuntime state;
  const Thresholds thresholds{3, 2};
  const std::vector<ProbeResult> results = {
      up(),                              // 0: a run of 1 < 2: no status yet
      up(),                              // 1: two ups: uptime opens here
      down_status(503),                  // 2
      down_error("connection refused"),  // 3
      up(),                              // 4: the failure run breaks
      down_status(503),                  // 5
      down_status(503),                  // 6
      down_status(503),                  // 7: third in a row: downtime opens
      down_status(503),                  // 8
      up(),                              // 9
      down_status(503),                  // 10: the success run breaks
      up(),                              // 11
      up(),                              // 12: second in a row: uptime opens
  };
  std::vector<std::optional<EventKind>> opens;
  std::vector<bool> raw;
  for (std::size_t i = 0; i < results.size(); ++i) {
    const TickOutcome o = apply_probe_result(state, 5, results[i], kT0 + i * 10s, "", thresholds);
    opens.push_back(o.record.opens_event);
    raw.push_back(o.record.tick.up);
    EXPECT_EQ(o.transition.has_value(), o.record.opens_event.has_value()) << i;
    // Ticks stay raw: each one says what its own probe saw.
    EXPECT_EQ(o.record.tick.up, results[i].up) << i;
    EXPECT_EQ(o.record.tick.error, results[i].error) << i;
  }
  std::vector<std::optional<EventKind>> expected(results.size());
  expected[1] = EventKind::uptime;
  expected[7] = EventKind::downtime;
  expected[12] = EventKind::uptime;
  EXPECT_EQ(opens, expected);
  // The metric counts raw ticks, thresholds or not.
  EXPECT_EQ(state.metric.tick_count, 13);
  EXPECT_EQ(state.metric.up_count, 6);
  EXPECT_EQ(state.metric.down_count, 7);
  EXPECT_EQ(state.open_event_kind, EventKind::uptime);
  EXPECT_EQ(state.open_event_started, kT0 + 120s);
  EXPECT_EQ(state.consecutive_successes, 2);
  EXPECT_EQ(state.consecutive_failures, 0);
}

TEST(StateMachineThresholds, FirstEventWaitsForItsRun) {
  ServiceRuntime state;
  const Thresholds thresholds{2, 1};
  EXPECT_FALSE(
      apply_probe_result(state, 1, down_status(500), kT0, "", thresholds).record.opens_event);
  EXPECT_FALSE(state.open_event_kind);  // no status yet: "unknown"
  const TickOutcome second =
      apply_probe_result(state, 1, down_status(500), kT0 + 1s, "", thresholds);
  EXPECT_EQ(second.record.opens_event, EventKind::downtime);
  ASSERT_TRUE(second.transition);
  EXPECT_FALSE(second.transition->from);
}

TEST(StateMachineThresholds, DefaultsDecideOnEveryTick) {
  ServiceRuntime a;
  ServiceRuntime b;
  for (int i = 0; i < 6; ++i) {
    const ProbeResult r = i % 2 ? up() : down_status(500);
    const auto with_defaults = apply_probe_result(a, 1, r, kT0 + i * 1s, "");
    const auto with_ones = apply_probe_result(b, 1, r, kT0 + i * 1s, "", Thresholds{1, 1});
    EXPECT_EQ(with_defaults.record.opens_event, r.up ? EventKind::uptime : EventKind::downtime);
    EXPECT_EQ(with_defaults.record.opens_event, with_ones.record.opens_event);
  }
}

TEST(StateMachineThresholds, PhasesGoWithTheTick) {
  ServiceRuntime state;
  ProbeResult r = up(200, 21);
  r.phases = PhaseTimings{1, 2, 5, 10, 3};
  EXPECT_EQ(apply_probe_result(state, 1, r, kT0, "").record.tick.phases, r.phases);
  EXPECT_FALSE(apply_probe_result(state, 1, up(), kT0 + 1s, "").record.tick.phases);
}

}  // namespace
}  // namespace vigil

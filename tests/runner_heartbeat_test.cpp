// Heartbeats in the runner: deadlines in the real runner loop on a manual clock, beats handed
// over as commands from another thread, the ticks collected from the sink.
#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/logging.h"
#include "runner/heartbeat.h"
#include "runner/runner.h"
#include "runner/scheduler.h"
#include "support/manual_clock.h"
#include "support/runner_metrics.h"
#include "support/target_server.h"
#include "support/tick_collector.h"

namespace vigil {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

using Collector = test::TickCollector;

Service heartbeat(ServiceId id, const std::string& name, Millis interval, Millis grace,
                  int threshold, TimePoint created_at) {
  Service s;
  s.id = id;
  s.spec.name = name;
  s.spec.kind = ServiceKind::heartbeat;
  s.spec.interval = interval;
  s.spec.grace = grace;
  s.spec.threshold = threshold;
  s.created_at = created_at;
  return s;
}

double gauge(prometheus::Registry& registry, const Runner& runner, const std::string& family,
             const std::string& name) {
  for (const auto& f : test::collect(registry, runner)) {
    if (f.name != family) continue;
    for (const auto& m : f.metric)
      for (const auto& l : m.label)
        if (l.name == "service" && l.value == name) return m.gauge.value;
  }
  return -1;
}

// The runner on a manual clock: deadlines are checked at exact instants, never against a sleep.
class HeartbeatTest : public ::testing::Test {
 protected:
  void SetUp() override { set_log_level(LogLevel::warn); }
  void start(std::vector<Service> services,
             std::unordered_map<ServiceId, ServiceRuntime> runtime = {},
             RunnerOptions options = {}) {
    options.clock = clock_.runner_clock();
    options.drain_timeout = 100ms;
    runner_ = std::make_unique<Runner>(options, collector_.sink(), registry_);
    runner_->start(std::move(services), std::move(runtime));
  }
  Service job(ServiceId id, const std::string& name, Millis interval, Millis grace,
              int threshold = 1) const {
    return heartbeat(id, name, interval, grace, threshold, clock_.wall());
  }
  BeatReport report(bool up = true, std::string message = {},
                    std::optional<double> duration = std::nullopt) const {
    return BeatReport{clock_.wall(), up, std::move(message), duration};
  }
  // Moves the clock and waits until the runner has seen the new time (see test::advance).
  void advance(Millis by) { ASSERT_TRUE(test::advance(clock_, *runner_, by)); }
  // Advances to `at` (since the clock's start); nothing of `id` may tick before it.
  void advance_to(Millis at) { advance(at - (clock_.wall() - clock_.wall0())); }
  std::size_t count(ServiceId id) const { return collector_.arrivals(id).size(); }
  bool wait_for(ServiceId id, std::size_t n) const {
    return collector_.wait_for_arrivals(
        id, [n](const auto& a) { return a.size() >= n; }, 30s);
  }
  // The tick times of `id` since the clock's start.
  std::vector<Millis> times(ServiceId id) const {
    std::vector<Millis> out;
    for (const auto& a : collector_.arrivals(id)) out.push_back(a.record.tick.ts - clock_.wall0());
    return out;
  }

  test::ManualClock clock_;
  prometheus::Registry registry_;
  Collector collector_;
  std::unique_ptr<Runner> runner_;
};

TEST_F(HeartbeatTest, ASilentHeartbeatGoesDownAtItsDeadlineAndStaysDownOneTickPerInterval) {
  start({job(1, "silent", 300ms, 50ms)});
  // Created now: down once interval + grace (350 ms) pass without a report, not a moment before.
  advance_to(349ms);
  EXPECT_EQ(count(1), 0u);
  advance_to(350ms);
  ASSERT_TRUE(wait_for(1, 1));
  // Then one more down tick every interval + grace, with no new event.
  for (Millis at : {699ms, 700ms, 1049ms, 1050ms}) advance_to(at);
  ASSERT_TRUE(wait_for(1, 3));
  runner_->stop();

  EXPECT_EQ(times(1), (std::vector<Millis>{350ms, 700ms, 1050ms}));
  const auto ticks = collector_.arrivals(1);
  EXPECT_FALSE(ticks[0].record.tick.up);
  EXPECT_EQ(ticks[0].record.tick.error, kMissedHeartbeat);
  EXPECT_FALSE(ticks[0].record.tick.status_code);
  EXPECT_EQ(ticks[0].record.opens_event, EventKind::downtime);
  for (std::size_t i = 1; i < ticks.size(); ++i) {
    EXPECT_FALSE(ticks[i].record.tick.up);
    EXPECT_FALSE(ticks[i].record.opens_event);
    EXPECT_EQ(ticks[i].record.metric_after.down_count, static_cast<std::int64_t>(i + 1));
  }
}

TEST_F(HeartbeatTest, BeatsKeepItUpThenSilenceTakesItDownAndABeatBringsItBack) {
  start({job(1, "job", 300ms, 50ms)});
  // Beating every 100 ms: never missed.
  for (std::size_t i = 0; i < 8; ++i) {
    runner_->record_beat(1, report(true, "run " + std::to_string(i), 12.5));
    ASSERT_TRUE(wait_for(1, i + 1));
    advance(100ms);
  }
  auto ticks = collector_.arrivals(1);
  ASSERT_EQ(ticks.size(), 8u);
  for (const auto& t : ticks) EXPECT_TRUE(t.record.tick.up) << t.record.tick.error;
  EXPECT_EQ(ticks.front().record.opens_event, EventKind::uptime);
  EXPECT_EQ(ticks.back().record.tick.message, "run 7");
  EXPECT_DOUBLE_EQ(ticks.back().record.tick.response_ms, 12.5);

  // Silent: down once the deadline (last beat at 700 ms + 350 ms) passes.
  advance_to(1049ms);
  EXPECT_EQ(count(1), 8u);
  advance_to(1050ms);
  ASSERT_TRUE(wait_for(1, 9));
  ticks = collector_.arrivals(1);
  EXPECT_EQ(times(1).back(), 1050ms);
  EXPECT_EQ(ticks.back().record.tick.error, kMissedHeartbeat);
  EXPECT_EQ(ticks.back().record.opens_event, EventKind::downtime);

  // A beat: up at once, the downtime closes.
  advance(10ms);
  runner_->record_beat(1, report());
  ASSERT_TRUE(wait_for(1, 10));
  ticks = collector_.arrivals(1);
  EXPECT_TRUE(ticks.back().record.tick.up);
  EXPECT_EQ(ticks.back().record.opens_event, EventKind::uptime);
  EXPECT_EQ(times(1).back(), 1060ms);
  runner_->stop();
  EXPECT_DOUBLE_EQ(gauge(registry_, *runner_, "vigil_heartbeat_last_seen_timestamp_seconds", "job"),
                   double(to_unix_ms(clock_.wall())) / 1000.0);
  EXPECT_EQ(gauge(registry_, *runner_, "vigil_service_up", "job"), 1);
  EXPECT_EQ(gauge(registry_, *runner_, "probe_success", "job"), 1);
}

// A beat's tick reaches the sink carrying the promise of the future record_beat returned, so
// whoever answers the push learns when the sink has stored it; a tick the sink lets go of
// unresolved is reported dropped.
TEST_F(HeartbeatTest, ABeatsTickCarriesThePromiseItsPusherWaitsOn) {
  start({job(1, "job", 10'000ms, 0ms)});
  const CommitFuture stored = runner_->record_beat(1, report(true, "kept"));
  ASSERT_TRUE(wait_for(1, 1));
  EXPECT_EQ(stored.wait_for(0ms), CommitOutcome::timed_out);  // the sink has not stored it
  const TickRecord record = collector_.of(1).back();
  EXPECT_TRUE(record.stored.awaited());
  record.stored.committed();
  EXPECT_EQ(stored.wait_for(0ms), CommitOutcome::committed);

  // Missed-deadline ticks have no waiter.
  advance_to(10'001ms);
  ASSERT_TRUE(wait_for(1, 2));
  EXPECT_FALSE(collector_.of(1).back().stored.awaited());
  runner_->stop();
}

TEST_F(HeartbeatTest, AFailureReportIsDownAtOnceWhateverTheThreshold) {
  start({job(1, "job", 2000ms, 100ms, 5)});
  runner_->record_beat(1, report(true));
  ASSERT_TRUE(wait_for(1, 1));
  advance(10ms);
  runner_->record_beat(1, report(false, "exit code 3", 40));
  ASSERT_TRUE(wait_for(1, 2));
  runner_->stop();
  const auto ticks = collector_.arrivals(1);
  EXPECT_EQ(times(1)[1], 10ms);  // the report's own time: the clock did not move to get there
  EXPECT_FALSE(ticks[1].record.tick.up);
  EXPECT_EQ(ticks[1].record.tick.error, "reported down: exit code 3");
  EXPECT_EQ(ticks[1].record.tick.message, "exit code 3");
  EXPECT_DOUBLE_EQ(ticks[1].record.tick.response_ms, 40);
  EXPECT_EQ(ticks[1].record.opens_event, EventKind::downtime);
}

TEST_F(HeartbeatTest, ThresholdThreeNeedsThreeMissedIntervals) {
  start({job(1, "lenient", 200ms, 0ms, 3), job(2, "strict", 200ms, 0ms, 1)});
  runner_->record_beat(1, report());
  runner_->record_beat(2, report());
  ASSERT_TRUE(wait_for(1, 1));
  ASSERT_TRUE(wait_for(2, 1));
  // One missed interval takes the strict one down; the lenient one waits for three.
  for (Millis at : {199ms, 200ms}) advance_to(at);
  ASSERT_TRUE(wait_for(2, 2));
  EXPECT_EQ(count(1), 1u);
  for (Millis at : {400ms, 599ms}) advance_to(at);
  EXPECT_EQ(count(1), 1u);
  advance_to(600ms);
  ASSERT_TRUE(wait_for(1, 2));
  runner_->stop();
  EXPECT_EQ(times(2)[1], 200ms);
  EXPECT_EQ(times(1)[1], 600ms);
  EXPECT_FALSE(collector_.arrivals(1)[1].record.tick.up);
  EXPECT_FALSE(collector_.arrivals(2)[1].record.tick.up);
}

TEST_F(HeartbeatTest, ALateBeatBeforeTheDeadlineIsJustUp) {
  start({job(1, "late", 200ms, 150ms)});
  runner_->record_beat(1, report());
  ASSERT_TRUE(wait_for(1, 1));
  for (std::size_t i = 0; i < 4; ++i) {
    advance(280ms);  // late by 80 ms, inside the 150 ms grace
    runner_->record_beat(1, report());
    ASSERT_TRUE(wait_for(1, i + 2));
  }
  advance(349ms);  // just short of the last deadline
  runner_->stop();
  const auto ticks = collector_.arrivals(1);
  ASSERT_EQ(ticks.size(), 5u);
  for (const auto& t : ticks) EXPECT_TRUE(t.record.tick.up) << t.record.tick.error;
}

TEST_F(HeartbeatTest, AfterARestartASilentHeartbeatIsDownRightAwayAndARecentOneIsNot) {
  const TimePoint now = clock_.wall();
  ServiceRuntime went_silent;  // up when vigil stopped, last report 10 s ago
  went_silent.metric.add(true, 5);
  went_silent.open_event_kind = EventKind::uptime;
  went_silent.open_event_started = now - 60s;
  went_silent.last_tick_at = now - 10s;
  went_silent.last_beat_at = went_silent.last_tick_at;
  ServiceRuntime recent = went_silent;  // reported 100 ms ago
  recent.last_tick_at = now - 100ms;
  recent.last_beat_at = recent.last_tick_at;
  const Service old_one = heartbeat(1, "went-silent", 1000ms, 100ms, 1, now - 3600s);
  const Service recent_one = heartbeat(2, "recent", 1000ms, 100ms, 1, now - 3600s);
  start({old_one, recent_one}, {{1, went_silent}, {2, recent}});
  ASSERT_TRUE(wait_for(1, 1));
  const auto down = collector_.arrivals(1)[0];
  EXPECT_EQ(times(1)[0], 0ms);  // at once, without the clock moving
  EXPECT_FALSE(down.record.tick.up);
  EXPECT_EQ(down.record.tick.error, kMissedHeartbeat);
  EXPECT_EQ(down.record.opens_event, EventKind::downtime);
  EXPECT_EQ(down.record.metric_after.tick_count, 2);  // continues the stored metric
  // Its last-seen metric comes from the stored report.
  EXPECT_NEAR(
      gauge(registry_, *runner_, "vigil_heartbeat_last_seen_timestamp_seconds", "went-silent"),
      double(to_unix_ms(*went_silent.last_beat_at)) / 1000.0, 0.001);
  // The recent one is due 1.1 s after its last report, 1 s from now.
  advance_to(999ms);
  EXPECT_TRUE(collector_.arrivals(2).empty());
  advance_to(1000ms);
  ASSERT_TRUE(wait_for(2, 1));
  runner_->stop();
  EXPECT_EQ(times(2)[0], 1000ms);
}

TEST_F(HeartbeatTest, NeverReportedHeartbeatCountsFromItsCreation) {
  start({heartbeat(1, "never", 1000ms, 0ms, 1, clock_.wall() - 5s)});
  ASSERT_TRUE(wait_for(1, 1));
  EXPECT_EQ(times(1)[0], 0ms);
  runner_->stop();
}

TEST_F(HeartbeatTest, DeadlinesFireWhileProbesFillEveryConcurrencySlot) {
  test::TargetServer target;
  RunnerOptions options;
  options.max_concurrency = 1;
  // A probe that holds the only slot for longer than the test.
  Service hanging;
  hanging.id = 2;
  hanging.spec.name = "hanging";
  hanging.spec.url = target.url("/hang?ms=30000");
  hanging.spec.interval = 60s;
  hanging.spec.timeout = 60s;
  start({job(1, "beat", 200ms, 0ms), hanging}, {}, options);
  advance(60s);  // the probe's slot has come (and so has the heartbeat's deadline)
  ASSERT_TRUE(wait_for(1, 1));
  ASSERT_EQ(runner_->in_flight(), 1u);
  for (int i = 0; i < 2; ++i) advance(200ms);
  ASSERT_TRUE(wait_for(1, 3));
  EXPECT_EQ(times(1), (std::vector<Millis>{60000ms, 60200ms, 60400ms}));
  EXPECT_EQ(runner_->in_flight(), 1u);  // the probe still holds the slot
  runner_->stop();
}

TEST_F(HeartbeatTest, ChangesAndRemovalFollowTheCommands) {
  start({});
  // Created while running (as the API does): a long interval, so no tick for now.
  runner_->upsert_service(job(1, "job", 10'000ms, 0ms));
  runner_->record_beat(1, report());
  ASSERT_TRUE(wait_for(1, 1));
  // A shorter interval moves the deadline: down 200 ms after the last report.
  runner_->upsert_service(job(1, "job", 200ms, 0ms));
  advance_to(199ms);
  EXPECT_EQ(count(1), 1u);
  advance_to(200ms);
  ASSERT_TRUE(wait_for(1, 2));
  EXPECT_FALSE(collector_.arrivals(1).back().record.tick.up);
  // Beats for services that are not heartbeats of this runner are ignored, and their pushers
  // told so.
  EXPECT_EQ(runner_->record_beat(99, report()).wait_for(5s), CommitOutcome::ignored);
  runner_->remove_service(1);
  runner_->record_beat(1, report());
  advance(1000ms);  // the commands are applied, and no deadline of the removed one fires
  runner_->stop();
  EXPECT_EQ(count(1), 2u);
  EXPECT_TRUE(collector_.arrivals(99).empty());
  EXPECT_EQ(gauge(registry_, *runner_, "vigil_heartbeat_last_seen_timestamp_seconds", "job"), -1);
}

TEST_F(HeartbeatTest, ADeactivatedHeartbeatIgnoresBeatsAndContinuesItsHistoryWhenReactivated) {
  const Service on = job(1, "paused-job", 10'000ms, 0ms);
  Service off = on;
  off.active = false;
  start({on});
  runner_->record_beat(1, report(true, "first"));
  ASSERT_TRUE(wait_for(1, 1));
  runner_->upsert_service(off);
  runner_->record_beat(1, report(true, "while off"));  // not a heartbeat of this runner now
  advance(1ms);
  EXPECT_EQ(gauge(registry_, *runner_, "vigil_heartbeat_last_seen_timestamp_seconds", "paused-job"),
            -1);
  runner_->upsert_service(on);
  advance(1ms);
  EXPECT_EQ(count(1), 1u);
  // Reactivated, it shows its kept last report before any new one.
  EXPECT_GT(gauge(registry_, *runner_, "vigil_heartbeat_last_seen_timestamp_seconds", "paused-job"),
            0);
  runner_->record_beat(1, report(true, "second"));
  ASSERT_TRUE(wait_for(1, 2));
  runner_->stop();
  const auto arrivals = collector_.arrivals(1);
  ASSERT_EQ(arrivals.size(), 2u);
  EXPECT_EQ(arrivals[1].record.tick.message, "second");
  EXPECT_EQ(arrivals[1].record.metric_after.tick_count, 2);
  EXPECT_FALSE(arrivals[1].record.opens_event.has_value());  // still the first uptime event
}

TEST_F(HeartbeatTest, AHeartbeatReactivatedAfterAPauseGetsAFullPeriodToReportAgain) {
  const Service on = job(1, "paused-job", 300ms, 50ms);
  Service off = on;
  off.active = false;
  start({on});
  runner_->record_beat(1, report(true, "before the pause"));
  ASSERT_TRUE(wait_for(1, 1));
  runner_->upsert_service(off);
  advance_to(800ms);  // off for longer than interval + grace
  runner_->upsert_service(on);
  advance_to(801ms);  // reactivated at 800 ms or 801 ms: the next round applies it
  // Silent since: down one interval + grace (350 ms) after the reactivation, not at once.
  advance_to(1149ms);
  EXPECT_EQ(count(1), 1u);
  advance_to(1151ms);
  ASSERT_TRUE(wait_for(1, 2));
  runner_->stop();
  const auto ticks = collector_.arrivals(1);
  EXPECT_FALSE(ticks[1].record.tick.up);
  EXPECT_EQ(ticks[1].record.tick.error, kMissedHeartbeat);
  EXPECT_GE(times(1)[1], 1150ms);
  EXPECT_EQ(ticks[1].record.metric_after.tick_count, 2);
}

TEST(HeartbeatRules, DeadlineFollowsTheLastReportThresholdAndGrace) {
  ServiceSpec spec;
  spec.kind = ServiceKind::heartbeat;
  spec.interval = 60s;
  spec.grace = 6s;
  spec.threshold = 3;
  const TimePoint created = from_unix_ms(1'000'000);
  ServiceRuntime state;
  EXPECT_EQ(heartbeat_deadline(spec, state, created), created + 186s);  // never reported
  state.open_event_kind = EventKind::uptime;
  state.last_tick_at = created + 100s;
  EXPECT_EQ(heartbeat_deadline(spec, state, created), created + 286s);  // tick known, no report
  state.last_beat_at = created + 90s;
  EXPECT_EQ(heartbeat_deadline(spec, state, created), created + 276s);  // from the report
  // Down: one interval + grace after the last tick, whatever the threshold.
  state.open_event_kind = EventKind::downtime;
  EXPECT_EQ(heartbeat_deadline(spec, state, created), created + 166s);
  // Watched again since long after its last tick (reactivated): based there, not before.
  const TimePoint resumed = created + 1000s;
  EXPECT_EQ(heartbeat_deadline(spec, state, resumed), resumed + 66s);
  state.open_event_kind = EventKind::uptime;
  EXPECT_EQ(heartbeat_deadline(spec, state, resumed), resumed + 186s);
}

TEST(HeartbeatRules, ReportsAndSilenceAsResults) {
  const ProbeResult up = beat_result(BeatReport{now_ms(), true, "done", 1500.0});
  EXPECT_TRUE(up.up);
  EXPECT_TRUE(up.error.empty());
  EXPECT_DOUBLE_EQ(up.response_ms, 1500);
  const ProbeResult failed = beat_result(BeatReport{now_ms(), false, "disk full", std::nullopt});
  EXPECT_FALSE(failed.up);
  EXPECT_EQ(failed.error, "reported down: disk full");
  EXPECT_DOUBLE_EQ(failed.response_ms, 0);
  EXPECT_EQ(beat_result(BeatReport{now_ms(), false, "", std::nullopt}).error, "reported down");
  const ProbeResult missed = missed_heartbeat_result();
  EXPECT_FALSE(missed.up);
  EXPECT_EQ(missed.error, "missed heartbeat");
  EXPECT_FALSE(missed.status_code);
}

}  // namespace
}  // namespace vigil

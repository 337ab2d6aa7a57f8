// Heartbeats in the runner (issue 3): deadlines at sub-second intervals in the real runner loop,
// beats handed over as commands from another thread, the ticks collected from the sink.
#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "config/logging.h"
#include "runner/heartbeat.h"
#include "runner/runner.h"
#include "runner/scheduler.h"
#include "support/runner_metrics.h"
#include "support/target_server.h"

namespace vigil {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Every record the runner delivers, with when it arrived.
class Collector {
 public:
  struct Arrival {
    TickRecord record;
    Clock::time_point at;
  };

  TickSink sink() {
    return [this](TickRecord record) {
      std::lock_guard lock(mutex_);
      arrivals_.push_back({std::move(record), Clock::now()});
      changed_.notify_all();
    };
  }

  std::vector<Arrival> of(ServiceId id) const {
    std::lock_guard lock(mutex_);
    std::vector<Arrival> out;
    for (const auto& a : arrivals_)
      if (a.record.tick.service_id == id) out.push_back(a);
    return out;
  }

  bool wait_for(ServiceId id, const std::function<bool(const std::vector<Arrival>&)>& done,
                Clock::duration timeout) const {
    const auto deadline = Clock::now() + timeout;
    std::unique_lock lock(mutex_);
    for (;;) {
      std::vector<Arrival> mine;
      for (const auto& a : arrivals_)
        if (a.record.tick.service_id == id) mine.push_back(a);
      if (done(mine)) return true;
      if (changed_.wait_until(lock, deadline) == std::cv_status::timeout) return false;
    }
  }

 private:
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  std::vector<Arrival> arrivals_;
};

Service heartbeat(ServiceId id, const std::string& name, Millis interval, Millis grace,
                  int threshold = 1) {
  Service s;
  s.id = id;
  s.spec.name = name;
  s.spec.kind = ServiceKind::heartbeat;
  s.spec.interval = interval;
  s.spec.grace = grace;
  s.spec.threshold = threshold;
  s.created_at = now_ms();
  return s;
}

BeatReport report(bool up = true, std::string message = {},
                  std::optional<double> duration = std::nullopt) {
  return BeatReport{now_ms(), up, std::move(message), duration};
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

class HeartbeatTest : public ::testing::Test {
 protected:
  void SetUp() override { set_log_level(LogLevel::warn); }
  prometheus::Registry registry_;
  Collector collector_;
};

TEST_F(HeartbeatTest, ASilentHeartbeatGoesDownAtItsDeadlineAndStaysDownOneTickPerInterval) {
  Runner runner({}, collector_.sink(), registry_);
  const auto started = Clock::now();
  runner.start({heartbeat(1, "silent", 300ms, 50ms)}, {});
  ASSERT_TRUE(collector_.wait_for(
      1, [](const auto& a) { return a.size() >= 3; }, 3s));
  runner.stop();

  const auto ticks = collector_.of(1);
  // Created now: down once interval + grace (350 ms) pass without a report, not before.
  const auto first = ticks[0].at - started;
  EXPECT_GE(first, 340ms);
  EXPECT_LE(first, 700ms);
  EXPECT_FALSE(ticks[0].record.tick.up);
  EXPECT_EQ(ticks[0].record.tick.error, kMissedHeartbeat);
  EXPECT_FALSE(ticks[0].record.tick.status_code);
  EXPECT_EQ(ticks[0].record.opens_event, EventKind::downtime);
  // Then one more down tick every interval + grace, with no new event.
  for (std::size_t i = 1; i < ticks.size(); ++i) {
    EXPECT_FALSE(ticks[i].record.tick.up);
    EXPECT_FALSE(ticks[i].record.opens_event);
    const auto gap = ticks[i].at - ticks[i - 1].at;
    EXPECT_GE(gap, 300ms);
    EXPECT_LE(gap, 600ms);
    EXPECT_EQ(ticks[i].record.metric_after.down_count, static_cast<std::int64_t>(i + 1));
  }
}

TEST_F(HeartbeatTest, BeatsKeepItUpThenSilenceTakesItDownAndABeatBringsItBack) {
  Runner runner({}, collector_.sink(), registry_);
  runner.start({heartbeat(1, "job", 300ms, 50ms)}, {});
  // Beating every 100 ms: never missed.
  for (int i = 0; i < 8; ++i) {
    runner.record_beat(1, report(true, "run " + std::to_string(i), 12.5));
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(collector_.wait_for(
      1, [](const auto& a) { return a.size() >= 8; }, 2s));
  auto ticks = collector_.of(1);
  for (const auto& t : ticks) EXPECT_TRUE(t.record.tick.up) << t.record.tick.error;
  EXPECT_EQ(ticks.front().record.opens_event, EventKind::uptime);
  EXPECT_EQ(ticks.back().record.tick.message, "run 7");
  EXPECT_DOUBLE_EQ(ticks.back().record.tick.response_ms, 12.5);

  // Silent: down once the deadline (last beat + 350 ms) passes.
  const auto silent_from = Clock::now();
  ASSERT_TRUE(collector_.wait_for(
      1, [](const auto& a) { return !a.back().record.tick.up; }, 2s));
  ticks = collector_.of(1);
  EXPECT_EQ(ticks.size(), 9u);
  EXPECT_EQ(ticks.back().record.tick.error, kMissedHeartbeat);
  EXPECT_EQ(ticks.back().record.opens_event, EventKind::downtime);
  EXPECT_LE(ticks.back().at - silent_from, 700ms);

  // A beat: up at once, the downtime closes.
  const auto beat_at = Clock::now();
  runner.record_beat(1, report());
  ASSERT_TRUE(collector_.wait_for(
      1, [](const auto& a) { return a.back().record.tick.up; }, 2s));
  ticks = collector_.of(1);
  EXPECT_EQ(ticks.back().record.opens_event, EventKind::uptime);
  EXPECT_LE(ticks.back().at - beat_at, 200ms);
  runner.stop();
  EXPECT_GT(gauge(registry_, runner, "vigil_heartbeat_last_seen_timestamp_seconds", "job"),
            double(to_unix_ms(now_ms())) / 1000.0 - 5);
  EXPECT_EQ(gauge(registry_, runner, "vigil_service_up", "job"), 1);
  EXPECT_EQ(gauge(registry_, runner, "probe_success", "job"), 1);
}

TEST_F(HeartbeatTest, AFailureReportIsDownAtOnceWhateverTheThreshold) {
  Runner runner({}, collector_.sink(), registry_);
  runner.start({heartbeat(1, "job", 2000ms, 100ms, 5)}, {});
  runner.record_beat(1, report(true));
  ASSERT_TRUE(collector_.wait_for(
      1, [](const auto& a) { return a.size() == 1; }, 2s));
  const auto failed_at = Clock::now();
  runner.record_beat(1, report(false, "exit code 3", 40));
  ASSERT_TRUE(collector_.wait_for(
      1, [](const auto& a) { return a.size() == 2; }, 2s));
  runner.stop();
  const auto ticks = collector_.of(1);
  EXPECT_LE(ticks[1].at - failed_at, 200ms);
  EXPECT_FALSE(ticks[1].record.tick.up);
  EXPECT_EQ(ticks[1].record.tick.error, "reported down: exit code 3");
  EXPECT_EQ(ticks[1].record.tick.message, "exit code 3");
  EXPECT_DOUBLE_EQ(ticks[1].record.tick.response_ms, 40);
  EXPECT_EQ(ticks[1].record.opens_event, EventKind::downtime);
}

TEST_F(HeartbeatTest, ThresholdThreeNeedsThreeMissedIntervals) {
  Runner runner({}, collector_.sink(), registry_);
  runner.start({heartbeat(1, "lenient", 200ms, 0ms, 3), heartbeat(2, "strict", 200ms, 0ms, 1)}, {});
  const auto beat_at = Clock::now();
  runner.record_beat(1, report());
  runner.record_beat(2, report());
  ASSERT_TRUE(collector_.wait_for(
      1, [](const auto& a) { return a.size() == 2 && !a.back().record.tick.up; }, 3s));
  ASSERT_TRUE(collector_.wait_for(
      2, [](const auto& a) { return a.size() >= 2 && !a.back().record.tick.up; }, 3s));
  runner.stop();
  // One missed interval takes the strict one down; the lenient one waits for three.
  const auto strict_down = collector_.of(2)[1].at - beat_at;
  const auto lenient_down = collector_.of(1)[1].at - beat_at;
  EXPECT_GE(strict_down, 190ms);
  EXPECT_LE(strict_down, 450ms);
  EXPECT_GE(lenient_down, 590ms);
  EXPECT_LE(lenient_down, 900ms);
}

TEST_F(HeartbeatTest, ALateBeatBeforeTheDeadlineIsJustUp) {
  Runner runner({}, collector_.sink(), registry_);
  runner.start({heartbeat(1, "late", 200ms, 150ms)}, {});
  runner.record_beat(1, report());
  for (int i = 0; i < 4; ++i) {
    std::this_thread::sleep_for(280ms);  // late by 80 ms, inside the 150 ms grace
    runner.record_beat(1, report());
  }
  std::this_thread::sleep_for(50ms);
  runner.stop();
  const auto ticks = collector_.of(1);
  ASSERT_EQ(ticks.size(), 5u);
  for (const auto& t : ticks) EXPECT_TRUE(t.record.tick.up) << t.record.tick.error;
}

TEST_F(HeartbeatTest, AfterARestartASilentHeartbeatIsDownRightAwayAndARecentOneIsNot) {
  Runner runner({}, collector_.sink(), registry_);
  ServiceRuntime went_silent;  // up when vigil stopped, last report 10 s ago
  went_silent.metric.add(true, 5);
  went_silent.open_event_kind = EventKind::uptime;
  went_silent.open_event_started = now_ms() - 60s;
  went_silent.last_tick_at = now_ms() - 10s;
  went_silent.last_beat_at = went_silent.last_tick_at;
  ServiceRuntime recent = went_silent;  // reported 100 ms ago
  recent.last_tick_at = now_ms() - 100ms;
  recent.last_beat_at = recent.last_tick_at;
  Service old_one = heartbeat(1, "went-silent", 1000ms, 100ms);
  old_one.created_at = now_ms() - 3600s;
  Service recent_one = heartbeat(2, "recent", 1000ms, 100ms);
  recent_one.created_at = old_one.created_at;
  const auto started = Clock::now();
  runner.start({old_one, recent_one}, {{1, went_silent}, {2, recent}});
  ASSERT_TRUE(collector_.wait_for(
      1, [](const auto& a) { return !a.empty(); }, 2s));
  const auto down = collector_.of(1)[0];
  EXPECT_LE(down.at - started, 200ms);
  EXPECT_FALSE(down.record.tick.up);
  EXPECT_EQ(down.record.tick.error, kMissedHeartbeat);
  EXPECT_EQ(down.record.opens_event, EventKind::downtime);
  EXPECT_EQ(down.record.metric_after.tick_count, 2);  // continues the stored metric
  // Its last-seen metric comes from the stored report.
  EXPECT_NEAR(
      gauge(registry_, runner, "vigil_heartbeat_last_seen_timestamp_seconds", "went-silent"),
      double(to_unix_ms(*went_silent.last_beat_at)) / 1000.0, 0.001);
  std::this_thread::sleep_for(500ms);
  runner.stop();
  EXPECT_TRUE(collector_.of(2).empty());
}

TEST_F(HeartbeatTest, NeverReportedHeartbeatCountsFromItsCreation) {
  Runner runner({}, collector_.sink(), registry_);
  Service stale = heartbeat(1, "never", 1000ms, 0ms);
  stale.created_at = now_ms() - 5s;
  const auto started = Clock::now();
  runner.start({stale}, {});
  ASSERT_TRUE(collector_.wait_for(
      1, [](const auto& a) { return !a.empty(); }, 2s));
  EXPECT_LE(collector_.of(1)[0].at - started, 200ms);
  runner.stop();
}

TEST_F(HeartbeatTest, DeadlinesFireWhileProbesFillEveryConcurrencySlot) {
  test::TargetServer target;
  RunnerOptions options;
  options.max_concurrency = 1;
  Runner runner(options, collector_.sink(), registry_);
  // A probe that starts within the first 20 ms and then holds the only slot for 2 s.
  Service hanging;
  hanging.id = 2;
  for (int i = 0; hanging.spec.name.empty(); ++i)
    if (first_probe_offset("hanging-" + std::to_string(i), 2000ms) < 20ms)
      hanging.spec.name = "hanging-" + std::to_string(i);
  hanging.spec.url = target.url("/hang?ms=3000");
  hanging.spec.interval = 2000ms;
  hanging.spec.timeout = 2000ms;
  const auto started = Clock::now();
  runner.start({heartbeat(1, "beat", 200ms, 0ms), hanging}, {});
  ASSERT_TRUE(collector_.wait_for(
      1, [](const auto& a) { return a.size() >= 3; }, 3s));
  EXPECT_LE(collector_.of(1)[2].at - started, 1000ms);
  EXPECT_EQ(runner.in_flight(), 1u);  // the probe still holds the slot
  runner.stop();
}

TEST_F(HeartbeatTest, ChangesAndRemovalFollowTheCommands) {
  Runner runner({}, collector_.sink(), registry_);
  runner.start({}, {});
  // Created while running (as the API does): a long interval, so no tick for now.
  runner.upsert_service(heartbeat(1, "job", 10'000ms, 0ms));
  runner.record_beat(1, report());
  ASSERT_TRUE(collector_.wait_for(
      1, [](const auto& a) { return a.size() == 1; }, 2s));
  // A shorter interval moves the deadline: down 200 ms after the last report.
  Service faster = heartbeat(1, "job", 200ms, 0ms);
  runner.upsert_service(faster);
  ASSERT_TRUE(collector_.wait_for(
      1, [](const auto& a) { return a.size() == 2 && !a.back().record.tick.up; }, 2s));
  // Beats for services that are not heartbeats of this runner are ignored.
  runner.record_beat(99, report());
  runner.remove_service(1);
  runner.record_beat(1, report());
  std::this_thread::sleep_for(500ms);
  runner.stop();
  EXPECT_EQ(collector_.of(1).size(), 2u);
  EXPECT_TRUE(collector_.of(99).empty());
  EXPECT_EQ(gauge(registry_, runner, "vigil_heartbeat_last_seen_timestamp_seconds", "job"), -1);
}

TEST_F(HeartbeatTest, ADeactivatedHeartbeatIgnoresBeatsAndContinuesItsHistoryWhenReactivated) {
  const Service job = heartbeat(1, "paused-job", 10'000ms, 0ms);
  Service off = job;
  off.active = false;
  Runner runner({}, collector_.sink(), registry_);
  runner.start({job}, {});
  runner.record_beat(1, report(true, "first"));
  ASSERT_TRUE(collector_.wait_for(
      1, [](const auto& a) { return a.size() == 1; }, 2s));
  runner.upsert_service(off);
  runner.record_beat(1, report(true, "while off"));  // not a heartbeat of this runner now
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(gauge(registry_, runner, "vigil_heartbeat_last_seen_timestamp_seconds", "paused-job"),
            -1);
  runner.upsert_service(job);
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(collector_.of(1).size(), 1u);
  // Reactivated, it shows its kept last report before any new one.
  EXPECT_GT(gauge(registry_, runner, "vigil_heartbeat_last_seen_timestamp_seconds", "paused-job"),
            0);
  runner.record_beat(1, report(true, "second"));
  ASSERT_TRUE(collector_.wait_for(
      1, [](const auto& a) { return a.size() >= 2; }, 2s));
  runner.stop();
  const auto arrivals = collector_.of(1);
  ASSERT_EQ(arrivals.size(), 2u);
  EXPECT_EQ(arrivals[1].record.tick.message, "second");
  EXPECT_EQ(arrivals[1].record.metric_after.tick_count, 2);
  EXPECT_FALSE(arrivals[1].record.opens_event.has_value());  // still the first uptime event
}

TEST_F(HeartbeatTest, AHeartbeatReactivatedAfterAPauseGetsAFullPeriodToReportAgain) {
  const Service job = heartbeat(1, "paused-job", 300ms, 50ms);
  Service off = job;
  off.active = false;
  Runner runner({}, collector_.sink(), registry_);
  runner.start({job}, {});
  runner.record_beat(1, report(true, "before the pause"));
  ASSERT_TRUE(collector_.wait_for(
      1, [](const auto& a) { return a.size() == 1; }, 2s));
  runner.upsert_service(off);
  std::this_thread::sleep_for(800ms);  // off for longer than interval + grace
  const auto resumed = Clock::now();
  runner.upsert_service(job);
  // Silent since: down one interval + grace (350 ms) after the reactivation, not at once.
  ASSERT_TRUE(collector_.wait_for(
      1, [](const auto& a) { return a.size() >= 2; }, 3s));
  runner.stop();
  const auto ticks = collector_.of(1);
  EXPECT_FALSE(ticks[1].record.tick.up);
  EXPECT_EQ(ticks[1].record.tick.error, kMissedHeartbeat);
  EXPECT_GE(ticks[1].at - resumed, 340ms);
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

// Failure/success thresholds and the retry interval in the real runner against a real
// target: events follow the thresholds while every tick stays raw, and a failing service is
// probed again sooner until it is down.
#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <condition_variable>
#include <functional>
#include <mutex>
#include <vector>

#include "runner/runner.h"
#include "runner/scheduler.h"
#include "support/manual_clock.h"
#include "support/target_server.h"
#include "support/tick_collector.h"

namespace vigil {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

using Records = test::TickCollector;

TEST(RunnerThresholds, EventsFollowTheThresholdsWhileTicksStayRaw) {
  test::TargetServer target;
  prometheus::Registry registry;
  Records records;
  test::ManualClock clock;
  RunnerOptions options;
  options.clock = clock.runner_clock();
  Runner runner(options, records.sink(), registry);
  Service s;
  s.id = 1;
  s.spec.name = "flappy";
  s.spec.url = target.url("/switch");
  s.spec.interval = 100ms;
  s.spec.timeout = 5000ms;  // a loaded machine must not make an up probe fail
  s.spec.probe.failure_threshold = 3;
  s.spec.probe.success_threshold = 2;
  runner.start({s}, {});
  ASSERT_GT(first_probe_offset("flappy", 100ms), 0ns);

  // One probe per step of the clock: 3 up, 5 down, 3 up.
  std::size_t ticks = 0;
  const auto step = [&] {
    ASSERT_TRUE(test::advance(clock, runner, 100ms));
    ++ticks;
    ASSERT_TRUE(records.wait_for_all([&](const auto& rs) { return rs.size() >= ticks; }, 30s));
  };
  for (int i = 0; i < 3; ++i) step();
  target.set_switch_up(false);
  for (int i = 0; i < 5; ++i) step();
  target.set_switch_up(true);
  for (int i = 0; i < 3; ++i) step();
  runner.stop();

  const auto rs = records.all();
  ASSERT_EQ(rs.size(), 11u);
  std::vector<std::size_t> opened_at;
  std::vector<EventKind> kinds;
  for (std::size_t i = 0; i < rs.size(); ++i) {
    EXPECT_EQ(rs[i].metric_after.tick_count, static_cast<std::int64_t>(i + 1));
    EXPECT_EQ(rs[i].tick.up, i < 3 || i >= 8) << i;  // every raw tick as it was
    if (!rs[i].opens_event) continue;
    opened_at.push_back(i);
    kinds.push_back(*rs[i].opens_event);
  }
  // Uptime opened at the second up tick, downtime at the third down tick in a row, uptime again
  // at the second up tick in a row.
  EXPECT_EQ(kinds,
            (std::vector<EventKind>{EventKind::uptime, EventKind::downtime, EventKind::uptime}));
  EXPECT_EQ(opened_at, (std::vector<std::size_t>{1, 5, 9}));
  EXPECT_EQ(rs.back().metric_after.down_count, 5);
}

TEST(RunnerThresholds, RetryIntervalProbesSoonerUntilDown) {
  test::TargetServer target;
  prometheus::Registry registry;
  Records records;
  test::ManualClock clock;
  RunnerOptions options;
  options.clock = clock.runner_clock();
  Runner runner(options, records.sink(), registry);
  Service s;
  s.id = 1;
  s.spec.name = "retrying";
  s.spec.url = target.url("/status/500");
  s.spec.interval = 1000ms;
  s.spec.timeout = 1000ms;
  s.spec.probe.failure_threshold = 3;
  s.spec.probe.retry_interval = 100ms;
  runner.start({s}, {});
  const auto count = [&] { return records.all().size(); };
  const auto wait_for = [&](std::size_t n) {
    return records.wait_for_all([n](const auto& rs) { return rs.size() >= n; }, 30s);
  };
  // The first slot, then each probe 100 ms after the last failure (not a moment before), down
  // at the third failure, then back to the 1 s interval.
  ASSERT_TRUE(test::advance(clock, runner,
                            std::chrono::ceil<Millis>(first_probe_offset("retrying", 1000ms))));
  ASSERT_TRUE(wait_for(1));
  for (std::size_t n = 2; n <= 3; ++n) {
    ASSERT_TRUE(test::advance(clock, runner, 99ms));
    EXPECT_EQ(count(), n - 1);
    ASSERT_TRUE(test::advance(clock, runner, 1ms));
    ASSERT_TRUE(wait_for(n));
  }
  ASSERT_TRUE(test::advance(clock, runner, 999ms));
  EXPECT_EQ(count(), 3u);
  ASSERT_TRUE(test::advance(clock, runner, 1ms));
  ASSERT_TRUE(wait_for(4));
  runner.stop();

  const auto rs = records.all();
  EXPECT_EQ(rs[1].tick.ts - rs[0].tick.ts, 100ms);
  EXPECT_EQ(rs[2].tick.ts - rs[1].tick.ts, 100ms);
  EXPECT_EQ(rs[3].tick.ts - rs[2].tick.ts, 1000ms);
  EXPECT_FALSE(rs[0].opens_event);
  EXPECT_FALSE(rs[1].opens_event);
  EXPECT_EQ(rs[2].opens_event, EventKind::downtime);
  EXPECT_FALSE(rs[3].opens_event);
}

}  // namespace
}  // namespace vigil

// Failure/success thresholds and the retry interval (issue 4) in the real runner against a real
// target: events follow the thresholds while every tick stays raw, and a failing service is
// probed again sooner until it is down.
#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <condition_variable>
#include <functional>
#include <mutex>
#include <vector>

#include "runner/runner.h"
#include "support/target_server.h"

namespace vigil {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class Records {
 public:
  TickSink sink() {
    return [this](TickRecord record) {
      std::lock_guard lock(mutex_);
      records_.push_back(std::move(record));
      changed_.notify_all();
    };
  }
  bool wait_for(const std::function<bool(const std::vector<TickRecord>&)>& done,
                Clock::duration timeout) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return done(records_); });
  }
  std::vector<TickRecord> all() {
    std::lock_guard lock(mutex_);
    return records_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<TickRecord> records_;
};

// How many of the last records are down (or up) in a row.
std::size_t trailing(const std::vector<TickRecord>& rs, bool up) {
  std::size_t n = 0;
  for (auto it = rs.rbegin(); it != rs.rend() && it->tick.up == up; ++it) ++n;
  return n;
}

TEST(RunnerThresholds, EventsFollowTheThresholdsWhileTicksStayRaw) {
  test::TargetServer target;
  prometheus::Registry registry;
  Records records;
  Runner runner({}, records.sink(), registry);
  Service s;
  s.id = 1;
  s.spec.name = "flappy";
  s.spec.url = target.url("/switch");
  s.spec.interval = 100ms;
  s.spec.timeout = 100ms;
  s.spec.probe.failure_threshold = 3;
  s.spec.probe.success_threshold = 2;
  runner.start({s}, {});

  ASSERT_TRUE(records.wait_for([](const auto& rs) { return rs.size() >= 3; }, 3s));
  target.set_switch_up(false);
  ASSERT_TRUE(records.wait_for([](const auto& rs) { return trailing(rs, false) >= 5; }, 3s));
  target.set_switch_up(true);
  ASSERT_TRUE(records.wait_for([](const auto& rs) { return trailing(rs, true) >= 3; }, 3s));
  runner.stop();

  const auto rs = records.all();
  std::vector<std::size_t> opened_at;
  std::vector<EventKind> kinds;
  for (std::size_t i = 0; i < rs.size(); ++i) {
    EXPECT_EQ(rs[i].metric_after.tick_count, static_cast<std::int64_t>(i + 1));
    if (!rs[i].opens_event) continue;
    opened_at.push_back(i);
    kinds.push_back(*rs[i].opens_event);
  }
  ASSERT_EQ(kinds,
            (std::vector<EventKind>{EventKind::uptime, EventKind::downtime, EventKind::uptime}));
  // Uptime opened at the second up tick, downtime at the third down tick in a row, uptime again
  // at the second up tick in a row; the ticks before each were stored as they were.
  EXPECT_EQ(opened_at[0], 1u);
  for (std::size_t back = 0; back < 3; ++back) EXPECT_FALSE(rs[opened_at[1] - back].tick.up);
  EXPECT_TRUE(rs[opened_at[1] - 3].tick.up);
  EXPECT_TRUE(rs[opened_at[2]].tick.up);
  EXPECT_TRUE(rs[opened_at[2] - 1].tick.up);
  EXPECT_FALSE(rs[opened_at[2] - 2].tick.up);
  std::int64_t down_ticks = 0;
  for (const auto& r : rs) down_ticks += r.tick.up ? 0 : 1;
  EXPECT_GE(down_ticks, 5);  // every raw down tick is there
  EXPECT_EQ(rs.back().metric_after.down_count, down_ticks);
}

TEST(RunnerThresholds, RetryIntervalProbesSoonerUntilDown) {
  test::TargetServer target;
  prometheus::Registry registry;
  Records records;
  Runner runner({}, records.sink(), registry);
  Service s;
  s.id = 1;
  s.spec.name = "retrying";
  s.spec.url = target.url("/status/500");
  s.spec.interval = 1000ms;
  s.spec.timeout = 500ms;
  s.spec.probe.failure_threshold = 3;
  s.spec.probe.retry_interval = 100ms;
  runner.start({s}, {});
  ASSERT_TRUE(records.wait_for([](const auto& rs) { return rs.size() >= 4; }, 4s));
  runner.stop();

  const auto rs = records.all();
  // Two retries 100 ms apart, down at the third failure, then back to the 1 s interval.
  const Millis retry1 = rs[1].tick.ts - rs[0].tick.ts;
  const Millis retry2 = rs[2].tick.ts - rs[1].tick.ts;
  const Millis regular = rs[3].tick.ts - rs[2].tick.ts;
  EXPECT_GE(retry1, 80ms);
  EXPECT_LE(retry1, 300ms);
  EXPECT_GE(retry2, 80ms);
  EXPECT_LE(retry2, 300ms);
  EXPECT_GE(regular, 900ms);
  EXPECT_FALSE(rs[0].opens_event);
  EXPECT_FALSE(rs[1].opens_event);
  EXPECT_EQ(rs[2].opens_event, EventKind::downtime);
  EXPECT_FALSE(rs[3].opens_event);
}

}  // namespace
}  // namespace vigil

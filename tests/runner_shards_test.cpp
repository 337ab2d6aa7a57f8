// A sharded runner (a member of a cluster) probes only the services of the shards it is
// assigned, takes a shard's services over with their stored state, hands them back at once, and
// stops probing by itself when its assignment's lease runs out. Real probes of a local target.
#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <chrono>
#include <set>
#include <string>
#include <vector>

#include "core/shards.h"
#include "runner/runner.h"
#include "support/eventually.h"
#include "support/target_server.h"
#include "support/tick_collector.h"

namespace vigil {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class RunnerShards : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { target_ = new test::TargetServer(); }
  static void TearDownTestSuite() {
    delete target_;
    target_ = nullptr;
  }

  // Services 1..count, each in shard id % kShardCount, probed every 50 ms.
  std::vector<Service> services(int count) const {
    std::vector<Service> all;
    for (int id = 1; id <= count; ++id)
      all.push_back(test::probed_service(id, "svc-" + std::to_string(id),
                                         target_->url("/hits/svc-" + std::to_string(id)), 50ms));
    return all;
  }

  // The services that ticked after `since` arrivals were seen.
  std::set<ServiceId> ticked_after(std::size_t since) const {
    std::set<ServiceId> ids;
    const auto all = collector_.all();
    for (std::size_t i = since; i < all.size(); ++i) ids.insert(all[i].tick.service_id);
    return ids;
  }

  static inline test::TargetServer* target_ = nullptr;
  prometheus::Registry registry_;
  test::TickCollector collector_;
};

TEST_F(RunnerShards, ProbesOnlyTheServicesOfItsShardsAndHandsThemOverAtOnce) {
  RunnerOptions options;
  options.sharded = true;
  Runner runner(options, collector_.sink(), registry_);
  // Services 1..130: shards 1 and 2 hold 1, 65, 129 and 2, 66, 130.
  runner.start(services(130), {});
  EXPECT_FALSE(runner.probes(1));

  // Nothing is probed before the first assignment.
  std::this_thread::sleep_for(200ms);  // four intervals, to show that nothing comes
  EXPECT_TRUE(collector_.all().empty());

  ServiceRuntime stored;
  stored.metric.tick_count = 41;
  stored.metric.up_count = 40;
  stored.metric.down_count = 1;
  stored.open_event_kind = EventKind::uptime;
  stored.open_event_started = from_unix_ms(1'000);
  stored.last_tick_at = from_unix_ms(2'000);
  ASSERT_EQ(
      runner
          .assign_shards(
              {.shards = {1, 2}, .valid_until = Clock::now() + 60s, .runtime = {{65, stored}}})
          .wait_for(10s),
      std::future_status::ready);
  EXPECT_TRUE(runner.probes(65));
  EXPECT_FALSE(runner.probes(3));
  const std::set<ServiceId> owned{1, 2, 65, 66, 129, 130};
  ASSERT_TRUE(collector_.wait_for_all(
      [&](const std::vector<TickRecord>& all) {
        std::set<ServiceId> seen;
        for (const auto& record : all) seen.insert(record.tick.service_id);
        return seen == owned;
      },
      10s));
  // The taken-over service continues the stored metric and open event.
  const auto of_65 = collector_.of(65);
  ASSERT_FALSE(of_65.empty());
  EXPECT_EQ(of_65.front().metric_after.tick_count, 42);
  EXPECT_FALSE(of_65.front().opens_event.has_value());
  EXPECT_EQ(collector_.of(1).front().metric_after.tick_count, 1);  // no stored state: fresh

  // Shard 1 goes elsewhere, shard 3 comes: 1, 65, 129 stop, 3, 67 start.
  ASSERT_EQ(
      runner.assign_shards({.shards = {2, 3}, .valid_until = Clock::now() + 60s}).wait_for(10s),
      std::future_status::ready);
  const std::size_t mark = collector_.all().size();
  ASSERT_TRUE(collector_.wait_for_all(
      [&](const std::vector<TickRecord>& all) {
        std::set<ServiceId> seen;
        for (std::size_t i = mark; i < all.size(); ++i) seen.insert(all[i].tick.service_id);
        return seen.count(3) && seen.count(67) && seen.count(2) && seen.count(130) &&
               all.size() > mark + 40;
      },
      10s));
  const auto after = ticked_after(mark);
  EXPECT_EQ(after, (std::set<ServiceId>{2, 3, 66, 67, 130}));
  runner.stop();
}

TEST_F(RunnerShards, StopsProbingWhenTheLeaseRunsOutUnrenewed) {
  RunnerOptions options;
  options.sharded = true;
  Runner runner(options, collector_.sink(), registry_);
  runner.start(services(10), {});
  const auto until = Clock::now() + 1500ms;
  ASSERT_EQ(runner.assign_shards({.shards = {5}, .valid_until = until}).wait_for(10s),
            std::future_status::ready);
  ASSERT_TRUE(collector_.wait_for_count(5, 3, 10s));
  ASSERT_TRUE(test::eventually([&] { return !runner.probes(5); }, 10s));
  // No probe started at or after the lease's end: every tick was stamped before it (a probe
  // started just before may finish just after).
  const auto last = collector_.arrivals(5).back();
  EXPECT_LT(last.at, until + 500ms);
  const std::size_t count = collector_.count(5);
  std::this_thread::sleep_for(300ms);  // six intervals: none may tick
  EXPECT_EQ(collector_.count(5), count);

  // Renewed: probing resumes, continuing what the runner kept.
  ASSERT_EQ(runner.assign_shards({.shards = {5}, .valid_until = Clock::now() + 60s}).wait_for(10s),
            std::future_status::ready);
  ASSERT_TRUE(collector_.wait_for_count(5, count + 2, 10s));
  EXPECT_EQ(collector_.of(5).back().metric_after.tick_count,
            static_cast<std::int64_t>(collector_.count(5)));
  runner.stop();
}

TEST_F(RunnerShards, AServiceAddedToAShardElsewhereWaitsForItsShard) {
  RunnerOptions options;
  options.sharded = true;
  Runner runner(options, collector_.sink(), registry_);
  runner.start({}, {});
  ASSERT_EQ(runner.assign_shards({.shards = {7}, .valid_until = Clock::now() + 60s}).wait_for(10s),
            std::future_status::ready);
  runner.upsert_service(services(8).back());   // id 8: shard 8, not ours
  runner.upsert_service(services(71).back());  // id 71: shard 7
  ASSERT_TRUE(collector_.wait_for_count(71, 2, 10s));
  EXPECT_EQ(collector_.count(8), 0u);
  ASSERT_EQ(
      runner.assign_shards({.shards = {7, 8}, .valid_until = Clock::now() + 60s}).wait_for(10s),
      std::future_status::ready);
  ASSERT_TRUE(collector_.wait_for_count(8, 2, 10s));
  runner.stop();
}

TEST(ShardMath, EveryShardHasOneOwnerAndAJoinMovesOnlyTheJoinersShare) {
  const std::vector<std::string> two{"eu-a", "eu-b"};
  const std::vector<std::string> three{"eu-a", "eu-b", "eu-c"};
  std::size_t total = 0;
  for (const auto& member : two) total += shards_of_member(member, two).size();
  EXPECT_EQ(total, static_cast<std::size_t>(kShardCount));
  std::size_t moved = 0;
  for (int shard = 0; shard < kShardCount; ++shard) {
    const auto before = shard_owner(shard, two);
    const auto after = shard_owner(shard, three);
    if (before != after) {
      EXPECT_EQ(after, "eu-c") << shard;  // only to the joiner
      ++moved;
    }
  }
  // About a third moves; rendezvous hashing is not exact, so a loose bound.
  EXPECT_GT(moved, 10u);
  EXPECT_LT(moved, 35u);
  for (const auto& member : three) EXPECT_GE(shards_of_member(member, three).size(), 10u);
  EXPECT_EQ(shard_of(65), 1);
  EXPECT_EQ(shard_of(64), 0);
  EXPECT_EQ(shard_owner(3, {}), "");
}

}  // namespace
}  // namespace vigil

#include <gtest/gtest.h>

#include <array>
#include <string>

#include "runner/scheduler.h"

namespace vigil {
namespace {

using namespace std::chrono_literals;

// first_probe_offset("payments", 1 s) as computed when the hash was chosen.
constexpr std::int64_t kPaymentsOffsetNs = 396'250'848;

TEST(Scheduler, PopsInDueOrderWhateverTheInsertionOrder) {
  Scheduler scheduler;
  const SteadyTime t0{};
  scheduler.schedule(3, t0 + 30ms, 1);
  scheduler.schedule(1, t0 + 10ms, 1);
  scheduler.schedule(5, t0 + 50ms, 1);
  scheduler.schedule(2, t0 + 20ms, 7);
  scheduler.schedule(4, t0 + 40ms, 1);

  std::vector<ServiceId> order;
  while (auto due = scheduler.pop_due(t0 + 1h)) {
    order.push_back(due->service);
    if (due->service == 2) {
      EXPECT_EQ(due->generation, 7u);
    }
  }
  EXPECT_EQ(order, (std::vector<ServiceId>{1, 2, 3, 4, 5}));
  EXPECT_FALSE(scheduler.peek());
}

TEST(Scheduler, PopDueReturnsOnlyEntriesDueAtNow) {
  Scheduler scheduler;
  const SteadyTime t0{};
  scheduler.schedule(1, t0 + 100ms, 1);
  scheduler.schedule(2, t0 + 200ms, 1);

  EXPECT_FALSE(scheduler.pop_due(t0 + 99ms));
  ASSERT_TRUE(scheduler.peek());
  EXPECT_EQ(scheduler.peek()->service, 1);
  EXPECT_EQ(scheduler.peek()->due, t0 + 100ms);

  auto first = scheduler.pop_due(t0 + 100ms);  // due exactly now counts as due
  ASSERT_TRUE(first);
  EXPECT_EQ(first->service, 1);
  EXPECT_FALSE(scheduler.pop_due(t0 + 150ms));
  auto second = scheduler.pop_due(t0 + 250ms);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->service, 2);
  EXPECT_FALSE(scheduler.pop_due(t0 + 1h));
}

TEST(FirstProbeOffset, SpreadsAThousandNamesEvenlyOverTheInterval) {
  const std::chrono::nanoseconds interval = 60s;
  std::array<int, 10> per_tenth{};
  for (int i = 0; i < 1000; ++i) {
    const auto offset = first_probe_offset("service-" + std::to_string(i), interval);
    ASSERT_GE(offset, 0ns);
    ASSERT_LT(offset, interval);
    ++per_tenth[static_cast<std::size_t>(offset * 10 / interval)];
  }
  for (std::size_t tenth = 0; tenth < per_tenth.size(); ++tenth) {
    EXPECT_GE(per_tenth[tenth], 50) << "tenth " << tenth;
    EXPECT_LE(per_tenth[tenth], 150) << "tenth " << tenth;
  }
}

TEST(FirstProbeOffset, IsStableAndProportionalToTheInterval) {
  const auto a = first_probe_offset("payments", 60s);
  EXPECT_EQ(a, first_probe_offset("payments", 60s));
  EXPECT_NE(a, first_probe_offset("payments-eu", 60s));
  // The same fraction of any interval: the phase of a service does not jump when its interval
  // is rescaled.
  const auto b = first_probe_offset("payments", 6s);
  EXPECT_NEAR(double(a.count()) / 10.0, double(b.count()), 1.0);
  // Pinned: the hash must not depend on the standard library or the build, or every service's
  // phase would move on upgrade.
  EXPECT_EQ(first_probe_offset("payments", 1'000'000'000ns).count(), kPaymentsOffsetNs);
}

TEST(FirstProbeOffset, DegenerateIntervalsGiveZero) {
  EXPECT_EQ(first_probe_offset("x", 0ns), 0ns);
  EXPECT_EQ(first_probe_offset("x", -5s), 0ns);
  EXPECT_EQ(first_probe_offset("x", 1ns), 0ns);
}

}  // namespace
}  // namespace vigil

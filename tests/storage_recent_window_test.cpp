// Where summarize_all_recent and count_all_recent cut a window (storage/recent_window.h), the
// same on every backend: whole days, the closed hours around them, and the live hours at the
// end; and what they keep of a summary between calls.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <utility>
#include <vector>

#include "core/model.h"
#include "storage/recent_window.h"

namespace vigil {
namespace {

using namespace std::chrono_literals;

constexpr std::int64_t kHourMsForCut = 3'600'000;
constexpr std::int64_t kDayMsForCut = 24 * kHourMsForCut;
// A UTC midnight (2023-11-14).
constexpr std::int64_t kMidnight = 19'675 * kDayMsForCut;

TimePoint at_ms(std::int64_t ms) { return from_unix_ms(ms); }

TEST(RecentWindowCut, AWindowShorterThanADayIsReadWhole) {
  EXPECT_FALSE(cut_recent_window(12h, at_ms(kMidnight + 37 * 60'000)));
  EXPECT_FALSE(cut_recent_window(Millis(kDayMsForCut - 1), at_ms(kMidnight)));
}

TEST(RecentWindowCut, AWeekIsWholeDaysWithClosedHoursAroundThemAndTheLastTwoHoursLive) {
  const std::int64_t now = kMidnight + 10 * kHourMsForCut + 30 * 60'000;  // 10:30
  const auto cut = cut_recent_window(7 * 24h, at_ms(now));
  ASSERT_TRUE(cut);
  EXPECT_EQ(cut->from, kMidnight - 7 * kDayMsForCut + 10 * kHourMsForCut);  // a week ago, 10:00
  EXPECT_EQ(cut->days_from, kMidnight - 6 * kDayMsForCut);
  EXPECT_EQ(cut->days_to, kMidnight);
  EXPECT_EQ(cut->closed_to, kMidnight + 9 * kHourMsForCut);  // 09:00: the previous hour is live
  EXPECT_EQ(cut->live_to, kMidnight + 11 * kHourMsForCut);   // the end of the current hour
  const auto edges = cut->closed_edges();
  EXPECT_EQ(edges[0], std::pair(cut->from, cut->days_from));
  EXPECT_EQ(edges[1], std::pair(kMidnight, kMidnight + 9 * kHourMsForCut));
}

TEST(RecentWindowCut, ADayStartingAtMidnightHasNoWholeDayYet) {
  const std::int64_t now = kMidnight + 30 * 60'000;  // 00:30
  const auto cut = cut_recent_window(24h, at_ms(now));
  ASSERT_TRUE(cut);
  EXPECT_EQ(cut->from, kMidnight - kDayMsForCut);
  EXPECT_EQ(cut->days_from, cut->days_to);
  EXPECT_EQ(cut->closed_to, kMidnight - kHourMsForCut);
  EXPECT_EQ(cut->live_to, kMidnight + kHourMsForCut);
}

TEST(RecentWindowCut, ThePiecesCoverTheWindowFromItsHourOnceAndStartAtMostAnHourEarly) {
  for (const Millis window : {Millis(24h), Millis(25h), Millis(24h * 7), Millis(24h * 30) + 1min})
    for (std::int64_t now = kMidnight; now < kMidnight + 2 * kDayMsForCut; now += 7 * 60'000 + 1) {
      const auto cut = cut_recent_window(window, at_ms(now));
      ASSERT_TRUE(cut);
      EXPECT_LE(cut->from, now - window.count());
      EXPECT_GT(cut->from, now - window.count() - kHourMsForCut);
      std::vector<std::pair<std::int64_t, std::int64_t>> pieces = {{cut->days_from, cut->days_to},
                                                                   {cut->closed_to, cut->live_to}};
      for (const auto& edge : cut->closed_edges()) pieces.push_back(edge);
      std::erase_if(pieces, [](const auto& piece) { return piece.first >= piece.second; });
      std::sort(pieces.begin(), pieces.end());
      std::int64_t covered_to = cut->from;
      for (const auto& [a, b] : pieces) {
        EXPECT_EQ(a, covered_to) << "window " << window.count() << " now " << now;
        covered_to = b;
      }
      EXPECT_EQ(covered_to, cut->live_to);
      EXPECT_GT(cut->live_to, now);
      EXPECT_LE(cut->live_to, now + kHourMsForCut);
      EXPECT_EQ(cut->days_from % kDayMsForCut, 0);
      EXPECT_EQ(cut->days_to % kDayMsForCut, 0);
    }
}

TEST(PackedSummary, UnpacksToTheSummaryItPacked) {
  RollupSummary summary;
  for (const double ms : {0.05, 3.0, 3.1, 250.0, 200'000.0}) {
    Tick tick;
    tick.up = ms < 1000;
    tick.response_ms = ms;
    if (ms == 3.0) tick.phases = PhaseTimings{0.5, 1.0, 0.25, 1.0, 0.25};
    summary.add(tick);
  }
  const RollupSummary back = PackedSummary::pack(summary).unpack();
  EXPECT_EQ(back.count, summary.count);
  EXPECT_EQ(back.up, summary.up);
  EXPECT_EQ(back.down, summary.down);
  EXPECT_EQ(back.sum_ms, summary.sum_ms);
  EXPECT_EQ(back.min_ms, summary.min_ms);
  EXPECT_EQ(back.max_ms, summary.max_ms);
  EXPECT_EQ(back.phase_count, 1);
  EXPECT_EQ(back.phase_sums.connect_ms, 1.0);
  EXPECT_EQ(back.phase_sums.transfer_ms, 0.25);
  EXPECT_EQ(back.histogram, summary.histogram);
  EXPECT_EQ(back.percentile(0.5), summary.percentile(0.5));
}

}  // namespace
}  // namespace vigil

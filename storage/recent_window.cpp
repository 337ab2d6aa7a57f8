#include "storage/recent_window.h"

#include <algorithm>
#include <chrono>

namespace vigil {
namespace {

constexpr std::int64_t kHour = Millis(std::chrono::hours(1)).count();
constexpr std::int64_t kDay = Millis(std::chrono::days(1)).count();

}  // namespace

std::array<std::pair<std::int64_t, std::int64_t>, 2> RecentWindowCut::closed_edges() const {
  return {std::pair{from, std::min(days_from, closed_to)},
          std::pair{std::max(days_to, from), closed_to}};
}

std::optional<RecentWindowCut> cut_recent_window(Millis window, TimePoint now) {
  const std::int64_t length = window.count();
  if (length < kDay) return std::nullopt;
  const std::int64_t now_ms = to_unix_ms(now);
  RecentWindowCut cut;
  cut.from = floor_to(now_ms - length, kHour);
  const std::int64_t current_hour = floor_to(now_ms, kHour);
  cut.closed_to = std::max(cut.from, current_hour - kHour);
  cut.days_from = floor_to(cut.from, kDay) + (cut.from % kDay == 0 ? 0 : kDay);
  cut.days_to = std::max(cut.days_from, floor_to(cut.closed_to, kDay));
  cut.live_to = current_hour + kHour;
  return cut;
}

PackedSummary PackedSummary::pack(const RollupSummary& s) {
  return {s.count,       s.up,         s.down,
          s.sum_ms,      s.min_ms,     s.max_ms,
          s.phase_count, s.phase_sums, s.histogram.encode()};
}

RollupSummary PackedSummary::unpack() const {
  RollupSummary s;
  s.count = count;
  s.up = up;
  s.down = down;
  s.sum_ms = sum_ms;
  s.min_ms = min_ms;
  s.max_ms = max_ms;
  s.phase_count = phase_count;
  s.phase_sums = phase_sums;
  s.histogram = LatencyHistogram::decode(histogram.data(), histogram.size());
  return s;
}

}  // namespace vigil

// How the backends serve summarize_all_recent and count_all_recent (storage/store.h): where a
// window of a day or more is cut into pieces a backend reads from its rollups, and what it keeps
// of those pieces between calls. The same on every backend, so their answers agree. Plain
// values and pure functions: any thread, no I/O.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/model.h"
#include "storage/rollups.h"

namespace vigil {

// The pieces of a recent window, in unix milliseconds, each half-open [a, b):
//   [from, closed_to)       hours that are over: unchanged until the hour changes, so cacheable;
//     [days_from, days_to)  within it, the whole UTC days: unchanged until the day changes;
//     closed_edges()        the rest of it, the hours before and after those days;
//   [closed_to, live_to)    the hours still being written: read at every call.
// from is the UTC hour that holds now - window (the window reported to callers starts there);
// live_to is the end of the current hour (no tick is newer than now). The previous hour counts
// as live too: its last ticks may commit just after it ended. Every piece may be empty
// (a >= b); together the non-empty ones cover [from, live_to) once.
struct RecentWindowCut {
  std::int64_t from = 0;
  std::int64_t closed_to = 0;
  std::int64_t days_from = 0;
  std::int64_t days_to = 0;
  std::int64_t live_to = 0;

  // The closed hours outside the whole days: [from, min(days_from, closed_to)) and
  // [max(days_to, from), closed_to).
  std::array<std::pair<std::int64_t, std::int64_t>, 2> closed_edges() const;

  friend bool operator==(const RecentWindowCut&, const RecentWindowCut&) = default;
};

// The cut of the window of length `window` ending at `now`; empty for a window shorter than a
// day, which is read whole, exactly [now - window, now), at every call.
std::optional<RecentWindowCut> cut_recent_window(Millis window, TimePoint now);

// A summary with its histogram encoded, as summarize_all_recent keeps one per service between
// calls: about 100 bytes where a RollupSummary takes about 700.
struct PackedSummary {
  std::int64_t count = 0;
  std::int64_t up = 0;
  std::int64_t down = 0;
  double sum_ms = 0;
  double min_ms = 0;
  double max_ms = 0;
  std::int64_t phase_count = 0;
  PhaseTimings phase_sums;
  std::string histogram;  // LatencyHistogram::encode()

  static PackedSummary pack(const RollupSummary& s);
  // Throws std::invalid_argument when `histogram` is not what encode() wrote.
  RollupSummary unpack() const;
};

// The cached part of one window length of summarize_all_recent or count_all_recent, by service
// id: the closed hours [from, closed_to) of a RecentWindowCut, which move every hour, and
// within them the whole days [days_from, days_to), which move once a day, so an hour's refresh
// reads only the hours around them. `Stored` is what is kept of a service's value (a
// PackedSummary for a RollupSummary). A backend guards each with a mutex of its own.
template <typename Stored>
struct WindowCache {
  std::int64_t from = 0;
  std::int64_t closed_to = 0;
  std::vector<std::pair<ServiceId, Stored>> services;
  std::int64_t days_from = 0;
  std::int64_t days_to = 0;
  std::vector<std::pair<ServiceId, Stored>> days;

  // Whether it holds other closed hours than those of `cut`.
  bool stale(const RecentWindowCut& cut) const {
    return from != cut.from || closed_to != cut.closed_to;
  }

  // Holds the closed hours of `cut`, reading the whole days again only when they moved.
  // `read(a, b)` returns each service's Value over [a, b) (a map by id; Value has merge), `pack`
  // turns a Value into a Stored and `unpack` back. Whatever they throw propagates; the cache is
  // then still stale and the next refresh reads again what it needs.
  template <typename Value, typename Read, typename Pack, typename Unpack>
  void refresh(const RecentWindowCut& cut, Read&& read, Pack&& pack, Unpack&& unpack) {
    if (days_from != cut.days_from || days_to != cut.days_to) {
      days.clear();
      for (const auto& [id, value] : read(cut.days_from, cut.days_to))
        days.emplace_back(id, pack(value));
      days_from = cut.days_from;
      days_to = cut.days_to;
    }
    std::map<ServiceId, Value> closed;
    for (const auto& [id, stored] : days) closed.emplace(id, unpack(stored));
    for (const auto& [a, b] : cut.closed_edges()) {
      if (a >= b) continue;
      for (const auto& [id, value] : read(a, b)) closed[id].merge(value);
    }
    services.clear();
    for (const auto& [id, value] : closed) services.emplace_back(id, pack(value));
    from = cut.from;
    closed_to = cut.closed_to;
  }
};

}  // namespace vigil

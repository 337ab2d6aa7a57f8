#include <SQLiteCpp/SQLiteCpp.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

#include "storage/sqlite/rollup_sql.h"
#include "storage/sqlite/sqlite_codecs.h"
#include "storage/sqlite/sqlite_store.h"

namespace vigil::sqlite {

RollupSummary SqliteStore::summarize(ServiceId id, TimePoint from, TimePoint to) {
  return guarded("summarize", [&] {
    auto db = readers_.acquire();
    SQLite::Transaction snapshot(*db);  // one consistent view across the pieces
    auto all = rollup_sql::summarize(*db, id, ms(from), ms(to));
    const auto it = all.find(id);
    return it == all.end() ? RollupSummary{} : it->second;
  });
}

std::map<ServiceId, RollupSummary> SqliteStore::summarize_all(TimePoint from, TimePoint to) {
  return guarded("summarize_all", [&] {
    auto db = readers_.acquire();
    SQLite::Transaction snapshot(*db);
    return rollup_sql::summarize(*db, std::nullopt, ms(from), ms(to));
  });
}

Store::RecentSummaries SqliteStore::summarize_all_recent(Millis window, TimePoint now) {
  auto [from, services] = recent<RollupSummary>(
      "summarize_all_recent", window, now, recent_summaries_,
      [](SQLite::Database& db, std::int64_t a, std::int64_t b) {
        return rollup_sql::summarize(db, std::nullopt, a, b);
      },
      [](const RollupSummary& s) { return PackedSummary::pack(s); },
      [](const PackedSummary& p) { return p.unpack(); });
  return {from, std::move(services)};
}

Store::RecentCounts SqliteStore::count_all_recent(Millis window, TimePoint now) {
  const auto same = [](const UptimeCounts& c) { return c; };
  auto [from, services] = recent<UptimeCounts>("count_all_recent", window, now, recent_counts_,
                                               rollup_sql::count_all, same, same);
  return {from, std::move(services)};
}

std::vector<std::pair<TimePoint, RollupSummary>> SqliteStore::rollups(ServiceId id,
                                                                      RollupResolution resolution,
                                                                      TimePoint from,
                                                                      TimePoint to) {
  return guarded("rollups", [&] {
    auto db = readers_.acquire();
    std::vector<std::pair<TimePoint, RollupSummary>> out;
    for (auto& [bucket, summary] : rollup_sql::rows(*db, resolution, id, ms(from), ms(to)))
      out.emplace_back(from_unix_ms(bucket), std::move(summary));
    return out;
  });
}

template <typename Value, typename Stored, typename Read, typename Pack, typename Unpack>
std::pair<TimePoint, std::map<ServiceId, Value>> SqliteStore::recent(
    const char* operation, Millis window, TimePoint now,
    std::map<std::int64_t, WindowCache<Stored>>& caches, Read&& read, Pack&& pack,
    Unpack&& unpack) {
  const std::int64_t length = window.count();
  return guarded(operation, [&]() -> std::pair<TimePoint, std::map<ServiceId, Value>> {
    auto db = readers_.acquire();
    if (length < rollup_sql::kDayMs) {
      SQLite::Transaction snapshot(*db);
      return {now - window, read(*db, ms(now) - length, ms(now))};
    }
    const std::int64_t from = floor_to(ms(now) - length, rollup_sql::kHourMs);
    const std::int64_t current_hour = floor_to(ms(now), rollup_sql::kHourMs);
    // The previous hour stays live too: its last ticks may commit just after it ended.
    const std::int64_t closed_to = std::max(from, current_hour - rollup_sql::kHourMs);
    std::lock_guard lock(recent_mutex_);
    auto& cache = caches[length];
    if (cache.from != from || cache.closed_to != closed_to) {
      SQLite::Transaction snapshot(*db);
      const std::int64_t days_from = floor_to(from, rollup_sql::kDayMs) +
                                     (from % rollup_sql::kDayMs == 0 ? 0 : rollup_sql::kDayMs);
      const std::int64_t days_to = std::max(days_from, floor_to(closed_to, rollup_sql::kDayMs));
      if (cache.days_from != days_from || cache.days_to != days_to) {
        cache.days.clear();
        for (const auto& [id, value] : read(*db, days_from, days_to))
          cache.days.emplace_back(id, pack(value));
        cache.days_from = days_from;
        cache.days_to = days_to;
      }
      std::map<ServiceId, Value> closed;
      for (const auto& [id, stored] : cache.days) closed.emplace(id, unpack(stored));
      for (const auto& [a, b] : {std::pair{from, std::min(days_from, closed_to)},
                                 std::pair{std::max(days_to, from), closed_to}}) {
        if (a >= b) continue;
        for (const auto& [id, value] : read(*db, a, b)) closed[id].merge(value);
      }
      cache.services.clear();
      for (const auto& [id, value] : closed) cache.services.emplace_back(id, pack(value));
      cache.from = from;
      cache.closed_to = closed_to;
    }
    std::map<ServiceId, Value> out;
    for (const auto& [id, stored] : cache.services) out.emplace(id, unpack(stored));
    // Whole rows up to the end of the current hour: no tick is newer than now.
    for (const auto& [id, value] : read(*db, closed_to, current_hour + rollup_sql::kHourMs))
      out[id].merge(value);
    return {from_unix_ms(from), std::move(out)};
  });
}

}  // namespace vigil::sqlite

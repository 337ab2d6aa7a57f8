#include <SQLiteCpp/SQLiteCpp.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

#include "storage/recent_window.h"
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
    for (const auto& [bucket, summary] : rollup_sql::rows(*db, resolution, id, ms(from), ms(to)))
      out.emplace_back(from_unix_ms(bucket), summary);
    return out;
  });
}

template <typename Value, typename Stored, typename Read, typename Pack, typename Unpack>
std::pair<TimePoint, std::map<ServiceId, Value>> SqliteStore::recent(
    const char* operation, Millis window, TimePoint now,
    std::map<std::int64_t, WindowCache<Stored>>& caches, Read&& read, Pack&& pack,
    Unpack&& unpack) {
  return guarded(operation, [&]() -> std::pair<TimePoint, std::map<ServiceId, Value>> {
    auto db = readers_.acquire();
    const auto read_db = [&](std::int64_t a, std::int64_t b) { return read(*db, a, b); };
    const auto cut = cut_recent_window(window, now);
    if (!cut) {
      SQLite::Transaction snapshot(*db);
      return {now - window, read_db(ms(now) - window.count(), ms(now))};
    }
    std::lock_guard lock(recent_mutex_);
    auto& cache = caches[window.count()];
    if (cache.stale(*cut)) {
      SQLite::Transaction snapshot(*db);  // one consistent view across the closed pieces
      cache.template refresh<Value>(*cut, read_db, pack, unpack);
    }
    std::map<ServiceId, Value> out;
    for (const auto& [id, stored] : cache.services) out.emplace(id, unpack(stored));
    for (const auto& [id, value] : read_db(cut->closed_to, cut->live_to)) out[id].merge(value);
    return {from_unix_ms(cut->from), std::move(out)};
  });
}

}  // namespace vigil::sqlite

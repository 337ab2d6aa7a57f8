#include <SQLiteCpp/SQLiteCpp.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>

#include "storage/sqlite/rollup_sql.h"
#include "storage/sqlite/sqlite_codecs.h"
#include "storage/sqlite/sqlite_store.h"

namespace vigil::sqlite {

std::size_t SqliteStore::delete_ticks_older_than(TimePoint cutoff,
                                                 std::optional<TimePoint> lone_cutoff,
                                                 std::size_t batch_size) {
  if (batch_size == 0) return 0;
  std::lock_guard lock(write_mutex_);
  return guarded("delete_ticks_older_than", [&] {
    return tick_retention_.delete_ticks(cutoff, lone_cutoff, 0, batch_size,
                                        std::bind_front(&SqliteStore::delete_ticks_from, this));
  });
}

std::size_t SqliteStore::delete_rollups_older_than(RollupResolution resolution, TimePoint cutoff,
                                                   std::size_t batch_size) {
  if (batch_size == 0) return 0;
  std::lock_guard lock(write_mutex_);
  return guarded("delete_rollups_older_than", [&] {
    return rollup_sql::delete_older_than(*db_, resolution, ms(cutoff), batch_size);
  });
}

TickRetentionWalk::Deleted SqliteStore::delete_ticks_from(ServiceId first_service,
                                                          std::int64_t all_before,
                                                          std::int64_t lone_from,
                                                          std::int64_t cutoff, std::size_t limit) {
  SQLite::Transaction txn(*db_, SQLite::TransactionBehavior::IMMEDIATE);
  SQLite::Statement services(*db_, "SELECT id FROM services WHERE id >= ?1 ORDER BY id");
  services.bind(1, first_service);
  // Each a seek into one service's key range, deleting in place.
  SQLite::Statement old(*db_,
                        "DELETE FROM service_ticks WHERE (service_id, ts, seq) IN (SELECT"
                        " service_id, ts, seq FROM service_ticks WHERE service_id = ?1"
                        " AND ts < ?2 LIMIT ?3)");
  SQLite::Statement not_lone(
      *db_,
      "DELETE FROM service_ticks WHERE (service_id, ts, seq) IN (SELECT t.service_id, t.ts,"
      " t.seq FROM service_ticks t WHERE t.service_id = ?1 AND t.ts >= ?2 AND t.ts < ?3"
      " AND EXISTS (SELECT 1 FROM service_rollups_minute m"
      " WHERE m.bucket = t.ts - t.ts % 60000 AND m.service_id = t.service_id) LIMIT ?4)");
  TickRetentionWalk::Deleted deleted;
  while (services.executeStep()) {
    const ServiceId id = services.getColumn(0).getInt64();
    old.tryReset();
    old.bind(1, id);
    old.bind(2, all_before);
    old.bind(3, static_cast<std::int64_t>(limit - deleted.ticks));
    std::size_t here = static_cast<std::size_t>(old.exec());
    if (deleted.ticks + here < limit && lone_from < cutoff) {
      not_lone.tryReset();
      not_lone.bind(1, id);
      not_lone.bind(2, lone_from);
      not_lone.bind(3, cutoff);
      not_lone.bind(4, static_cast<std::int64_t>(limit - deleted.ticks - here));
      here += static_cast<std::size_t>(not_lone.exec());
    }
    deleted.ticks += here;
    if (here > 0) deleted.last_service = id;
    if (deleted.ticks >= limit) break;
  }
  txn.commit();
  return deleted;
}

}  // namespace vigil::sqlite

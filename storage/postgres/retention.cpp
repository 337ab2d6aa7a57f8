// PostgresStore's retention: whole day partitions of service_ticks dropped, the rest deleted by
// rows in short transactions (as on SQLite), and rollup rows deleted in batches.
#include <algorithm>
#include <functional>

#include "storage/postgres/schema.h"
#include "storage/postgres/store_impl.h"

namespace vigil::postgres {

std::size_t PostgresStore::delete_ticks_older_than(TimePoint cutoff,
                                                   std::optional<TimePoint> lone_cutoff,
                                                   std::size_t batch_size) {
  if (batch_size == 0) return 0;
  std::lock_guard lock(write_mutex_);
  return guarded("delete_ticks_older_than", [&] {
    Session& session = writer();
    const std::int64_t all_before = TickRetentionWalk::all_before(cutoff, lone_cutoff);
    std::size_t deleted = 0;
    // A partition whose whole day is before every bound goes at once: no tick of it is kept,
    // lone or not. (Counted first: the caller learns how many ticks went.) Another process may
    // have dropped some already: the list is read afresh.
    partition_days_ = postgres_schema::partition_days(session);
    for (auto it = partition_days_.begin(); it != partition_days_.end();) {
      const std::int64_t day = *it;
      if ((day + 1) * postgres_schema::kPartitionMs > all_before) break;
      const std::string name = postgres_schema::partition_name(day);
      Transaction txn(session.connection());
      deleted +=
          static_cast<std::size_t>(int_at(session.exec("SELECT COUNT(*) FROM " + name), 0, 0));
      session.exec("DROP TABLE " + name);
      txn.commit();
      it = partition_days_.erase(it);
      if (deleted >= batch_size) return deleted;
    }
    // The rest row by row, as on SQLite.
    return tick_retention_.delete_ticks(
        cutoff, lone_cutoff, deleted, batch_size,
        std::bind_front(&PostgresStore::delete_ticks_from, this, std::ref(session)));
  });
}

TickRetentionWalk::Deleted PostgresStore::delete_ticks_from(
    Session& session, ServiceId first_service, std::int64_t all_before, std::int64_t lone_from,
    std::int64_t cutoff, std::size_t limit) {
  Transaction txn(session.connection());
  // Services in id order from first_service, up to `limit` ticks.
  const auto old = session.run(
      "DELETE FROM service_ticks WHERE (service_id, ts, seq) IN (SELECT service_id, ts, seq FROM"
      " service_ticks WHERE service_id >= $1 AND ts < $2 ORDER BY service_id LIMIT $3)"
      " RETURNING service_id",
      {text(first_service), text(all_before), text(static_cast<std::int64_t>(limit))});
  std::size_t deleted = static_cast<std::size_t>(old.rows());
  ServiceId last = 0;
  for (int row = 0; row < old.rows(); ++row) last = std::max(last, int_at(old, row, 0));
  if (deleted < limit && lone_from < cutoff) {
    const auto not_lone = session.run(
        "DELETE FROM service_ticks WHERE (service_id, ts, seq) IN (SELECT t.service_id, t.ts,"
        " t.seq FROM service_ticks t WHERE t.service_id >= $1 AND t.ts >= $2 AND t.ts < $3"
        " AND EXISTS (SELECT 1 FROM service_rollups_minute m WHERE m.bucket = t.ts - t.ts % 60000"
        " AND m.service_id = t.service_id) ORDER BY t.service_id LIMIT $4) RETURNING service_id",
        {text(first_service), text(lone_from), text(cutoff),
         text(static_cast<std::int64_t>(limit - deleted))});
    deleted += static_cast<std::size_t>(not_lone.rows());
    for (int row = 0; row < not_lone.rows(); ++row) last = std::max(last, int_at(not_lone, row, 0));
  }
  txn.commit();
  return {deleted, last};
}

std::size_t PostgresStore::delete_rollups_older_than(RollupResolution resolution, TimePoint cutoff,
                                                     std::size_t batch_size) {
  if (batch_size == 0) return 0;
  std::lock_guard lock(write_mutex_);
  return guarded("delete_rollups_older_than", [&] {
    return postgres_rollups::delete_older_than(writer(), resolution, ms(cutoff), batch_size);
  });
}

}  // namespace vigil::postgres

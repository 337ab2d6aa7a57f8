#include <SQLiteCpp/SQLiteCpp.h>
#include <sqlite3.h>

#include <cstdint>
#include <mutex>
#include <utility>
#include <vector>

#include "core/shards.h"
#include "storage/column_codecs.h"
#include "storage/sqlite/sqlite_codecs.h"
#include "storage/sqlite/sqlite_store.h"

namespace vigil::sqlite {

Store::BeatQueued SqliteStore::enqueue_beat(ServiceId id, const BeatReport& beat) {
  std::lock_guard lock(write_mutex_);
  return guarded("enqueue_beat", [&] {
    // Ids only grow, and beats are taken oldest first: the id span bounds the queue length
    // with two index lookups instead of a count.
    const std::int64_t span =
        db_->execAndGet("SELECT COALESCE(MAX(id) - MIN(id) + 1, 0) FROM pending_beats").getInt64();
    if (span >= kMaxPendingBeats) return BeatQueued::full;
    SQLite::Statement insert(*db_,
                             "INSERT INTO pending_beats(service_id, at, up, message, duration_ms)"
                             " VALUES(?, ?, ?, ?, ?)");
    insert.bind(1, id);
    insert.bind(2, ms(beat.at));
    insert.bind(3, beat.up ? 1 : 0);
    insert.bind(4, column_codecs::without_nul(beat.message));
    if (beat.duration_ms)
      insert.bind(5, *beat.duration_ms);
    else
      insert.bind(5);
    try {
      insert.exec();
    } catch (const SQLite::Exception& e) {
      if (e.getExtendedErrorCode() == SQLITE_CONSTRAINT_FOREIGNKEY)
        return BeatQueued::unknown_service;
      throw;
    }
    return BeatQueued::queued;
  });
}

std::vector<std::pair<ServiceId, BeatReport>> SqliteStore::take_beats(
    std::size_t max, const std::optional<std::vector<int>>& shards) {
  std::vector<std::pair<ServiceId, BeatReport>> beats;
  if (max == 0 || (shards && shards->empty())) return beats;
  std::string in_shards;  // "" for every shard, else " WHERE service_id % 64 IN (1,2)"
  if (shards) {
    for (const int shard : *shards)
      in_shards += (in_shards.empty() ? "" : ",") + std::to_string(shard);
    in_shards = " WHERE service_id % " + std::to_string(kShardCount) + " IN (" + in_shards + ")";
  }
  // Polled every half second by the runner process: a read first, so an empty queue never
  // takes the write lock.
  const bool any = guarded("take_beats", [&] {
    auto db = readers_.acquire();
    return (*db).execAndGet("SELECT EXISTS (SELECT 1 FROM pending_beats)").getInt() != 0;
  });
  if (!any) return beats;
  std::lock_guard lock(write_mutex_);
  return guarded("take_beats", [&] {
    beats.clear();
    SQLite::Transaction txn(*db_, SQLite::TransactionBehavior::IMMEDIATE);
    SQLite::Statement select(*db_,
                             "SELECT id, service_id, at, up, message, duration_ms FROM"
                             " pending_beats" +
                                 in_shards + " ORDER BY id LIMIT ?");
    select.bind(1, static_cast<std::int64_t>(max));
    std::vector<std::int64_t> taken;
    while (select.executeStep()) {
      taken.push_back(select.getColumn(0).getInt64());
      BeatReport beat;
      beat.at = from_unix_ms(select.getColumn(2).getInt64());
      beat.up = select.getColumn(3).getInt() != 0;
      beat.message = select.getColumn(4).getString();
      if (!select.isColumnNull(5)) beat.duration_ms = select.getColumn(5).getDouble();
      beats.emplace_back(select.getColumn(1).getInt64(), std::move(beat));
    }
    SQLite::Statement erase(*db_, "DELETE FROM pending_beats WHERE id = ?");
    for (const std::int64_t id : taken) {
      erase.bind(1, id);
      erase.exec();
      erase.reset();
    }
    txn.commit();
    return beats;
  });
}

}  // namespace vigil::sqlite

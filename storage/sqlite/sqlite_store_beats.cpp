#include <SQLiteCpp/SQLiteCpp.h>
#include <sqlite3.h>

#include <algorithm>
#include <cstdint>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

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

std::vector<Store::QueuedBeat> SqliteStore::claim_beats(
    const std::string& claimant, std::size_t max, const std::optional<std::vector<int>>& shards) {
  std::vector<QueuedBeat> beats;
  if (max == 0 || (shards && shards->empty())) return beats;
  // Unclaimed, and of the shards asked for.
  const std::string claimable = " claimed_by IS NULL" + and_in_shards("service_id", shards);
  // Polled every half second by the runner process: a read first, so an empty queue never
  // takes the write lock.
  const bool any = guarded("claim_beats", [&] {
    auto db = readers_.acquire();
    return (*db)
               .execAndGet("SELECT EXISTS (SELECT 1 FROM pending_beats WHERE" + claimable + ")")
               .getInt() != 0;
  });
  if (!any) return beats;
  std::lock_guard lock(write_mutex_);
  return guarded("claim_beats", [&] {
    beats.clear();
    SQLite::Transaction txn(*db_, SQLite::TransactionBehavior::IMMEDIATE);
    SQLite::Statement claim(*db_,
                            "UPDATE pending_beats SET claimed_by = ?1 WHERE id IN (SELECT id FROM"
                            " pending_beats WHERE" +
                                claimable +
                                " ORDER BY id LIMIT ?2)"
                                " RETURNING id, service_id, at, up, message, duration_ms");
    claim.bind(1, claimant);
    claim.bind(2, static_cast<std::int64_t>(max));
    while (claim.executeStep()) {
      QueuedBeat queued;
      queued.id = claim.getColumn(0).getInt64();
      queued.service_id = claim.getColumn(1).getInt64();
      queued.beat.at = from_unix_ms(claim.getColumn(2).getInt64());
      queued.beat.up = claim.getColumn(3).getInt() != 0;
      queued.beat.message = claim.getColumn(4).getString();
      if (!claim.isColumnNull(5)) queued.beat.duration_ms = claim.getColumn(5).getDouble();
      beats.push_back(std::move(queued));
    }
    txn.commit();
    // RETURNING gives no order.
    std::ranges::sort(beats, {}, &QueuedBeat::id);
    return beats;
  });
}

void SqliteStore::release_beats(const std::string& claimant) {
  std::lock_guard lock(write_mutex_);
  guarded("release_beats", [&] {
    SQLite::Statement release(*db_,
                              "UPDATE pending_beats SET claimed_by = NULL WHERE claimed_by = ?");
    release.bind(1, claimant);
    release.exec();
  });
}

void SqliteStore::unclaim_beats(const std::vector<std::int64_t>& ids) {
  for_each_queued_beat("unclaim_beats", "UPDATE pending_beats SET claimed_by = NULL WHERE id = ?",
                       ids);
}

void SqliteStore::discard_beats(const std::vector<std::int64_t>& ids) {
  for_each_queued_beat("discard_beats", "DELETE FROM pending_beats WHERE id = ?", ids);
}

void SqliteStore::for_each_queued_beat(const char* operation, const char* sql,
                                       const std::vector<std::int64_t>& ids) {
  if (ids.empty()) return;
  std::lock_guard lock(write_mutex_);
  guarded(operation, [&] {
    SQLite::Transaction txn(*db_, SQLite::TransactionBehavior::IMMEDIATE);
    SQLite::Statement statement(*db_, sql);
    for (const std::int64_t id : ids) {
      statement.tryReset();
      statement.bind(1, id);
      statement.exec();
    }
    txn.commit();
  });
}

}  // namespace vigil::sqlite

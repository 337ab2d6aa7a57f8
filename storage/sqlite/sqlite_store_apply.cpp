#include <SQLiteCpp/SQLiteCpp.h>
#include <sqlite3.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "core/logging.h"
#include "storage/column_codecs.h"
#include "storage/sqlite/rollup_sql.h"
#include "storage/sqlite/sqlite_codecs.h"
#include "storage/sqlite/sqlite_store.h"

namespace vigil::sqlite {
namespace {

using rollup_sql::to_us;

}  // namespace

ApplyStatements::ApplyStatements(SQLite::Database& db)
    : insert_tick(db,
                  "INSERT INTO service_ticks"
                  "(service_id, ts, up, status_code, response_us, error, region_id, message,"
                  " resolve_us, connect_us, tls_us, processing_us, transfer_us, seq)"
                  " VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                  " ON CONFLICT DO NOTHING"),
      next_seq(db,
               "SELECT COALESCE(MAX(seq), -1) + 1 FROM service_ticks"
               " WHERE service_id = ?1 AND ts = ?2"),
      insert_region(db, "INSERT INTO regions(name) VALUES(?1) ON CONFLICT DO NOTHING"),
      select_region(db, "SELECT id FROM regions WHERE name = ?1"),
      close_open_event(db,
                       "UPDATE service_events SET date_ended = ?2, updated_at = ?2"
                       " WHERE service_id = ?1 AND date_ended IS NULL"),
      open_event(db,
                 "INSERT INTO service_events"
                 "(service_id, event, date_started, date_ended, created_at, updated_at)"
                 " VALUES(?1, ?2, ?3, NULL, ?3, ?3)"),
      upsert_metric(db,
                    "INSERT INTO service_metrics(service_id, tick_count, up_count, down_count,"
                    " average_response_time_ms, uptime_percent, last_tick_at, updated_at)"
                    " VALUES(?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT(service_id) DO UPDATE SET"
                    " tick_count = excluded.tick_count, up_count = excluded.up_count,"
                    " down_count = excluded.down_count,"
                    " average_response_time_ms = excluded.average_response_time_ms,"
                    " uptime_percent = excluded.uptime_percent,"
                    " last_tick_at = MAX(service_metrics.last_tick_at, excluded.last_tick_at),"
                    " updated_at = excluded.updated_at"),
      delete_queued_beat(db, "DELETE FROM pending_beats WHERE id = ?") {}

void SqliteStore::apply(const std::vector<TickRecord>& batch) {
  if (batch.empty()) return;
  // The records by service, each service's in submission order: inserting in key order walks
  // each B-tree page once per batch instead of once per record. Sorted as compact (id, index)
  // pairs rather than by reaching into the records.
  std::vector<std::pair<ServiceId, std::size_t>> by_service(batch.size());
  for (std::size_t i = 0; i < batch.size(); ++i) by_service[i] = {batch[i].tick.service_id, i};
  std::sort(by_service.begin(), by_service.end());
  // Each service of the batch: the last record carries its metric; the newest ts is its last
  // tick.
  struct Touched {
    ServiceId id;
    std::size_t last_record;
    std::int64_t last_tick_at;
  };
  std::vector<Touched> touched;  // ascending ids, like the keys of every table written
  for (const auto& [id, index] : by_service) {
    const std::int64_t ts = ms(batch[index].tick.ts);
    if (touched.empty() || touched.back().id != id) {
      touched.push_back({id, index, ts});
    } else {
      touched.back().last_record = index;
      touched.back().last_tick_at = std::max(touched.back().last_tick_at, ts);
    }
  }

  std::unordered_set<ServiceId> gone;  // services of the batch that no longer exist
  // Region ids this transaction added: cached once it commits (a rollback takes them back).
  std::unordered_map<std::string, std::int64_t> new_regions;
  std::lock_guard lock(write_mutex_);
  guarded("apply", [&] {
    gone.clear();  // a retried batch starts over
    // The ticks inserted, which the rollups fold in.
    std::vector<const Tick*> inserted;
    inserted.reserve(batch.size());
    auto& s = *apply_statements_;
    new_regions.clear();
    // IMMEDIATE takes the write lock up front (waiting up to busy_timeout for the other
    // process) instead of failing on a read-to-write upgrade halfway through the batch.
    // Its destructor rolls back unless commit() was reached: all or nothing.
    SQLite::Transaction txn(*db_, SQLite::TransactionBehavior::IMMEDIATE);
    for (const auto& [id, index] : by_service) {
      const auto& record = batch[index];
      const auto& tick = record.tick;
      if (record.queued_beat) {  // stored with this tick, or gone with its purged service
        s.delete_queued_beat.tryReset();
        s.delete_queued_beat.bind(1, *record.queued_beat);
        s.delete_queued_beat.exec();
      }
      // Every parameter is rebound for every row, so the bindNoCopy pointers into `batch` are
      // never read after this call returns.
      s.insert_tick.tryReset();
      s.insert_tick.bind(1, tick.service_id);
      s.insert_tick.bind(2, ms(tick.ts));
      s.insert_tick.bind(3, tick.up ? 1 : 0);
      if (tick.status_code)
        s.insert_tick.bind(4, *tick.status_code);
      else
        s.insert_tick.bind(4);
      s.insert_tick.bind(5, to_us(tick.response_ms));
      // Outside text with a NUL (rare) is bound as a copy without it, as every backend stores it.
      if (tick.error.empty())
        s.insert_tick.bind(6);
      else if (tick.error.find('\0') != std::string::npos)
        s.insert_tick.bind(6, column_codecs::without_nul(tick.error));
      else
        s.insert_tick.bindNoCopy(6, tick.error);
      s.insert_tick.bind(7, region_id(tick.region, new_regions));
      if (tick.message.empty())
        s.insert_tick.bind(8);
      else if (tick.message.find('\0') != std::string::npos)
        s.insert_tick.bind(8, column_codecs::without_nul(tick.message));
      else
        s.insert_tick.bindNoCopy(8, tick.message);
      bind_phases(s.insert_tick, 9, tick.phases);
      s.insert_tick.bind(14, 0);
      if (gone.contains(tick.service_id)) continue;
      try {
        if (s.insert_tick.exec() == 0) {  // the service has a tick of this ms already
          s.next_seq.tryReset();
          s.next_seq.bind(1, tick.service_id);
          s.next_seq.bind(2, ms(tick.ts));
          s.next_seq.executeStep();
          s.insert_tick.tryReset();
          s.insert_tick.bind(14, s.next_seq.getColumn(0).getInt64());
          s.next_seq.tryReset();
          if (s.insert_tick.exec() == 0) throw StorageError("tick key conflict");
        }
      } catch (const SQLite::Exception& e) {
        // The service was purged after the runner produced this tick: skip its records
        // rather than fail (and forever retry) the whole batch.
        if (e.getExtendedErrorCode() != SQLITE_CONSTRAINT_FOREIGNKEY) throw;
        gone.insert(tick.service_id);
        continue;
      }
      inserted.push_back(&tick);

      // The open event ends where the next starts: first those of dropped records, then this
      // record's own.
      const auto start_event = [&](EventKind kind, TimePoint started) {
        s.close_open_event.tryReset();
        s.close_open_event.bind(1, tick.service_id);
        s.close_open_event.bind(2, ms(started));
        s.close_open_event.exec();
        s.open_event.tryReset();
        s.open_event.bind(1, tick.service_id);
        s.open_event.bind(2, to_string(kind));
        s.open_event.bind(3, ms(started));
        s.open_event.exec();
      };
      for (const auto& folded : record.folded_events) start_event(folded.kind, folded.started);
      if (record.opens_event) start_event(*record.opens_event, tick.ts);
    }
    const auto written_at = ms(now_ms());
    for (const auto& info : touched) {
      const ServiceId id = info.id;
      if (gone.contains(id)) continue;
      const auto& metric = batch[info.last_record].metric_after;
      s.upsert_metric.tryReset();
      s.upsert_metric.bind(1, id);
      s.upsert_metric.bind(2, metric.tick_count);
      s.upsert_metric.bind(3, metric.up_count);
      s.upsert_metric.bind(4, metric.down_count);
      s.upsert_metric.bind(5, metric.average_response_time_ms);
      s.upsert_metric.bind(6, metric.uptime_percent);
      s.upsert_metric.bind(7, info.last_tick_at);
      s.upsert_metric.bind(8, written_at);
      s.upsert_metric.exec();
    }
    rollup_writer_->write(inserted);  // same transaction as the ticks
    txn.commit();
    rollup_writer_->committed();
    s.region_ids.merge(new_regions);
  });
  if (!gone.empty()) {
    std::size_t skipped = 0;
    for (const auto& record : batch) skipped += gone.contains(record.tick.service_id) ? 1 : 0;
    log_warn("storage: skipped " + std::to_string(skipped) + " tick record(s) of " +
             std::to_string(gone.size()) + " service(s) that no longer exist (purged)");
  }
}

std::uint64_t SqliteStore::corrupt_rows_rebuilt() {
  std::lock_guard lock(write_mutex_);
  return rollup_writer_->corrupt_rows_rebuilt();
}

std::int64_t SqliteStore::region_id(const std::string& name,
                                    std::unordered_map<std::string, std::int64_t>& added) {
  auto& s = *apply_statements_;
  if (const auto it = s.region_ids.find(name); it != s.region_ids.end()) return it->second;
  if (const auto it = added.find(name); it != added.end()) return it->second;
  s.insert_region.tryReset();
  s.insert_region.bind(1, name);
  s.insert_region.exec();
  s.select_region.tryReset();
  s.select_region.bind(1, name);
  if (!s.select_region.executeStep()) throw StorageError("regions row of '" + name + "' missing");
  const std::int64_t id = s.select_region.getColumn(0).getInt64();
  s.select_region.tryReset();
  added.emplace(name, id);
  return id;
}

}  // namespace vigil::sqlite

// PostgresStore::apply: a batch of ticks, with the metrics, events and rollups they change, in
// one transaction of a few multi-row statements (each batch column an array parameter, unnested
// by the server), whatever the batch's size.
#include <algorithm>
#include <map>
#include <set>
#include <unordered_set>

#include "core/logging.h"
#include "storage/postgres/schema.h"
#include "storage/postgres/store_impl.h"

namespace vigil::postgres {
namespace {

using postgres_rollups::to_us;

// The five phase columns of a tick, NULL without phases.
void add_phases(CopyText& row, const std::optional<PhaseTimings>& phases) {
  if (!phases) {
    for (int i = 0; i < 5; ++i) row.add_null();
    return;
  }
  row.add(to_us(phases->resolve_ms));
  row.add(to_us(phases->connect_ms));
  row.add(to_us(phases->tls_ms));
  row.add(to_us(phases->processing_ms));
  row.add(to_us(phases->transfer_ms));
}

std::optional<std::string> unless_empty(const std::string& text) {
  if (text.empty()) return std::nullopt;
  return text;
}

// COPY into the partitioned table itself: the server routes each row to its day's partition and
// writes them in multi-row batches, where INSERT ... SELECT FROM unnest(arrays) spent most of a
// batch's time parsing the arrays.
constexpr const char* kCopyTicks =
    "COPY service_ticks(service_id, ts, seq, up, status_code, response_us, error, region_id,"
    " message, resolve_us, connect_us, tls_us, processing_us, transfer_us) FROM STDIN";

constexpr const char* kUniqueViolation = "23505";

}  // namespace

void PostgresStore::ensure_partitions(Session& session, const std::set<std::int64_t>& days) {
  for (const std::int64_t day : days) {
    if (partition_days_.contains(day)) continue;
    try {
      postgres_schema::create_partition(session, day);
    } catch (const PgError& e) {
      // Another process created it at the same moment: fine when it is there now.
      if (!postgres_schema::partition_days(session).contains(day)) throw;
    }
    partition_days_.insert(day);
  }
}

std::int64_t PostgresStore::region_id(Session& session, const std::string& name,
                                      std::unordered_map<std::string, std::int64_t>& added) {
  if (const auto it = region_ids_.find(name); it != region_ids_.end()) return it->second;
  if (const auto it = added.find(name); it != added.end()) return it->second;
  session.run("INSERT INTO regions(name) VALUES($1) ON CONFLICT DO NOTHING", {name});
  const auto r = session.run("SELECT id FROM regions WHERE name = $1", {name});
  if (r.rows() == 0) throw StorageError("regions row of '" + name + "' missing");
  const std::int64_t id = int_at(r, 0, 0);
  added.emplace(name, id);
  return id;
}

void PostgresStore::apply(const std::vector<TickRecord>& batch) {
  if (batch.empty()) return;
  // The records by service, each service's in submission order, as on SQLite: event ids grow in
  // that order, and ticks of one service in one millisecond get their seq in it.
  std::vector<std::pair<ServiceId, std::size_t>> by_service(batch.size());
  for (std::size_t i = 0; i < batch.size(); ++i) by_service[i] = {batch[i].tick.service_id, i};
  std::sort(by_service.begin(), by_service.end());
  std::set<std::int64_t> days;
  std::set<ServiceId> ids;
  for (const auto& record : batch) {
    days.insert(postgres_schema::partition_day(ms(record.tick.ts)));
    ids.insert(record.tick.service_id);
  }
  // Tomorrow's too, so that a partition exists before the first tick of a day needs it.
  days.insert(postgres_schema::partition_day(ms(now_ms())) + 1);

  std::unordered_set<ServiceId> gone;
  std::unordered_map<std::string, std::int64_t> new_regions;
  std::lock_guard lock(write_mutex_);
  const auto write_batch = [&] {
    gone.clear();
    new_regions.clear();
    // Before the transaction: creating a partition locks the parent table, which readers of
    // ticks would otherwise wait on until the batch commits.
    ensure_partitions(writer(), days);
    std::optional<Transaction> txn;
    Session& session = begin_writing(txn);

    // The services of the batch that still exist, kept from being purged until the commit;
    // ticks of the others (purged after the runner produced them) are skipped.
    ArrayText id_array;
    for (const ServiceId id : ids) id_array.add(id);
    const auto present = session.run(
        "SELECT id FROM services WHERE id = ANY($1::int8[]) FOR KEY SHARE", {id_array.str()});
    std::set<ServiceId> existing;
    for (int row = 0; row < present.rows(); ++row) existing.insert(int_at(present, row, 0));
    for (const ServiceId id : ids)
      if (!existing.contains(id)) gone.insert(id);

    // Ticks, seq 0 for each service's first of a millisecond and one more for each further one.
    struct Row {
      const Tick* tick;
      std::int64_t seq;
    };
    std::vector<Row> rows;
    rows.reserve(batch.size());
    std::map<std::pair<ServiceId, std::int64_t>, std::int64_t> next_seq;
    for (const auto& [id, index] : by_service) {
      if (gone.contains(id)) continue;
      const Tick& tick = batch[index].tick;
      rows.push_back({&tick, next_seq[{id, ms(tick.ts)}]++});
    }
    // One COPY; false when a row's key is taken (the server refused the whole COPY, so the
    // transaction must go back to the savepoint before it).
    const auto copy_ticks = [&] {
      CopyText data;
      for (const auto& row : rows) {
        const Tick& tick = *row.tick;
        data.add(tick.service_id);
        data.add(ms(tick.ts));
        data.add(row.seq);
        data.add(tick.up);
        if (tick.status_code)
          data.add(*tick.status_code);
        else
          data.add_null();
        data.add(to_us(tick.response_ms));
        data.add(unless_empty(tick.error));
        data.add(region_id(session, tick.region, new_regions));
        data.add(unless_empty(tick.message));
        add_phases(data, tick.phases);
        data.end_row();
      }
      try {
        return session.connection().copy_in(kCopyTicks, data.str()) ==
               static_cast<long long>(rows.size());
      } catch (const PgError& e) {
        if (e.sqlstate() != kUniqueViolation) throw;
        return false;
      }
    };
    if (!rows.empty()) {
      session.exec("SAVEPOINT ticks");
      if (!copy_ticks()) {
        // Some service already has a tick of one of these milliseconds: its seq goes on from
        // the stored ones.
        session.exec("ROLLBACK TO SAVEPOINT ticks");
        ArrayText key_ids, key_ts;
        for (const auto& [key, n] : next_seq) {
          key_ids.add(key.first);
          key_ts.add(key.second);
        }
        const auto stored = session.run(
            "SELECT k.service_id, k.ts, MAX(t.seq) + 1 FROM unnest($1::int8[], $2::int8[])"
            " AS k(service_id, ts) JOIN service_ticks t ON t.service_id = k.service_id"
            " AND t.ts = k.ts GROUP BY k.service_id, k.ts",
            {key_ids.str(), key_ts.str()});
        std::map<std::pair<ServiceId, std::int64_t>, std::int64_t> first_free;
        for (int row = 0; row < stored.rows(); ++row)
          first_free[{int_at(stored, row, 0), int_at(stored, row, 1)}] = int_at(stored, row, 2);
        for (auto& row : rows) {
          const auto it = first_free.find({row.tick->service_id, ms(row.tick->ts)});
          if (it != first_free.end()) row.seq += it->second;
        }
        if (!copy_ticks()) throw StorageError("tick key conflict");
      }
      session.exec("RELEASE SAVEPOINT ticks");
    }

    // Events: each service's open event ends where its first new one starts; each new one ends
    // where the next starts, and the last stays open. Folded ones come before a record's own.
    ArrayText close_ids, close_at;
    ArrayText event_ids, event_kinds, event_started, event_ended;
    for (auto first = by_service.begin(); first != by_service.end();) {
      const ServiceId id = first->first;
      const auto last = std::find_if(first, by_service.end(),
                                     [&](const auto& entry) { return entry.first != id; });
      if (!gone.contains(id)) {
        std::vector<EventStart> starts;
        for (auto it = first; it != last; ++it) {
          const auto& record = batch[it->second];
          for (const auto& folded : record.folded_events) starts.push_back(folded);
          if (record.opens_event) starts.push_back({*record.opens_event, record.tick.ts});
        }
        if (!starts.empty()) {
          close_ids.add(id);
          close_at.add(ms(starts.front().started));
        }
        for (std::size_t i = 0; i < starts.size(); ++i) {
          event_ids.add(id);
          event_kinds.add(std::optional<std::string>(to_string(starts[i].kind)));
          event_started.add(ms(starts[i].started));
          if (i + 1 < starts.size())
            event_ended.add(ms(starts[i + 1].started));
          else
            event_ended.add_null();
        }
      }
      first = last;
    }
    if (!close_ids.empty()) {
      session.run(
          "UPDATE service_events e SET date_ended = c.at, updated_at = c.at"
          " FROM unnest($1::int8[], $2::int8[]) AS c(service_id, at)"
          " WHERE e.service_id = c.service_id AND e.date_ended IS NULL",
          {close_ids.str(), close_at.str()});
      session.run(
          "INSERT INTO service_events(service_id, event, date_started, date_ended, created_at,"
          " updated_at) SELECT service_id, event, started, ended, started,"
          " COALESCE(ended, started) FROM unnest($1::int8[], $2::text[], $3::int8[], $4::int8[])"
          " WITH ORDINALITY AS e(service_id, event, started, ended, n) ORDER BY n",
          {event_ids.str(), event_kinds.str(), event_started.str(), event_ended.str()});
    }

    // Metrics: each service's after its last record; last_tick_at its newest tick.
    ArrayText metric_columns[7];
    for (auto first = by_service.begin(); first != by_service.end();) {
      const ServiceId id = first->first;
      const auto last = std::find_if(first, by_service.end(),
                                     [&](const auto& entry) { return entry.first != id; });
      if (!gone.contains(id)) {
        std::int64_t newest = kNever;
        for (auto it = first; it != last; ++it)
          newest = std::max(newest, ms(batch[it->second].tick.ts));
        const Metric& metric = batch[std::prev(last)->second].metric_after;
        metric_columns[0].add(id);
        metric_columns[1].add(metric.tick_count);
        metric_columns[2].add(metric.up_count);
        metric_columns[3].add(metric.down_count);
        metric_columns[4].add(metric.average_response_time_ms);
        metric_columns[5].add(metric.uptime_percent);
        metric_columns[6].add(newest);
      }
      first = last;
    }
    if (!metric_columns[0].empty()) {
      Params params;
      for (const auto& column : metric_columns) params.push_back(column.str());
      params.push_back(text(ms(now_ms())));
      session.run(
          "INSERT INTO service_metrics(service_id, tick_count, up_count, down_count,"
          " average_response_time_ms, uptime_percent, last_tick_at, updated_at)"
          " SELECT *, $8::int8 FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[],"
          " $5::float8[], $6::float8[], $7::int8[])"
          " ON CONFLICT (service_id) DO UPDATE SET tick_count = excluded.tick_count,"
          " up_count = excluded.up_count, down_count = excluded.down_count,"
          " average_response_time_ms = excluded.average_response_time_ms,"
          " uptime_percent = excluded.uptime_percent,"
          " last_tick_at = GREATEST(service_metrics.last_tick_at, excluded.last_tick_at),"
          " updated_at = excluded.updated_at",
          params);
    }

    // The queued beats these ticks store (those of purged services went with them).
    ArrayText queued_beats;
    bool any_queued = false;
    for (const auto& record : batch) {
      if (!record.queued_beat) continue;
      queued_beats.add(*record.queued_beat);
      any_queued = true;
    }
    if (any_queued)
      session.run("DELETE FROM pending_beats WHERE id = ANY($1::int8[])", {queued_beats.str()});

    std::vector<const Tick*> inserted;
    inserted.reserve(rows.size());
    for (const auto& row : rows) inserted.push_back(row.tick);
    rollup_writer_.write(session, inserted);  // same transaction as the ticks
    txn->commit();
    rollup_writer_.committed();
    region_ids_.merge(new_regions);
  };
  guarded("apply", [&] {
    try {
      write_batch();
    } catch (const PgError& e) {
      // No partition for a tick (23514): another process's retention dropped one this store
      // thought was there. Learn which exist and write the batch again (it was rolled back).
      if (e.sqlstate() != "23514") throw;
      partition_days_ = postgres_schema::partition_days(writer());
      write_batch();
    }
  });
  if (!gone.empty()) {
    std::size_t skipped = 0;
    for (const auto& record : batch) skipped += gone.contains(record.tick.service_id) ? 1 : 0;
    log_warn("storage: skipped " + std::to_string(skipped) + " tick record(s) of " +
             std::to_string(gone.size()) + " service(s) that no longer exist (purged)");
  }
}

std::uint64_t PostgresStore::corrupt_rows_rebuilt() {
  std::lock_guard lock(write_mutex_);
  return rollup_writer_.corrupt_rows_rebuilt();
}

}  // namespace vigil::postgres

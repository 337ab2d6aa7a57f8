#include "storage/sqlite/rollup_sql.h"

#include <sqlite3.h>

#include <algorithm>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "core/logging.h"
#include "storage/store.h"

namespace vigil::rollup_sql {
namespace {

const char* table(Resolution resolution) {
  switch (resolution) {
    case Resolution::minute:
      return "service_rollups_minute";
    case Resolution::hour:
      return "service_rollups_hour";
    case Resolution::day:
      return "service_rollups_day";
  }
  throw std::logic_error("bad rollup resolution");
}
std::int64_t period_ms(Resolution resolution) {
  switch (resolution) {
    case Resolution::minute:
      return kMinuteMs;
    case Resolution::hour:
      return kHourMs;
    case Resolution::day:
      return kDayMs;
  }
  throw std::logic_error("bad rollup resolution");
}
std::int64_t ceil_to(std::int64_t t, std::int64_t step) {
  const std::int64_t f = floor_to(t, step);
  return f == t ? t : f + step;
}

constexpr const char* kSummaryColumns =
    "count, up, down, sum_ms, min_ms, max_ms, histogram, phase_count, resolve_ms, connect_ms,"
    " tls_ms, processing_ms, transfer_ms";

// The tick columns a summary needs, read back by read_tick.
constexpr const char* kTickColumns =
    "t.up, t.response_us, t.resolve_us, t.connect_us, t.tls_us, t.processing_us, t.transfer_us";

// Merges the row's summary (kSummaryColumns from `first`) into `into`, its histogram decoded
// straight into into's.
void merge_row(const SQLite::Statement& row, int first, RollupSummary& into) {
  RollupSummary s;  // the scalars; the histogram goes straight into `into`
  s.count = row.getColumn(first).getInt64();
  s.up = row.getColumn(first + 1).getInt64();
  s.down = row.getColumn(first + 2).getInt64();
  s.sum_ms = row.getColumn(first + 3).getDouble();
  s.min_ms = row.getColumn(first + 4).getDouble();
  s.max_ms = row.getColumn(first + 5).getDouble();
  s.phase_count = row.getColumn(first + 7).getInt64();
  s.phase_sums =
      PhaseTimings{row.getColumn(first + 8).getDouble(), row.getColumn(first + 9).getDouble(),
                   row.getColumn(first + 10).getDouble(), row.getColumn(first + 11).getDouble(),
                   row.getColumn(first + 12).getDouble()};
  const auto blob = row.getColumn(first + 6);
  try {
    into.histogram.merge_encoded(blob.getBlob(), static_cast<std::size_t>(blob.getBytes()));
  } catch (const std::invalid_argument& e) {
    throw StorageError(std::string("corrupt rollup row: ") + e.what());
  }
  into.merge_scalars(s);
}

RollupSummary read_summary(const SQLite::Statement& row, int first) {
  RollupSummary s;
  merge_row(row, first, s);
  return s;
}

// The part of a tick a summary needs, from kTickColumns at `first`.
Tick read_tick(const SQLite::Statement& row, int first) {
  Tick tick;
  tick.up = row.getColumn(first).getInt() != 0;
  tick.response_ms = from_us(row.getColumn(first + 1).getInt64());
  if (!row.isColumnNull(first + 2)) {
    const auto ms = [&](int i) { return from_us(row.getColumn(first + i).getInt64()); };
    tick.phases = PhaseTimings{ms(2), ms(3), ms(4), ms(5), ms(6)};
  }
  return tick;
}

// A tick as apply() stored it: durations rounded to whole microseconds, so a rollup folded from
// the batch equals one summed from the stored ticks.
Tick as_stored(const Tick& tick) {
  Tick stored;
  stored.up = tick.up;
  stored.response_ms = from_us(to_us(tick.response_ms));
  if (tick.phases) {
    const auto& p = *tick.phases;
    const auto round = [](double ms) { return from_us(to_us(ms)); };
    stored.phases = PhaseTimings{round(p.resolve_ms), round(p.connect_ms), round(p.tls_ms),
                                 round(p.processing_ms), round(p.transfer_ms)};
  }
  return stored;
}

// How vigil_histogram_merge's error begins: what tells a corrupt row from other failures.
constexpr std::string_view kCorruptRow = "corrupt rollup row: ";

// vigil_histogram_merge(a, b): the encoded sum of two encoded histograms, so that adding to a
// period's row is one upsert instead of a read and a write.
void histogram_merge_sql(sqlite3_context* context, int, sqlite3_value** args) {
  const auto blob = [](sqlite3_value* value) {
    return std::pair(sqlite3_value_blob(value),
                     static_cast<std::size_t>(std::max(sqlite3_value_bytes(value), 0)));
  };
  try {
    const auto [a, a_size] = blob(args[0]);
    const auto [b, b_size] = blob(args[1]);
    LatencyHistogram merged = LatencyHistogram::decode(a, a_size);
    merged.merge_encoded(b, b_size);
    const std::string out = merged.encode();
    sqlite3_result_blob(context, out.data(), static_cast<int>(out.size()), SQLITE_TRANSIENT);
  } catch (const std::exception& e) {
    sqlite3_result_error(context, (std::string(kCorruptRow) + e.what()).c_str(), -1);
  }
}

// `db`, with vigil_histogram_merge defined on it (before add_sql is prepared).
SQLite::Database& with_histogram_merge(SQLite::Database& db) {
  db.createFunction("vigil_histogram_merge", 2, true, nullptr, &histogram_merge_sql);
  return db;
}

// Adds a summary to its period's row (inserted when new): the same arithmetic as
// RollupSummary::merge, done by SQLite in place. A stored row always has a tick, so MIN and MAX
// need no empty case.
std::string add_sql(Resolution resolution) {
  const std::string t = table(resolution);
  const auto sum = [&](const char* column) {
    return std::string(column) + " = " + t + "." + column + " + excluded." + column;
  };
  return "INSERT INTO " + t + kRowValues + " ON CONFLICT(bucket, service_id) DO UPDATE SET " +
         sum("count") + ", " + sum("up") + ", " + sum("down") + ", " + sum("sum_ms") +
         ", min_ms = MIN(" + t + ".min_ms, excluded.min_ms), max_ms = MAX(" + t +
         ".max_ms, excluded.max_ms), histogram = vigil_histogram_merge(" + t +
         ".histogram, excluded.histogram), " + sum("phase_count") + ", " + sum("resolve_ms") +
         ", " + sum("connect_ms") + ", " + sum("tls_ms") + ", " + sum("processing_ms") + ", " +
         sum("transfer_ms");
}
std::string upsert_sql(Resolution resolution) {
  // An upsert, not INSERT OR REPLACE: updating a row in place leaves *_by_service untouched.
  return std::string("INSERT INTO ") + table(resolution) + kRowValues +
         " ON CONFLICT(bucket, service_id) DO UPDATE SET count = excluded.count,"
         " up = excluded.up, down = excluded.down, sum_ms = excluded.sum_ms,"
         " min_ms = excluded.min_ms, max_ms = excluded.max_ms, histogram = excluded.histogram,"
         " phase_count = excluded.phase_count, resolve_ms = excluded.resolve_ms,"
         " connect_ms = excluded.connect_ms, tls_ms = excluded.tls_ms,"
         " processing_ms = excluded.processing_ms, transfer_ms = excluded.transfer_ms";
}

// How a window's pieces add up into a Value: the columns of a rollup row and of a tick it reads,
// and how one of each is added.
template <typename Value>
struct Accumulate;

template <>
struct Accumulate<RollupSummary> {
  static constexpr const char* kRowColumns = kSummaryColumns;
  static constexpr const char* kTickColumns = vigil::rollup_sql::kTickColumns;
  static void row(const SQLite::Statement& s, int first, RollupSummary& into) {
    merge_row(s, first, into);
  }
  static void tick(const SQLite::Statement& s, int first, RollupSummary& into) {
    into.add(read_tick(s, first));
  }
};

template <>
struct Accumulate<UptimeCounts> {
  static constexpr const char* kRowColumns = "count, up";
  static constexpr const char* kTickColumns = "t.up";
  static void row(const SQLite::Statement& s, int first, UptimeCounts& into) {
    into.merge({s.getColumn(first).getInt64(), s.getColumn(first + 1).getInt64()});
  }
  static void tick(const SQLite::Statement& s, int first, UptimeCounts& into) {
    into.merge({1, s.getColumn(first).getInt() != 0 ? 1 : 0});
  }
};

// Reads the pieces of a window into `out`, for every service or only one.
template <typename Value>
class Summarizer {
 public:
  Summarizer(SQLite::Database& db, std::optional<ServiceId> only, std::map<ServiceId, Value>& out)
      : db_(db), only_(only), out_(out) {}

  // [from, to) by the coarsest resolution that fits, finer ones at the edges.
  void days(std::int64_t from, std::int64_t to) { level(Resolution::day, from, to); }

 private:
  void level(Resolution resolution, std::int64_t from, std::int64_t to) {
    if (from >= to) return;
    if (resolution == Resolution::minute) return minutes(from, to);
    const std::int64_t step = period_ms(resolution);
    const std::int64_t p0 = ceil_to(from, step);
    const std::int64_t p1 = floor_to(to, step);
    const Resolution finer = resolution == Resolution::day ? Resolution::hour : Resolution::minute;
    if (p0 >= p1) return level(finer, from, to);
    level(finer, from, p0);
    period_rows(resolution, p0, p1);
    level(finer, p1, to);
  }

  // Whole minutes from their rows, every other tick of [from, to) by itself.
  void minutes(std::int64_t from, std::int64_t to) {
    const std::int64_t m0 = ceil_to(from, kMinuteMs);
    const std::int64_t m1 = std::max(m0, floor_to(to, kMinuteMs));
    period_rows(Resolution::minute, m0, m1);
    ticks(from, to, m0, m1);
  }

  void period_rows(Resolution resolution, std::int64_t from, std::int64_t to) {
    if (from >= to) return;
    // Every service: one range of the (bucket, service_id) key. One service: its index range.
    SQLite::Statement select(db_, std::string("SELECT service_id, ") +
                                      Accumulate<Value>::kRowColumns + " FROM " +
                                      table(resolution) + " WHERE bucket >= ?1 AND bucket < ?2" +
                                      (only_ ? " AND service_id = ?3" : ""));
    select.bind(1, from);
    select.bind(2, to);
    if (only_) select.bind(3, *only_);
    while (select.executeStep())
      Accumulate<Value>::row(select, 1, out_[select.getColumn(0).getInt64()]);
  }

  // Ticks with ts in [from, to), except those in [m0, m1) whose minute has a row.
  void ticks(std::int64_t from, std::int64_t to, std::int64_t m0, std::int64_t m1) {
    if (from >= to) return;
    // The IN makes SQLite seek each service's (service_id, ts) range instead of scanning.
    SQLite::Statement select(
        db_, std::string("SELECT t.service_id, ") + Accumulate<Value>::kTickColumns +
                 " FROM service_ticks t WHERE t.service_id " +
                 (only_ ? "= ?5" : "IN (SELECT id FROM services)") +
                 " AND t.ts >= ?1 AND t.ts < ?2 AND NOT (t.ts >= ?3 AND t.ts < ?4 AND EXISTS"
                 " (SELECT 1 FROM service_rollups_minute m WHERE m.bucket = t.ts - t.ts % 60000"
                 " AND m.service_id = t.service_id))");
    select.bind(1, from);
    select.bind(2, to);
    select.bind(3, m0);
    select.bind(4, m1);
    if (only_) select.bind(5, *only_);
    while (select.executeStep())
      Accumulate<Value>::tick(select, 1, out_[select.getColumn(0).getInt64()]);
  }

  SQLite::Database& db_;
  const std::optional<ServiceId> only_;
  std::map<ServiceId, Value>& out_;
};

}  // namespace

void bind_row(SQLite::Statement& statement, ServiceId id, std::int64_t bucket,
              const RollupSummary& row) {
  statement.bind(1, id);
  statement.bind(2, bucket);
  statement.bind(3, row.count);
  statement.bind(4, row.up);
  statement.bind(5, row.down);
  statement.bind(6, row.sum_ms);
  statement.bind(7, row.min_ms);
  statement.bind(8, row.max_ms);
  const std::string blob = row.histogram.encode();
  statement.bind(9, blob.data(), static_cast<int>(blob.size()));  // copied by SQLite
  statement.bind(10, row.phase_count);
  statement.bind(11, row.phase_sums.resolve_ms);
  statement.bind(12, row.phase_sums.connect_ms);
  statement.bind(13, row.phase_sums.tls_ms);
  statement.bind(14, row.phase_sums.processing_ms);
  statement.bind(15, row.phase_sums.transfer_ms);
}

RollupWriter::RollupWriter(SQLite::Database& db)
    : db_(with_histogram_merge(db)),
      add_{SQLite::Statement(db, add_sql(Resolution::hour)),
           SQLite::Statement(db, add_sql(Resolution::day))},
      upsert_{SQLite::Statement(db, upsert_sql(Resolution::minute)),
              SQLite::Statement(db, upsert_sql(Resolution::hour)),
              SQLite::Statement(db, upsert_sql(Resolution::day))},
      period_ticks_(db, std::string("SELECT ") + kTickColumns +
                            " FROM service_ticks t WHERE t.service_id = ?1 AND t.ts >= ?2"
                            " AND t.ts < ?3") {}

void RollupWriter::write(const std::vector<const Tick*>& ticks) {
  pending_newest_.clear();  // a rolled-back batch's
  pending_repairs_.clear();
  // By service and time, so each (service, period) of the batch is one run of ticks: written
  // once, in key order, with no map of the batch's periods.
  std::vector<const Tick*> sorted(ticks);
  const auto key_order = [](const Tick* a, const Tick* b) {
    return std::pair(a->service_id, a->ts) < std::pair(b->service_id, b->ts);
  };
  if (!std::is_sorted(sorted.begin(), sorted.end(), key_order))
    std::stable_sort(sorted.begin(), sorted.end(), key_order);
  // Calls each(id, bucket, first, last) for every run [first, last) of `sorted` in one period.
  const auto for_each_period = [&](std::int64_t step, auto&& each) {
    for (auto first = sorted.begin(); first != sorted.end();) {
      const ServiceId id = (*first)->service_id;
      const std::int64_t bucket = floor_to(to_unix_ms((*first)->ts), step);
      auto last = std::find_if(first, sorted.end(), [&](const Tick* t) {
        return t->service_id != id || floor_to(to_unix_ms(t->ts), step) != bucket;
      });
      each(id, bucket, first, last);
      first = last;
    }
  };
  for (const Tick* tick : sorted) {
    const std::int64_t ts = to_unix_ms(tick->ts);
    auto [it, added] = pending_newest_.try_emplace(tick->service_id, ts);
    if (!added) it->second = std::max(it->second, ts);
  }
  for_each_period(kMinuteMs, [&](ServiceId id, std::int64_t bucket, auto first, auto last) {
    // The batch's only tick of a minute, after a committed tick of an earlier minute: the
    // minute has no other tick (a service's ticks come in time order), so no row and no read.
    const auto newest = newest_.find(id);
    if (last - first == 1 && newest != newest_.end() && newest->second < bucket) return;
    write_minute(id, bucket);
  });
  RollupSummary summary;
  for (const Resolution resolution : {Resolution::hour, Resolution::day}) {
    for_each_period(period_ms(resolution),
                    [&](ServiceId id, std::int64_t bucket, auto first, auto last) {
                      summary = RollupSummary{};
                      for (auto tick = first; tick != last; ++tick) summary.add(as_stored(**tick));
                      add(resolution, id, bucket, summary);
                    });
  }
}

void RollupWriter::committed() {
  for (const auto& [id, ts] : pending_newest_) {
    auto [it, added] = newest_.try_emplace(id, ts);
    if (!added) it->second = std::max(it->second, ts);
  }
  pending_newest_.clear();
  for (const auto& repair : pending_repairs_) log_error("storage: " + repair);
  corrupt_rows_rebuilt_ += pending_repairs_.size();
  pending_repairs_.clear();
}

void RollupWriter::add(Resolution resolution, ServiceId id, std::int64_t bucket,
                       const RollupSummary& summary) {
  auto& add = add_[resolution == Resolution::hour ? 0 : 1];
  add.tryReset();
  bind_row(add, id, bucket, summary);
  try {
    add.exec();
  } catch (const SQLite::Exception& e) {
    // vigil_histogram_merge refused the stored row. Only that statement failed (SQLite undoes
    // it, the transaction goes on): rebuild the row, so that one bad row cannot fail, and
    // forever retry, the batch of every service.
    const std::string_view what = e.what();
    const auto at = what.find(kCorruptRow);
    if (at == std::string_view::npos) throw;
    add.tryReset();
    rebuild(resolution, id, bucket, summary, std::string(what.substr(at + kCorruptRow.size())));
  }
}

void RollupWriter::rebuild(Resolution resolution, ServiceId id, std::int64_t bucket,
                           const RollupSummary& batch, const std::string& error) {
  const RollupSummary from_ticks = summarize_ticks(id, bucket, bucket + period_ms(resolution));
  upsert(resolution, id, bucket, from_ticks.count > 0 ? from_ticks : batch);
  pending_repairs_.push_back(std::string(resolution == Resolution::hour ? "hour" : "day") +
                             " rollup row of service " + std::to_string(id) + " at " +
                             std::to_string(bucket) + " ms was corrupt (" + error +
                             "): rebuilt from its " +
                             std::to_string(from_ticks.count > 0 ? from_ticks.count : batch.count) +
                             (from_ticks.count > 0 ? " stored tick(s)" : " new tick(s)"));
}

RollupSummary RollupWriter::summarize_ticks(ServiceId id, std::int64_t from, std::int64_t to) {
  period_ticks_.tryReset();
  period_ticks_.bind(1, id);
  period_ticks_.bind(2, from);
  period_ticks_.bind(3, to);
  RollupSummary all;
  while (period_ticks_.executeStep()) all.add(read_tick(period_ticks_, 0));
  period_ticks_.tryReset();
  return all;
}

void RollupWriter::write_minute(ServiceId id, std::int64_t bucket) {
  // The minute's row, when it has one, summarises exactly its ticks: rebuilt from them (this
  // batch's included, a page or two) rather than read and merged. One tick needs no row.
  const RollupSummary all = summarize_ticks(id, bucket, bucket + kMinuteMs);
  if (all.count >= 2) upsert(Resolution::minute, id, bucket, all);
}

void RollupWriter::upsert(Resolution resolution, ServiceId id, std::int64_t bucket,
                          const RollupSummary& row) {
  auto& upsert = upsert_[static_cast<std::size_t>(resolution)];
  upsert.tryReset();
  bind_row(upsert, id, bucket, row);
  upsert.exec();
}

void RollupWriter::backfill_days_from_hours() {
  SQLite::Statement select(db_, std::string("SELECT service_id, bucket, ") + kSummaryColumns +
                                    " FROM service_rollups_hour ORDER BY service_id, bucket");
  std::optional<std::pair<ServiceId, std::int64_t>> day;
  RollupSummary summary;
  const auto flush = [&] {
    if (day) upsert(Resolution::day, day->first, day->second, summary);
  };
  while (select.executeStep()) {
    const std::pair<ServiceId, std::int64_t> key{select.getColumn(0).getInt64(),
                                                 floor_to(select.getColumn(1).getInt64(), kDayMs)};
    if (key != day) {
      flush();
      day = key;
      summary = RollupSummary{};
    }
    merge_row(select, 2, summary);
  }
  flush();
}

std::map<ServiceId, RollupSummary> summarize(SQLite::Database& db, std::optional<ServiceId> only,
                                             std::int64_t from_ms, std::int64_t to_ms) {
  std::map<ServiceId, RollupSummary> out;
  Summarizer<RollupSummary>(db, only, out).days(from_ms, to_ms);
  return out;
}

std::map<ServiceId, UptimeCounts> count_all(SQLite::Database& db, std::int64_t from_ms,
                                            std::int64_t to_ms) {
  std::map<ServiceId, UptimeCounts> out;
  Summarizer<UptimeCounts>(db, std::nullopt, out).days(from_ms, to_ms);
  return out;
}

std::vector<std::pair<std::int64_t, RollupSummary>> rows(SQLite::Database& db,
                                                         Resolution resolution, ServiceId id,
                                                         std::int64_t from_ms, std::int64_t to_ms) {
  std::map<std::int64_t, RollupSummary> periods;
  SQLite::Statement select(db, std::string("SELECT bucket, ") + kSummaryColumns + " FROM " +
                                   table(resolution) +
                                   " WHERE service_id = ?1 AND bucket >= ?2 AND bucket < ?3");
  select.bind(1, id);
  select.bind(2, from_ms);
  select.bind(3, to_ms);
  while (select.executeStep())
    periods.emplace(select.getColumn(0).getInt64(), read_summary(select, 1));
  if (resolution == Resolution::minute) {
    // The minutes without a row: each is the summary of its ticks.
    SQLite::Statement lone(db, std::string("SELECT t.ts, ") + kTickColumns +
                                   " FROM service_ticks t WHERE t.service_id = ?1 AND t.ts >= ?2"
                                   " AND t.ts < ?3 AND NOT EXISTS (SELECT 1 FROM"
                                   " service_rollups_minute m WHERE m.bucket = t.ts - t.ts % 60000"
                                   " AND m.service_id = t.service_id)");
    lone.bind(1, id);
    lone.bind(2, ceil_to(from_ms, kMinuteMs));
    lone.bind(3, ceil_to(to_ms, kMinuteMs));
    while (lone.executeStep())
      periods[floor_to(lone.getColumn(0).getInt64(), kMinuteMs)].add(read_tick(lone, 1));
  }
  return {periods.begin(), periods.end()};
}

std::size_t delete_older_than(SQLite::Database& db, Resolution resolution, std::int64_t cutoff_ms,
                              std::size_t batch) {
  const std::string t = table(resolution);
  SQLite::Statement erase(db, "DELETE FROM " + t + " WHERE (bucket, service_id) IN (SELECT" +
                                  " bucket, service_id FROM " + t + " WHERE bucket < ?1 LIMIT ?2)");
  erase.bind(1, cutoff_ms);
  erase.bind(2, static_cast<std::int64_t>(batch));
  return static_cast<std::size_t>(erase.exec());
}

}  // namespace vigil::rollup_sql

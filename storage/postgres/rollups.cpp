#include "storage/postgres/rollups.h"

#include <algorithm>
#include <set>
#include <stdexcept>
#include <tuple>

#include "core/logging.h"
#include "storage/store.h"

namespace vigil::postgres_rollups {
namespace {

using postgres::ArrayText;
using postgres::Result;
using postgres::Session;
using postgres::text;

const char* table(RollupResolution resolution) {
  switch (resolution) {
    case RollupResolution::minute:
      return "service_rollups_minute";
    case RollupResolution::hour:
      return "service_rollups_hour";
    case RollupResolution::day:
      return "service_rollups_day";
  }
  throw std::logic_error("bad rollup resolution");
}

std::int64_t period_ms(RollupResolution resolution) {
  switch (resolution) {
    case RollupResolution::minute:
      return kMinuteMs;
    case RollupResolution::hour:
      return kHourMs;
    case RollupResolution::day:
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
constexpr const char* kTickColumns =
    "t.up, t.response_us, t.resolve_us, t.connect_us, t.tls_us, t.processing_us, t.transfer_us";

// Merges the row's summary (kSummaryColumns from `first`) into `into`. StorageError naming a
// corrupt row when the histogram does not decode (and `into` is unchanged).
void merge_row(const Result& r, int row, int first, RollupSummary& into) {
  RollupSummary s;
  s.count = postgres::int_at(r, row, first);
  s.up = postgres::int_at(r, row, first + 1);
  s.down = postgres::int_at(r, row, first + 2);
  s.sum_ms = postgres::double_at(r, row, first + 3);
  s.min_ms = postgres::double_at(r, row, first + 4);
  s.max_ms = postgres::double_at(r, row, first + 5);
  s.phase_count = postgres::int_at(r, row, first + 7);
  s.phase_sums =
      PhaseTimings{postgres::double_at(r, row, first + 8), postgres::double_at(r, row, first + 9),
                   postgres::double_at(r, row, first + 10), postgres::double_at(r, row, first + 11),
                   postgres::double_at(r, row, first + 12)};
  const std::string blob = postgres::bytes_at(r, row, first + 6);
  try {
    into.histogram.merge_encoded(blob.data(), blob.size());
  } catch (const std::invalid_argument& e) {
    throw StorageError(std::string("corrupt rollup row: ") + e.what());
  }
  into.merge_scalars(s);
}

Tick read_tick(const Result& r, int row, int first) {
  Tick tick;
  tick.up = postgres::bool_at(r, row, first);
  tick.response_ms = from_us(postgres::int_at(r, row, first + 1));
  if (!postgres::null_at(r, row, first + 2)) {
    const auto ms = [&](int i) { return from_us(postgres::int_at(r, row, first + i)); };
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

using Key = std::pair<ServiceId, std::int64_t>;  // (service, bucket)

// Replaces (or inserts) the rows of `rows` in one statement.
void upsert(Session& session, RollupResolution resolution,
            const std::vector<std::pair<Key, RollupSummary>>& rows) {
  if (rows.empty()) return;
  ArrayText columns[15];
  for (const auto& [key, row] : rows) {
    columns[0].add(key.first);
    columns[1].add(key.second);
    columns[2].add(row.count);
    columns[3].add(row.up);
    columns[4].add(row.down);
    columns[5].add(row.sum_ms);
    columns[6].add(row.min_ms);
    columns[7].add(row.max_ms);
    columns[8].add(std::optional<std::string>(postgres::bytea(row.histogram.encode())));
    columns[9].add(row.phase_count);
    columns[10].add(row.phase_sums.resolve_ms);
    columns[11].add(row.phase_sums.connect_ms);
    columns[12].add(row.phase_sums.tls_ms);
    columns[13].add(row.phase_sums.processing_ms);
    columns[14].add(row.phase_sums.transfer_ms);
  }
  postgres::Params params;
  for (const auto& column : columns) params.push_back(column.str());
  session.run(std::string("INSERT INTO ") + table(resolution) + "(service_id, bucket, " +
                  kSummaryColumns +
                  ") SELECT * FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[],"
                  " $5::int8[], $6::float8[], $7::float8[], $8::float8[], $9::bytea[],"
                  " $10::int8[], $11::float8[], $12::float8[], $13::float8[], $14::float8[],"
                  " $15::float8[])"
                  " ON CONFLICT (bucket, service_id) DO UPDATE SET count = excluded.count,"
                  " up = excluded.up, down = excluded.down, sum_ms = excluded.sum_ms,"
                  " min_ms = excluded.min_ms, max_ms = excluded.max_ms,"
                  " histogram = excluded.histogram, phase_count = excluded.phase_count,"
                  " resolve_ms = excluded.resolve_ms, connect_ms = excluded.connect_ms,"
                  " tls_ms = excluded.tls_ms, processing_ms = excluded.processing_ms,"
                  " transfer_ms = excluded.transfer_ms",
              params);
}

// Each (service, bucket) of `keys`, of `period`, with the summary of its stored ticks.
std::map<Key, RollupSummary> summarize_ticks(Session& session, const std::set<Key>& keys,
                                             std::int64_t period) {
  std::map<Key, RollupSummary> out;
  if (keys.empty()) return out;
  ArrayText ids, buckets;
  for (const auto& [id, bucket] : keys) {
    ids.add(id);
    buckets.add(bucket);
  }
  const auto r = session.run(std::string("SELECT k.service_id, k.bucket, ") + kTickColumns +
                                 " FROM unnest($1::int8[], $2::int8[]) AS k(service_id, bucket)"
                                 " JOIN service_ticks t ON t.service_id = k.service_id"
                                 " AND t.ts >= k.bucket AND t.ts < k.bucket + $3::int8",
                             {ids.str(), buckets.str(), text(period)});
  for (int row = 0; row < r.rows(); ++row)
    out[{postgres::int_at(r, row, 0), postgres::int_at(r, row, 1)}].add(read_tick(r, row, 2));
  return out;
}

template <typename Value>
struct Accumulate;

template <>
struct Accumulate<RollupSummary> {
  static constexpr const char* kRowColumns = kSummaryColumns;
  static constexpr const char* kTickColumns = postgres_rollups::kTickColumns;
  static void row(const Result& r, int row, int first, RollupSummary& into) {
    merge_row(r, row, first, into);
  }
  static void tick(const Result& r, int row, int first, RollupSummary& into) {
    into.add(read_tick(r, row, first));
  }
};

template <>
struct Accumulate<UptimeCounts> {
  static constexpr const char* kRowColumns = "count, up";
  static constexpr const char* kTickColumns = "t.up";
  static void row(const Result& r, int row, int first, UptimeCounts& into) {
    into.merge({postgres::int_at(r, row, first), postgres::int_at(r, row, first + 1)});
  }
  static void tick(const Result& r, int row, int first, UptimeCounts& into) {
    into.merge({1, postgres::bool_at(r, row, first) ? 1 : 0});
  }
};

// Reads the pieces of a window into `out`, for every service or only one (as on SQLite).
template <typename Value>
class Summarizer {
 public:
  Summarizer(Session& session, std::optional<ServiceId> only, std::map<ServiceId, Value>& out)
      : session_(session), only_(only), out_(out) {}

  void days(std::int64_t from, std::int64_t to) { level(RollupResolution::day, from, to); }

 private:
  void level(RollupResolution resolution, std::int64_t from, std::int64_t to) {
    if (from >= to) return;
    if (resolution == RollupResolution::minute) return minutes(from, to);
    const std::int64_t step = period_ms(resolution);
    const std::int64_t p0 = ceil_to(from, step);
    const std::int64_t p1 = floor_to(to, step);
    const RollupResolution finer =
        resolution == RollupResolution::day ? RollupResolution::hour : RollupResolution::minute;
    if (p0 >= p1) return level(finer, from, to);
    level(finer, from, p0);
    period_rows(resolution, p0, p1);
    level(finer, p1, to);
  }

  void minutes(std::int64_t from, std::int64_t to) {
    const std::int64_t m0 = ceil_to(from, kMinuteMs);
    const std::int64_t m1 = std::max(m0, floor_to(to, kMinuteMs));
    period_rows(RollupResolution::minute, m0, m1);
    ticks(from, to, m0, m1);
  }

  void period_rows(RollupResolution resolution, std::int64_t from, std::int64_t to) {
    if (from >= to) return;
    postgres::Params params{text(from), text(to)};
    if (only_) params.push_back(text(*only_));
    const auto r =
        session_.run(std::string("SELECT service_id, ") + Accumulate<Value>::kRowColumns +
                         " FROM " + table(resolution) + " WHERE bucket >= $1 AND bucket < $2" +
                         (only_ ? " AND service_id = $3" : ""),
                     params);
    for (int row = 0; row < r.rows(); ++row)
      Accumulate<Value>::row(r, row, 1, out_[postgres::int_at(r, row, 0)]);
  }

  // Ticks with ts in [from, to), except those in [m0, m1) whose minute has a row.
  void ticks(std::int64_t from, std::int64_t to, std::int64_t m0, std::int64_t m1) {
    if (from >= to) return;
    postgres::Params params{text(from), text(to), text(m0), text(m1)};
    if (only_) params.push_back(text(*only_));
    const auto r = session_.run(
        std::string("SELECT t.service_id, ") + Accumulate<Value>::kTickColumns +
            " FROM service_ticks t WHERE " + (only_ ? "t.service_id = $5 AND " : "") +
            "t.ts >= $1 AND t.ts < $2 AND NOT (t.ts >= $3 AND t.ts < $4 AND EXISTS"
            " (SELECT 1 FROM service_rollups_minute m WHERE m.bucket = t.ts - t.ts % 60000"
            " AND m.service_id = t.service_id))",
        params);
    for (int row = 0; row < r.rows(); ++row)
      Accumulate<Value>::tick(r, row, 1, out_[postgres::int_at(r, row, 0)]);
  }

  Session& session_;
  const std::optional<ServiceId> only_;
  std::map<ServiceId, Value>& out_;
};

}  // namespace

void Writer::write(Session& session, const std::vector<const Tick*>& ticks) {
  pending_newest_.clear();  // a rolled-back batch's
  pending_repairs_.clear();
  for (const Tick* tick : ticks) {
    const std::int64_t ts = to_unix_ms(tick->ts);
    auto [it, added] = pending_newest_.try_emplace(tick->service_id, ts);
    if (!added) it->second = std::max(it->second, ts);
  }

  // Minutes: each minute of the batch is rebuilt from its stored ticks (the batch's included),
  // except the batch's only tick of a minute after the service's newest committed tick, which
  // has no other tick in its minute and so no row.
  std::map<Key, int> minute_ticks;
  for (const Tick* tick : ticks)
    ++minute_ticks[{tick->service_id, floor_to(to_unix_ms(tick->ts), kMinuteMs)}];
  std::set<Key> minutes;
  for (const auto& [key, n] : minute_ticks) {
    const auto newest = newest_.find(key.first);
    if (n == 1 && newest != newest_.end() && newest->second < key.second) continue;
    minutes.insert(key);
  }
  std::vector<std::pair<Key, RollupSummary>> minute_rows;
  for (const auto& [key, summary] : summarize_ticks(session, minutes, kMinuteMs))
    if (summary.count >= 2) minute_rows.emplace_back(key, summary);
  upsert(session, RollupResolution::minute, minute_rows);

  for (const RollupResolution resolution : {RollupResolution::hour, RollupResolution::day}) {
    const std::int64_t step = period_ms(resolution);
    std::map<Key, RollupSummary> batch;
    for (const Tick* tick : ticks)
      batch[{tick->service_id, floor_to(to_unix_ms(tick->ts), step)}].add(as_stored(*tick));
    if (batch.empty()) continue;
    ArrayText ids, buckets;
    for (const auto& [key, summary] : batch) {
      ids.add(key.first);
      buckets.add(key.second);
    }
    // Locked until the batch commits, so another writer cannot merge into the same rows.
    const auto stored =
        session.run(std::string("SELECT r.service_id, r.bucket, ") + kSummaryColumns + " FROM " +
                        table(resolution) +
                        " r JOIN unnest($1::int8[], $2::int8[]) AS k(service_id, bucket)"
                        " ON r.bucket = k.bucket AND r.service_id = k.service_id FOR UPDATE OF r",
                    {ids.str(), buckets.str()});
    std::set<Key> corrupt;
    std::map<Key, RollupSummary> merged = batch;
    for (int row = 0; row < stored.rows(); ++row) {
      const Key key{postgres::int_at(stored, row, 0), postgres::int_at(stored, row, 1)};
      try {
        RollupSummary existing;
        merge_row(stored, row, 2, existing);
        merged[key].merge(existing);
      } catch (const StorageError& e) {
        corrupt.insert(key);
        pending_repairs_.push_back(
            std::string(resolution == RollupResolution::hour ? "hour" : "day") +
            " rollup row of service " + std::to_string(key.first) + " at " +
            std::to_string(key.second) + " ms was corrupt (" + e.what() +
            "): rebuilt from its stored tick(s)");
      }
    }
    // A corrupt row is rebuilt from the ticks of its period (this batch's included), so that one
    // bad row cannot fail, and forever retry, the batch of every service.
    for (const auto& [key, summary] : summarize_ticks(session, corrupt, step))
      if (summary.count > 0) merged[key] = summary;
    upsert(session, resolution, {merged.begin(), merged.end()});
  }
}

void Writer::committed() {
  for (const auto& [id, ts] : pending_newest_) {
    auto [it, added] = newest_.try_emplace(id, ts);
    if (!added) it->second = std::max(it->second, ts);
  }
  pending_newest_.clear();
  for (const auto& repair : pending_repairs_) log_error("storage: " + repair);
  corrupt_rows_rebuilt_ += pending_repairs_.size();
  pending_repairs_.clear();
}

std::map<ServiceId, RollupSummary> summarize(Session& session, std::optional<ServiceId> only,
                                             std::int64_t from_ms, std::int64_t to_ms) {
  std::map<ServiceId, RollupSummary> out;
  Summarizer<RollupSummary>(session, only, out).days(from_ms, to_ms);
  return out;
}

std::map<ServiceId, UptimeCounts> count_all(Session& session, std::int64_t from_ms,
                                            std::int64_t to_ms) {
  std::map<ServiceId, UptimeCounts> out;
  Summarizer<UptimeCounts>(session, std::nullopt, out).days(from_ms, to_ms);
  return out;
}

std::vector<std::pair<std::int64_t, RollupSummary>> rows(Session& session,
                                                         RollupResolution resolution, ServiceId id,
                                                         std::int64_t from_ms, std::int64_t to_ms) {
  std::map<std::int64_t, RollupSummary> periods;
  const auto r =
      session.run(std::string("SELECT bucket, ") + kSummaryColumns + " FROM " + table(resolution) +
                      " WHERE service_id = $1 AND bucket >= $2 AND bucket < $3",
                  {text(id), text(from_ms), text(to_ms)});
  for (int row = 0; row < r.rows(); ++row)
    merge_row(r, row, 1, periods[postgres::int_at(r, row, 0)]);
  if (resolution == RollupResolution::minute) {
    const auto lone =
        session.run(std::string("SELECT t.ts, ") + kTickColumns +
                        " FROM service_ticks t WHERE t.service_id = $1 AND t.ts >= $2 AND t.ts < $3"
                        " AND NOT EXISTS (SELECT 1 FROM service_rollups_minute m"
                        " WHERE m.bucket = t.ts - t.ts % 60000 AND m.service_id = t.service_id)",
                    {text(id), text(ceil_to(from_ms, kMinuteMs)), text(ceil_to(to_ms, kMinuteMs))});
    for (int row = 0; row < lone.rows(); ++row)
      periods[floor_to(postgres::int_at(lone, row, 0), kMinuteMs)].add(read_tick(lone, row, 1));
  }
  return {periods.begin(), periods.end()};
}

std::size_t delete_older_than(Session& session, RollupResolution resolution, std::int64_t cutoff_ms,
                              std::size_t batch) {
  const std::string t = table(resolution);
  const auto r = session.run("DELETE FROM " + t + " WHERE (bucket, service_id) IN (SELECT" +
                                 " bucket, service_id FROM " + t + " WHERE bucket < $1 LIMIT $2)",
                             {text(cutoff_ms), text(static_cast<std::int64_t>(batch))});
  return static_cast<std::size_t>(r.affected_rows());
}

}  // namespace vigil::postgres_rollups

// The SQLite side of the rollups: writing the minute, hour and day rows in apply()'s
// transaction, and reading summaries of any window back. Internal to storage/.
//
// The minute resolution of a service is its minute rows where a minute had two ticks or more,
// and the tick itself where a minute had only one (it is that minute's rollup: at a 60 s
// interval a row per tick would double the database). Readers treat every minute without a row
// as the summary of its ticks, which stays right after a restart or once retention removed rows.
#pragma once

#include <SQLiteCpp/SQLiteCpp.h>

#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/model.h"
#include "storage/rollups.h"

namespace vigil::rollup_sql {

using Resolution = RollupResolution;
inline constexpr std::int64_t kMinuteMs = 60'000;
inline constexpr std::int64_t kHourMs = 3'600'000;
inline constexpr std::int64_t kDayMs = 86'400'000;

// Ticks store durations as whole microseconds; rollups are built from the stored values.
inline std::int64_t to_us(double ms) { return std::llround(ms * 1000.0); }
inline double from_us(std::int64_t us) { return static_cast<double>(us) / 1000.0; }

// A rollup row's columns with their parameters, to follow "INSERT INTO <table>", and the
// binding of one row to them: what the writer upserts, and what a seeding tool inserts.
inline constexpr const char* kRowValues =
    "(service_id, bucket, count, up, down, sum_ms, min_ms, max_ms, histogram, phase_count,"
    " resolve_ms, connect_ms, tls_ms, processing_ms, transfer_ms)"
    " VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
void bind_row(SQLite::Statement& statement, ServiceId id, std::int64_t bucket,
              const RollupSummary& row);

// Prepared once per write connection. The caller holds the write transaction.
class RollupWriter {
 public:
  explicit RollupWriter(SQLite::Database& db);
  // Folds `ticks` (already inserted in the same transaction) into their hour and day rows (one
  // upsert per service and period of the batch), and writes the row of each minute
  // they fall in that has two ticks or more.
  void write(const std::vector<const Tick*>& ticks);
  // The transaction that write() was part of committed: what it wrote may be relied upon. Logs
  // the corrupt rows that write() rebuilt in it, once each.
  void committed();
  // Hour and day rows that write() found corrupt (their histogram does not decode) and rebuilt
  // from the ticks of their period, in committed transactions, since this writer was made.
  std::uint64_t corrupt_rows_rebuilt() const { return corrupt_rows_rebuilt_; }
  // Migration 7: writes every day row from the hour rows of that day.
  void backfill_days_from_hours();

 private:
  // Adds `summary` to the hour or day row of `bucket`.
  void add(Resolution resolution, ServiceId id, std::int64_t bucket, const RollupSummary& summary);
  // Replaces the corrupt row of `bucket` with the summary of the service's ticks in that period
  // (this batch's included); `batch` is what the batch adds, written as it is if no tick is left.
  void rebuild(Resolution resolution, ServiceId id, std::int64_t bucket, const RollupSummary& batch,
               const std::string& error);
  // The summary of the stored ticks of service `id` in [from, to).
  RollupSummary summarize_ticks(ServiceId id, std::int64_t from, std::int64_t to);
  void write_minute(ServiceId id, std::int64_t bucket);
  void upsert(Resolution resolution, ServiceId id, std::int64_t bucket, const RollupSummary& row);
  SQLite::Database& db_;
  SQLite::Statement add_[2];     // hour, day
  SQLite::Statement upsert_[3];  // replaces the row: minutes, the day backfill
  SQLite::Statement period_ticks_;
  // The newest committed tick of each service this writer wrote, and the current batch's: a
  // minute after a service's newest tick holds only the batch's ticks.
  std::unordered_map<ServiceId, std::int64_t> newest_;
  std::unordered_map<ServiceId, std::int64_t> pending_newest_;
  std::vector<std::string> pending_repairs_;  // the current batch's rebuilt rows, for the log
  std::uint64_t corrupt_rows_rebuilt_ = 0;
};

// The summary of each service (all, or only `only`) over the ticks with ts in [from, to): whole
// days from day rows, whole hours around them from hour rows, whole minutes around those from
// minute rows (or their single tick), raw ticks at the edges.
std::map<ServiceId, RollupSummary> summarize(SQLite::Database& db, std::optional<ServiceId> only,
                                             std::int64_t from_ms, std::int64_t to_ms);

// The same pieces of [from, to) for every service, counting only ticks and up ticks.
std::map<ServiceId, UptimeCounts> count_all(SQLite::Database& db, std::int64_t from_ms,
                                            std::int64_t to_ms);

// The periods of one service with ticks, bucket in [from, to), ascending, with their start.
// For minutes: the minute rows and the minutes whose only tick stands for their row.
std::vector<std::pair<std::int64_t, RollupSummary>> rows(SQLite::Database& db,
                                                         Resolution resolution, ServiceId id,
                                                         std::int64_t from_ms, std::int64_t to_ms);

// Deletes up to `batch` rows with bucket < cutoff; returns how many.
std::size_t delete_older_than(SQLite::Database& db, Resolution resolution, std::int64_t cutoff_ms,
                              std::size_t batch);

}  // namespace vigil::rollup_sql

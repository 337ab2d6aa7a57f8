// The SQLite side of the rollups (issue 6): writing the minute and hour rows in apply()'s
// transaction, and reading summaries of any window back. Internal to storage/.
#pragma once

#include <SQLiteCpp/SQLiteCpp.h>

#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "storage/model.h"
#include "storage/rollups.h"

namespace vigil::rollup_sql {

using Resolution = RollupResolution;
inline constexpr std::int64_t kMinuteMs = 60'000;
inline constexpr std::int64_t kHourMs = 3'600'000;

// Prepared once per write connection. The caller holds the write transaction.
class RollupWriter {
 public:
  explicit RollupWriter(SQLite::Database& db);
  // Folds `ticks` (already inserted in the same transaction) into their minute and hour rows:
  // one read and one upsert per (service, period) of the batch.
  void write(const std::vector<const Tick*>& ticks);

 private:
  void write_one(Resolution resolution, ServiceId id, std::int64_t bucket,
                 const RollupSummary& add);
  SQLite::Statement select_[2];
  SQLite::Statement upsert_[2];
};

// The summary of each service (all, or only `only`) over the ticks with ts in [from, to): whole
// hours from hour rows, whole minutes around them from minute rows, raw ticks at the edges.
std::map<ServiceId, RollupSummary> summarize(SQLite::Database& db, std::optional<ServiceId> only,
                                             std::int64_t from_ms, std::int64_t to_ms);

// Rollup rows of one service with bucket in [from, to), ascending, with their bucket start.
std::vector<std::pair<std::int64_t, RollupSummary>> rows(SQLite::Database& db,
                                                         Resolution resolution, ServiceId id,
                                                         std::int64_t from_ms, std::int64_t to_ms);

// Deletes up to `batch` rows with bucket < cutoff; returns how many.
std::size_t delete_older_than(SQLite::Database& db, Resolution resolution, std::int64_t cutoff_ms,
                              std::size_t batch);

}  // namespace vigil::rollup_sql

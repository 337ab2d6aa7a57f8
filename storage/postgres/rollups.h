// The PostgreSQL side of the rollups, with SQLite's semantics: minute, hour and day rows written
// in apply()'s transaction, and summaries of any window read back from them. Internal to
// storage/postgres/.
//
// As on SQLite, a minute with a single tick has no minute row: that tick is the minute's rollup,
// and readers treat every minute without a row as the summary of its ticks. Histograms are
// merged in C++ (the rows a batch touches are read with FOR UPDATE, merged, and written back in
// one multi-row upsert per resolution), so the database needs no extension.
#pragma once

#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/model.h"
#include "storage/postgres/session.h"
#include "storage/rollups.h"

namespace vigil::postgres_rollups {

inline constexpr std::int64_t kMinuteMs = 60'000;
inline constexpr std::int64_t kHourMs = 3'600'000;
inline constexpr std::int64_t kDayMs = 86'400'000;

// Ticks store durations as whole microseconds (as on SQLite); rollups are built from the stored
// values.
inline std::int64_t to_us(double ms) { return std::llround(ms * 1000.0); }
inline double from_us(std::int64_t us) { return static_cast<double>(us) / 1000.0; }

// One per write session; the caller holds the batch's transaction.
class Writer {
 public:
  // Folds `ticks` (inserted in the same transaction) into their hour and day rows, and writes
  // the row of each minute they fall in that has two ticks or more.
  void write(postgres::Session& session, const std::vector<const Tick*>& ticks);
  // The transaction of the last write() committed: logs the rows it rebuilt, once each.
  void committed();
  // Hour and day rows found corrupt (their histogram does not decode) and rebuilt from the ticks
  // of their period, in committed transactions.
  std::uint64_t corrupt_rows_rebuilt() const { return corrupt_rows_rebuilt_; }

 private:
  // The newest committed tick of each service this writer wrote, and the current batch's: a
  // minute after a service's newest tick holds only the batch's ticks.
  std::unordered_map<ServiceId, std::int64_t> newest_;
  std::unordered_map<ServiceId, std::int64_t> pending_newest_;
  std::vector<std::string> pending_repairs_;
  std::uint64_t corrupt_rows_rebuilt_ = 0;
};

// The summary of each service (all, or only `only`) over the ticks with ts in [from, to): whole
// days from day rows, whole hours around them from hour rows, whole minutes around those from
// minute rows (or their single tick), raw ticks at the edges.
std::map<ServiceId, RollupSummary> summarize(postgres::Session& session,
                                             std::optional<ServiceId> only, std::int64_t from_ms,
                                             std::int64_t to_ms);
// The same pieces for every service, counting only ticks and up ticks.
std::map<ServiceId, UptimeCounts> count_all(postgres::Session& session, std::int64_t from_ms,
                                            std::int64_t to_ms);
// The periods of one service with ticks, bucket in [from, to), ascending. For minutes: the
// minute rows and the minutes whose only tick stands for their row.
std::vector<std::pair<std::int64_t, RollupSummary>> rows(postgres::Session& session,
                                                         RollupResolution resolution, ServiceId id,
                                                         std::int64_t from_ms, std::int64_t to_ms);
// Deletes up to `batch` rows with bucket < cutoff; returns how many.
std::size_t delete_older_than(postgres::Session& session, RollupResolution resolution,
                              std::int64_t cutoff_ms, std::size_t batch);

}  // namespace vigil::postgres_rollups

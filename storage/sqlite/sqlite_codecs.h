// How a tick's phases are laid out in SQLite columns, and a statement's row as the row readers
// every backend shares take it (storage/stored_row.h). Internal to the SQLite backend.
#pragma once

#include <SQLiteCpp/SQLiteCpp.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/model.h"
#include "storage/column_codecs.h"
#include "storage/stored_row.h"

namespace vigil::sqlite {

// Times and durations are stored as unix milliseconds.
inline std::int64_t ms(TimePoint t) { return to_unix_ms(t); }
inline std::int64_t ms(Millis d) { return d.count(); }

// " AND (<expression>) % 64 IN (1,5)" for a cluster member's shards (core/shards.h); empty, for
// every shard, without them. The shards are integers, spliced as digits.
std::string and_in_shards(std::string_view expression,
                          const std::optional<std::vector<int>>& shards);

// The five phase columns of a tick, in whole microseconds: bound at ?first.. (NULL without
// phases), read from column `first` on (NULL resolve_us means no phases).
void bind_phases(SQLite::Statement& statement, int first, const std::optional<PhaseTimings>& p);
std::optional<PhaseTimings> read_phases(const SQLite::Statement& row, int first);

// A statement stepped onto a row, as the readers every backend shares take it
// (storage/stored_row.h). `Statement`: SQLite::Statement, or any statement type with the same
// getColumn and isColumnNull.
template <typename Statement>
class StatementRow final : public StoredRow {
 public:
  explicit StatementRow(const Statement& row) : row_(row) {}
  bool is_null(int column) const override { return row_.isColumnNull(column); }
  std::int64_t integer(int column) const override { return row_.getColumn(column).getInt64(); }
  bool boolean(int column) const override { return row_.getColumn(column).getInt() != 0; }
  std::string text(int column) const override { return row_.getColumn(column).getString(); }

 private:
  const Statement& row_;
};

}  // namespace vigil::sqlite

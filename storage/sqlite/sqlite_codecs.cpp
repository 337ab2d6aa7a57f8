#include "storage/sqlite/sqlite_codecs.h"

#include <string>
#include <string_view>

#include "core/shards.h"
#include "storage/sqlite/rollup_sql.h"

namespace vigil::sqlite {

using rollup_sql::from_us;
using rollup_sql::to_us;

void bind_phases(SQLite::Statement& statement, int first, const std::optional<PhaseTimings>& p) {
  if (!p) {
    for (int i = 0; i < 5; ++i) statement.bind(first + i);
    return;
  }
  statement.bind(first + 0, to_us(p->resolve_ms));
  statement.bind(first + 1, to_us(p->connect_ms));
  statement.bind(first + 2, to_us(p->tls_ms));
  statement.bind(first + 3, to_us(p->processing_ms));
  statement.bind(first + 4, to_us(p->transfer_ms));
}

std::optional<PhaseTimings> read_phases(const SQLite::Statement& row, int first) {
  if (row.isColumnNull(first)) return std::nullopt;
  PhaseTimings p;
  p.resolve_ms = from_us(row.getColumn(first + 0).getInt64());
  p.connect_ms = from_us(row.getColumn(first + 1).getInt64());
  p.tls_ms = from_us(row.getColumn(first + 2).getInt64());
  p.processing_ms = from_us(row.getColumn(first + 3).getInt64());
  p.transfer_ms = from_us(row.getColumn(first + 4).getInt64());
  return p;
}

std::string and_in_shards(std::string_view expression,
                          const std::optional<std::vector<int>>& shards) {
  if (!shards) return {};
  std::string list;
  for (const int shard : *shards) list += (list.empty() ? "" : ",") + std::to_string(shard);
  return " AND (" + std::string(expression) + ") % " + std::to_string(kShardCount) + " IN (" +
         list + ")";
}

}  // namespace vigil::sqlite

#include "storage/migrate/sqlite_to_postgres.h"

#include <SQLiteCpp/SQLiteCpp.h>

#include <algorithm>
#include <filesystem>
#include <initializer_list>
#include <set>
#include <string>
#include <vector>

#include "storage/postgres/connection.h"
#include "storage/postgres/schema.h"
#include "storage/postgres/session.h"
#include "storage/sqlite/sqlite_schema.h"
#include "storage/store.h"

namespace vigil {
namespace {

// How a SQLite value becomes the PostgreSQL column's: the same number or text, INTEGER 0/1 as a
// boolean, a BLOB as bytea.
enum class Kind { integer, real, text, boolean, bytes };

struct Column {
  const char* name;
  Kind kind;
};

struct CopiedTable {
  const char* name;
  std::vector<Column> columns;  // the same names in both schemas
  const char* order_by;         // the source's reading order: its key, so the copy is stable
  const char* identity;         // the target's identity column, moved past the copied ids
  bool partitioned_by_ts = false;
};

constexpr Kind I = Kind::integer;
constexpr Kind R = Kind::real;
constexpr Kind T = Kind::text;
constexpr Kind B = Kind::boolean;
constexpr Kind X = Kind::bytes;

std::vector<Column> rollup_columns() {
  return {{"service_id", I}, {"bucket", I},        {"count", I},      {"up", I},
          {"down", I},       {"sum_ms", R},        {"min_ms", R},     {"max_ms", R},
          {"histogram", X},  {"phase_count", I},   {"resolve_ms", R}, {"connect_ms", R},
          {"tls_ms", R},     {"processing_ms", R}, {"transfer_ms", R}};
}

// The explicit mapping, in an order that satisfies the target's foreign keys. Checked against
// both schemas before anything is copied (check_columns), so a column added to one schema and
// not here fails the copy instead of being left behind.
const std::vector<CopiedTable>& copied_tables() {
  static const std::vector<CopiedTable> tables = {
      {"regions", {{"id", I}, {"name", T}}, "id", "id"},
      {"services",
       {{"id", I},
        {"name", T},
        {"url", T},
        {"interval_ms", I},
        {"timeout_ms", I},
        {"method", T},
        {"headers", T},
        {"expected_status", T},
        {"active", B},
        {"source", T},
        {"created_at", I},
        {"updated_at", I},
        {"kind", T},
        {"grace_ms", I},
        {"threshold", I},
        {"team", T},
        {"priority", I},
        {"runbook", T},
        {"tags", T},
        {"muted", B},
        {"muted_until", I},
        {"push_token", T},
        {"revision", I},
        {"probe_options", T},
        {"alert_channels", T},
        {"repeat_every_ms", I}},
       "id",
       nullptr},
      // A new service's id is above every id in services and here: purged ids stay given.
      {"service_tombstones", {{"revision", I}, {"service_id", I}}, "revision, service_id", nullptr},
      {"service_metrics",
       {{"service_id", I},
        {"tick_count", I},
        {"up_count", I},
        {"down_count", I},
        {"average_response_time_ms", R},
        {"uptime_percent", R},
        {"last_tick_at", I},
        {"updated_at", I}},
       "service_id",
       nullptr},
      {"service_events",
       {{"id", I},
        {"service_id", I},
        {"event", T},
        {"date_started", I},
        {"date_ended", I},
        {"created_at", I},
        {"updated_at", I}},
       "id",
       "id"},
      {"service_ticks",
       {{"service_id", I},
        {"ts", I},
        {"seq", I},
        {"up", B},
        {"status_code", I},
        {"response_us", I},
        {"error", T},
        {"region_id", I},
        {"message", T},
        {"resolve_us", I},
        {"connect_us", I},
        {"tls_us", I},
        {"processing_us", I},
        {"transfer_us", I}},
       "service_id, ts, seq",
       nullptr,
       true},
      {"service_rollups_minute", rollup_columns(), "bucket, service_id", nullptr},
      {"service_rollups_hour", rollup_columns(), "bucket, service_id", nullptr},
      {"service_rollups_day", rollup_columns(), "bucket, service_id", nullptr},
      {"pending_beats",
       {{"id", I},
        {"service_id", I},
        {"at", I},
        {"up", B},
        {"message", T},
        {"duration_ms", R},
        {"claimed_by", T}},
       "id",
       "id"},
      {"alerts",
       {{"alert_id", I},
        {"alert_name", T},
        {"service_id", I},
        {"active", B},
        {"external_reference_id", T},
        {"alert_cycle", I},
        {"reason", T},
        {"created_date", I},
        {"closed_date", I},
        {"previous_status", T}},
       "alert_id",
       "alert_id"},
      {"notifications",
       {{"id", I},
        {"alert_id", I},
        {"channel", T},
        {"kind", T},
        {"payload", T},
        {"status", T},
        {"attempt", I},
        {"next_attempt_at", I},
        {"response_code", I},
        {"error", T},
        {"created_at", I},
        {"sent_at", I}},
       "id",
       "id"},
      {"maintenance_windows", {{"id", I}, {"definition", T}, {"created_at", I}}, "id", "id"},
  };
  return tables;
}

// component_beats: the liveness of the processes on the source; schema_version: each database
// keeps its own.
constexpr const char* kNotCopied[] = {"component_beats", "schema_version"};

std::string column_list(const CopiedTable& table) {
  std::string out;
  for (const auto& column : table.columns)
    out += (out.empty() ? "" : ", ") + std::string(column.name);
  return out;
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& name : names) out += (out.empty() ? "" : ", ") + name;
  return out;
}

std::vector<std::string> sorted_columns(const CopiedTable& table) {
  std::vector<std::string> names;
  for (const auto& column : table.columns) names.emplace_back(column.name);
  std::sort(names.begin(), names.end());
  return names;
}

// The source must be at this vigil's schema: an older file is migrated by opening it with vigil
// (which the read-only copy must not do), a newer one is not understood.
void check_source_version(SQLite::Database& source, const std::string& path) {
  if (!source.tableExists("schema_version"))
    throw MigrateRefused(path + " is not a vigil database (it has no schema_version table)");
  const auto version =
      source.execAndGet("SELECT COALESCE(MAX(version), 0) FROM schema_version").getInt64();
  const int current = sqlite_schema::current_version();
  if (version == current) return;
  if (version > current)
    throw MigrateRefused(path + " has schema version " + std::to_string(version) +
                         ", this vigil knows up to " + std::to_string(current) +
                         "; copy it with the vigil that wrote it");
  throw MigrateRefused(path + " has schema version " + std::to_string(version) +
                       ", this vigil copies version " + std::to_string(current) +
                       " only; start this vigil once on it (vigil api or vigil run with DB_FILE=" +
                       path + " migrates it), stop it, then run vigil migrate again");
}

// Every table of the source is copied or deliberately left out, and every copied table has the
// mapping's columns in both schemas: a column the mapping misses is an error, not a silent loss.
void check_columns(SQLite::Database& source, postgres::Session& target) {
  SQLite::Statement tables(source,
                           "SELECT name FROM sqlite_master WHERE type = 'table'"
                           " AND name NOT LIKE 'sqlite_%' ORDER BY name");
  const auto known = [](const std::string& name) {
    for (const auto& table : copied_tables())
      if (name == table.name) return true;
    return std::find(std::begin(kNotCopied), std::end(kNotCopied), name) != std::end(kNotCopied);
  };
  while (tables.executeStep()) {
    const std::string name = tables.getColumn(0).getString();
    if (!known(name))
      throw MigrateFailed("the source has a table this vigil does not know how to copy: " + name);
  }
  for (const auto& table : copied_tables()) {
    const std::vector<std::string> expected = sorted_columns(table);
    std::vector<std::string> in_source;
    SQLite::Statement info(source, std::string("SELECT name FROM pragma_table_info('") +
                                       table.name + "') ORDER BY name");
    while (info.executeStep()) in_source.push_back(info.getColumn(0).getString());
    if (in_source != expected)
      throw MigrateFailed(std::string("the source's table ") + table.name + " has the columns " +
                          joined(in_source) + ", the copy knows " + joined(expected));
    const auto rows = target.run(
        "SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0"
        " AND NOT attisdropped ORDER BY attname COLLATE \"C\"",
        {std::string(table.name)});
    std::vector<std::string> in_target;
    for (int row = 0; row < rows.rows(); ++row)
      in_target.push_back(postgres::text_at(rows, row, 0));
    if (in_target != expected)
      throw MigrateFailed(std::string("the target's table ") + table.name + " has the columns " +
                          joined(in_target) + ", the copy knows " + joined(expected));
  }
}

// Names the copied tables that hold rows, reading at most one row of each.
std::vector<std::string> tables_with_rows(postgres::Session& target) {
  std::string sql;
  for (const auto& table : copied_tables()) {
    if (!sql.empty()) sql += " UNION ALL ";
    sql +=
        std::string("SELECT '") + table.name + "' WHERE EXISTS (SELECT 1 FROM " + table.name + ")";
  }
  const auto rows = target.exec(sql);
  std::vector<std::string> names;
  for (int row = 0; row < rows.rows(); ++row) names.push_back(postgres::text_at(rows, row, 0));
  return names;
}

void add_value(postgres::CopyText& out, const SQLite::Column& value, Kind kind) {
  if (value.isNull()) return out.add_null();
  switch (kind) {
    case Kind::integer:
      return out.add(std::int64_t{value.getInt64()});
    case Kind::real:
      return out.add(value.getDouble());
    case Kind::text:
      return out.add(std::optional<std::string>(value.getString()));
    case Kind::boolean:
      return out.add(value.getInt64() != 0);
    case Kind::bytes:
      return out.add(std::optional<std::string>(postgres::bytea(std::string(
          static_cast<const char*>(value.getBlob()), static_cast<std::size_t>(value.getBytes())))));
  }
}

class TableCopy {
 public:
  TableCopy(SQLite::Database& source, postgres::Session& target, std::set<std::int64_t>& days,
            std::ostream& progress, const MigrateOptions& options)
      : source_(source), target_(target), days_(days), progress_(progress), options_(options) {}

  // Copies every row of `table` in chunks of options.chunk_rows; returns how many.
  std::int64_t copy(const CopiedTable& table, std::int64_t total) {
    const std::string columns = column_list(table);
    const std::string copy_sql = std::string("COPY ") + table.name + "(" + columns + ") FROM STDIN";
    SQLite::Statement rows(
        source_, "SELECT " + columns + " FROM " + table.name + " ORDER BY " + table.order_by);
    postgres::CopyText chunk;
    std::size_t in_chunk = 0;
    std::int64_t copied = 0;
    std::set<std::int64_t> new_days;
    const auto flush = [&] {
      if (in_chunk == 0) return;
      // A tick needs the partition of its day, created in this transaction with the copy.
      for (const std::int64_t day : new_days) postgres_schema::create_partition(target_, day);
      days_.insert(new_days.begin(), new_days.end());
      new_days.clear();
      copied += target_.connection().copy_in(copy_sql, chunk.str());
      chunk = postgres::CopyText();
      in_chunk = 0;
      if (total > static_cast<std::int64_t>(options_.chunk_rows))
        progress_ << "migrate: " << table.name << " " << copied << "/" << total << std::endl;
    };
    while (rows.executeStep()) {
      for (int i = 0; i < static_cast<int>(table.columns.size()); ++i)
        add_value(chunk, rows.getColumn(i), table.columns[static_cast<std::size_t>(i)].kind);
      chunk.end_row();
      if (table.partitioned_by_ts) {
        const std::int64_t day = postgres_schema::partition_day(rows.getColumn(1).getInt64());
        if (!days_.contains(day)) new_days.insert(day);
      }
      if (++in_chunk >= options_.chunk_rows) flush();
    }
    flush();
    return copied;
  }

 private:
  SQLite::Database& source_;
  postgres::Session& target_;
  std::set<std::int64_t>& days_;  // the days that have a tick partition
  std::ostream& progress_;
  const MigrateOptions& options_;
};

MigrateSummary copy_all(SQLite::Database& source, const std::string& source_path,
                        postgres::Session& target, std::ostream& progress,
                        const MigrateOptions& options) {
  MigrateSummary summary;
  summary.target = target.connection().description();
  postgres_schema::migrate(target, summary.target);
  check_columns(source, target);

  // One snapshot of the source, whatever a vigil process writes to it meanwhile.
  source.exec("BEGIN");
  std::vector<std::int64_t> totals;
  for (const auto& table : copied_tables())
    totals.push_back(
        source.execAndGet(std::string("SELECT count(*) FROM ") + table.name).getInt64());

  postgres::Transaction transaction(target.connection());
  // Nothing else writes these tables until the copy commits or rolls back: a vigil started on
  // the target meanwhile waits rather than mixing its rows with the copy's.
  std::vector<std::string> names;
  for (const auto& table : copied_tables()) names.emplace_back(table.name);
  target.exec("LOCK TABLE " + joined(names) + " IN EXCLUSIVE MODE");
  if (const auto filled = tables_with_rows(target); !filled.empty())
    throw MigrateRefused("the target " + summary.target + " already holds vigil data (in " +
                         joined(filled) +
                         "); vigil migrate copies into a database without any, so that no row "
                         "of either is lost or mixed up: give it a new database or schema");

  std::set<std::int64_t> days = postgres_schema::partition_days(target);
  TableCopy copier(source, target, days, progress, options);
  for (std::size_t i = 0; i < copied_tables().size(); ++i) {
    const CopiedTable& table = copied_tables()[i];
    std::int64_t copied = 0;
    try {
      copied = copier.copy(table, totals[i]);
    } catch (const postgres::PgError& e) {
      throw MigrateFailed(std::string("copying ") + table.name + " into " + summary.target + ": " +
                          e.what());
    } catch (const SQLite::Exception& e) {
      throw MigrateFailed(std::string("reading ") + table.name + " from " + source_path + ": " +
                          e.what());
    }
    if (copied != totals[i])
      throw MigrateFailed(std::string("copying ") + table.name + ": " + std::to_string(copied) +
                          " rows written of the source's " + std::to_string(totals[i]));
    if (table.identity)
      target.exec(std::string("SELECT setval(pg_get_serial_sequence('") + table.name + "', '" +
                  table.identity + "'), COALESCE((SELECT MAX(" + table.identity + ") FROM " +
                  table.name + "), 0) + 1, false)");
    summary.tables.push_back(TableCopied{table.name, copied});
  }
  // Statistics for the planner now, rather than when autovacuum first gets to the new rows.
  target.exec("ANALYZE " + joined(names));
  transaction.commit();
  source.exec("COMMIT");
  return summary;
}

}  // namespace

std::vector<std::string> migrated_tables() {
  std::vector<std::string> names;
  for (const auto& table : copied_tables()) names.emplace_back(table.name);
  return names;
}

std::vector<std::string> tables_not_migrated() {
  return {std::begin(kNotCopied), std::end(kNotCopied)};
}

MigrateSummary migrate_sqlite_to_postgres(const std::string& sqlite_path,
                                          const std::string& conninfo, std::ostream& progress,
                                          const MigrateOptions& options) {
  if (!std::filesystem::is_regular_file(sqlite_path))
    throw MigrateFailed("cannot open the source " + sqlite_path + ": no such file");
  std::unique_ptr<SQLite::Database> source;
  try {
    source = std::make_unique<SQLite::Database>(sqlite_path, SQLite::OPEN_READONLY);
    source->setBusyTimeout(5000);
    check_source_version(*source, sqlite_path);
  } catch (const SQLite::Exception& e) {
    throw MigrateFailed("cannot read the source " + sqlite_path + ": " + e.what());
  }
  try {
    postgres::Session target(conninfo);
    return copy_all(*source, sqlite_path, target, progress, options);
  } catch (const postgres::PgError& e) {
    throw MigrateFailed(std::string("the target: ") + e.what());
  } catch (const SQLite::Exception& e) {
    throw MigrateFailed("cannot read the source " + sqlite_path + ": " + e.what());
  } catch (const StorageError& e) {
    throw MigrateFailed(std::string("the target: ") + e.what());
  }
}

}  // namespace vigil

#include "storage/sqlite_schema.h"

#include <SQLiteCpp/SQLiteCpp.h>

#include <cstdint>
#include <iterator>
#include <string>

#include "config/logging.h"
#include "storage/model.h"
#include "storage/store.h"

namespace vigil::sqlite_schema {
namespace {

struct Migration {
  int version;
  const char* sql;
};

// Append-only: a released migration is never edited, a change is a new entry.
//
// Conventions of the schema:
// - Every instant (ts, date_started, created_at, ...) is unix epoch milliseconds, UTC, INTEGER.
// - services.headers is JSON: [["Name", "value"], ...] in the order they are sent.
// - services.expected_status is text: comma-separated codes and inclusive ranges, "200-399,404".
// - services.source says who owns a row: 'file' (the services file, reconciled by
//   sync_services) or, later, 'api'. sync_services never touches rows it does not own.
// - service_metrics.last_tick_at is the newest tick's ts, kept by apply() in the same upsert as
//   the counters, so load_runtime() is one join rather than one index probe per service.
constexpr Migration kMigrations[] = {
    {1, R"sql(
CREATE TABLE services (
  id              INTEGER PRIMARY KEY,
  name            TEXT    NOT NULL UNIQUE,
  url             TEXT    NOT NULL,
  interval_ms     INTEGER NOT NULL,
  timeout_ms      INTEGER NOT NULL,
  method          TEXT    NOT NULL,
  headers         TEXT    NOT NULL DEFAULT '[]',
  expected_status TEXT    NOT NULL DEFAULT '200-399',
  active          INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
  source          TEXT    NOT NULL DEFAULT 'file',
  created_at      INTEGER NOT NULL,
  updated_at      INTEGER NOT NULL
);

CREATE TABLE service_metrics (
  service_id               INTEGER PRIMARY KEY REFERENCES services(id) ON DELETE CASCADE,
  tick_count               INTEGER NOT NULL,
  up_count                 INTEGER NOT NULL,
  down_count               INTEGER NOT NULL,
  average_response_time_ms REAL    NOT NULL,
  uptime_percent           REAL    NOT NULL,
  last_tick_at             INTEGER NOT NULL,
  updated_at               INTEGER NOT NULL
);

CREATE TABLE service_events (
  id           INTEGER PRIMARY KEY,
  service_id   INTEGER NOT NULL REFERENCES services(id) ON DELETE CASCADE,
  event        TEXT    NOT NULL CHECK (event IN ('uptime', 'downtime')),
  date_started INTEGER NOT NULL,
  date_ended   INTEGER,
  created_at   INTEGER NOT NULL,
  updated_at   INTEGER NOT NULL
);
CREATE INDEX service_events_by_service ON service_events(service_id, id);
-- At most one open event per service, enforced by the database, not only by the runner.
CREATE UNIQUE INDEX service_events_one_open ON service_events(service_id)
  WHERE date_ended IS NULL;

CREATE TABLE service_ticks (
  service_id  INTEGER NOT NULL REFERENCES services(id) ON DELETE CASCADE,
  ts          INTEGER NOT NULL,
  up          INTEGER NOT NULL CHECK (up IN (0, 1)),
  status_code INTEGER,
  response_ms REAL    NOT NULL,
  error       TEXT,
  region      TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX service_ticks_by_service_ts ON service_ticks(service_id, ts);
)sql"},
};

constexpr int kCurrentVersion = kMigrations[std::size(kMigrations) - 1].version;

}  // namespace

int current_version() { return kCurrentVersion; }

void migrate(SQLite::Database& db, const std::string& path) {
  SQLite::Transaction txn(db, SQLite::TransactionBehavior::IMMEDIATE);
  db.exec(
      "CREATE TABLE IF NOT EXISTS schema_version ("
      " version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)");
  const auto found = static_cast<int>(
      db.execAndGet("SELECT COALESCE(MAX(version), 0) FROM schema_version").getInt64());
  if (found > kCurrentVersion) {
    throw StorageError("database " + path + " has schema version " + std::to_string(found) +
                       ", this vigil knows up to " + std::to_string(kCurrentVersion) +
                       "; upgrade vigil");
  }
  if (found == kCurrentVersion) return;  // nothing to do; the transaction rolls back

  SQLite::Statement record(db, "INSERT INTO schema_version(version, applied_at) VALUES(?, ?)");
  for (const auto& migration : kMigrations) {
    if (migration.version <= found) continue;
    db.exec(migration.sql);
    record.bind(1, migration.version);
    record.bind(2, static_cast<std::int64_t>(to_unix_ms(now_ms())));
    record.exec();
    record.reset();
  }
  txn.commit();
  log_info("storage: migrated " + path + " from schema version " + std::to_string(found) + " to " +
           std::to_string(kCurrentVersion));
}

}  // namespace vigil::sqlite_schema

#include "storage/sqlite/sqlite_schema.h"

#include <SQLiteCpp/SQLiteCpp.h>

#include <cstdint>
#include <iterator>
#include <string>

#include "core/logging.h"
#include "core/model.h"
#include "storage/sqlite/rollup_sql.h"
#include "storage/store.h"

namespace vigil::sqlite_schema {
namespace {

struct Migration {
  int version;
  const char* sql;
  // Runs after `sql` in the same transaction, for what SQL cannot do; may be null.
  void (*then)(SQLite::Database&) = nullptr;
};

// Migration 7: a day row per (service, UTC day) from that day's hour rows.
void backfill_day_rollups(SQLite::Database& db) {
  rollup_sql::RollupWriter writer(db);
  writer.backfill_days_from_hours();
}

// Append-only: a released migration is never edited, a change is a new entry.
//
// Conventions of the schema:
// - Every instant (ts, date_started, created_at, ...) is unix epoch milliseconds, UTC, INTEGER.
// - services.headers is JSON: [["Name", "value"], ...] in the order they are sent.
// - services.expected_status is text: comma-separated codes and inclusive ranges, "200-399,404".
// - services.source says who owns a row: 'file' (the services file, reconciled by
//   sync_services) or 'api' (the write API). sync_services never touches rows it does not own.
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
    // Service management and heartbeats.
    // - kind: 'http' (probed) or 'heartbeat' (pushes to /v1/push/{push_token}); heartbeats use
    //   grace_ms and threshold, and have url ''.
    // - Alert-routing metadata: team, priority (1..5), runbook, tags (JSON list of strings),
    //   muted with muted_until (unix ms, NULL: until unmuted).
    // - revision: the transaction that last wrote the row; one counter across services and
    //   service_tombstones (rows purged), so a runner process polls for changes cheaply.
    // - pending_beats: beats pushed to a `vigil api` process, taken by the runner process.
    // - service_ticks.message: the msg pushed with a heartbeat report.
    // - service_ticks_by_ts: retention deletes the oldest ticks in small batches.
    {2, R"sql(
ALTER TABLE services ADD COLUMN kind        TEXT    NOT NULL DEFAULT 'http';
ALTER TABLE services ADD COLUMN grace_ms    INTEGER NOT NULL DEFAULT 0;
ALTER TABLE services ADD COLUMN threshold   INTEGER NOT NULL DEFAULT 1;
ALTER TABLE services ADD COLUMN team        TEXT    NOT NULL DEFAULT '';
ALTER TABLE services ADD COLUMN priority    INTEGER NOT NULL DEFAULT 3;
ALTER TABLE services ADD COLUMN runbook     TEXT    NOT NULL DEFAULT '';
ALTER TABLE services ADD COLUMN tags        TEXT    NOT NULL DEFAULT '[]';
ALTER TABLE services ADD COLUMN muted       INTEGER NOT NULL DEFAULT 0;
ALTER TABLE services ADD COLUMN muted_until INTEGER;
ALTER TABLE services ADD COLUMN push_token  TEXT;
ALTER TABLE services ADD COLUMN revision    INTEGER NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX services_by_push_token ON services(push_token) WHERE push_token IS NOT NULL;
CREATE INDEX services_by_revision ON services(revision);

CREATE TABLE service_tombstones (
  revision   INTEGER NOT NULL,
  service_id INTEGER NOT NULL
);
CREATE INDEX service_tombstones_by_revision ON service_tombstones(revision);

CREATE TABLE pending_beats (
  id          INTEGER PRIMARY KEY,
  service_id  INTEGER NOT NULL REFERENCES services(id) ON DELETE CASCADE,
  at          INTEGER NOT NULL,
  up          INTEGER NOT NULL CHECK (up IN (0, 1)),
  message     TEXT    NOT NULL DEFAULT '',
  duration_ms REAL
);

ALTER TABLE service_ticks ADD COLUMN message TEXT;
CREATE INDEX service_ticks_by_ts ON service_ticks(ts);
)sql"},
    // Probe depth. Only added columns, so it applies to a version-1 or -2 file alike.
    // - services.probe_options: JSON of the service's probe-depth fields that differ from their
    //   defaults (conditions, TLS/HTTP options, TCP send/expect, thresholds, retry interval),
    //   in the services-file shape; '' when all are defaults.
    // - service_ticks.*_us: the probe's phases in whole microseconds (INTEGER: a varint of 2-3
    //   bytes where a REAL takes 8); NULL for ticks without phases (heartbeats, older ticks).
    {3, R"sql(
ALTER TABLE services ADD COLUMN probe_options TEXT NOT NULL DEFAULT '';
ALTER TABLE service_ticks ADD COLUMN resolve_us    INTEGER;
ALTER TABLE service_ticks ADD COLUMN connect_us    INTEGER;
ALTER TABLE service_ticks ADD COLUMN tls_us        INTEGER;
ALTER TABLE service_ticks ADD COLUMN processing_us INTEGER;
ALTER TABLE service_ticks ADD COLUMN transfer_us   INTEGER;
)sql"},
    // Time series. Only new tables, so it applies whatever came before.
    // - service_rollups_minute / _hour: per service and period (bucket: its start, unix ms,
    //   aligned to the minute or hour in UTC) what its ticks said: counts, response-time sum,
    //   min and max, the latency histogram (storage/rollups.h encoding), and the phase sums of
    //   the phase_count ticks that had phases. Written by apply() with the ticks they summarise.
    // - *_by_bucket: retention deletes the oldest rows in small batches.
    {4, R"sql(
CREATE TABLE service_rollups_minute (
  service_id    INTEGER NOT NULL REFERENCES services(id) ON DELETE CASCADE,
  bucket        INTEGER NOT NULL,
  count         INTEGER NOT NULL,
  up            INTEGER NOT NULL,
  down          INTEGER NOT NULL,
  sum_ms        REAL    NOT NULL,
  min_ms        REAL    NOT NULL,
  max_ms        REAL    NOT NULL,
  histogram     BLOB    NOT NULL,
  phase_count   INTEGER NOT NULL DEFAULT 0,
  resolve_ms    REAL    NOT NULL DEFAULT 0,
  connect_ms    REAL    NOT NULL DEFAULT 0,
  tls_ms        REAL    NOT NULL DEFAULT 0,
  processing_ms REAL    NOT NULL DEFAULT 0,
  transfer_ms   REAL    NOT NULL DEFAULT 0,
  PRIMARY KEY (service_id, bucket)
) WITHOUT ROWID;
CREATE INDEX service_rollups_minute_by_bucket ON service_rollups_minute(bucket);

CREATE TABLE service_rollups_hour (
  service_id    INTEGER NOT NULL REFERENCES services(id) ON DELETE CASCADE,
  bucket        INTEGER NOT NULL,
  count         INTEGER NOT NULL,
  up            INTEGER NOT NULL,
  down          INTEGER NOT NULL,
  sum_ms        REAL    NOT NULL,
  min_ms        REAL    NOT NULL,
  max_ms        REAL    NOT NULL,
  histogram     BLOB    NOT NULL,
  phase_count   INTEGER NOT NULL DEFAULT 0,
  resolve_ms    REAL    NOT NULL DEFAULT 0,
  connect_ms    REAL    NOT NULL DEFAULT 0,
  tls_ms        REAL    NOT NULL DEFAULT 0,
  processing_ms REAL    NOT NULL DEFAULT 0,
  transfer_ms   REAL    NOT NULL DEFAULT 0,
  PRIMARY KEY (service_id, bucket)
) WITHOUT ROWID;
CREATE INDEX service_rollups_hour_by_bucket ON service_rollups_hour(bucket);
)sql"},
    // Alerting. Only new tables, so it applies whatever came before.
    // - alerts: one row per down period of a service that alerted; at most one active per
    //   service. external_reference_id is the PagerDuty dedup_key; alert_cycle counts reminders.
    // - notifications: one row per channel per trigger/repeat/resolve, written with the alert
    //   change before any delivery (pending), so a crash cannot lose a page. payload is the
    //   message JSON; attempt counts deliveries tried; next_attempt_at drives the backoff.
    {5, R"sql(
CREATE TABLE alerts (
  alert_id              INTEGER PRIMARY KEY,
  alert_name            TEXT    NOT NULL,
  service_id            INTEGER NOT NULL REFERENCES services(id) ON DELETE CASCADE,
  active                INTEGER NOT NULL CHECK (active IN (0, 1)),
  external_reference_id TEXT    NOT NULL,
  alert_cycle           INTEGER NOT NULL DEFAULT 1,
  reason                TEXT    NOT NULL DEFAULT '',
  created_date          INTEGER NOT NULL,
  closed_date           INTEGER
);
CREATE UNIQUE INDEX alerts_one_active ON alerts(service_id) WHERE active = 1;
CREATE INDEX alerts_by_created ON alerts(created_date);

CREATE TABLE notifications (
  id              INTEGER PRIMARY KEY,
  alert_id        INTEGER REFERENCES alerts(alert_id) ON DELETE CASCADE,
  channel         TEXT    NOT NULL,
  kind            TEXT    NOT NULL CHECK (kind IN ('trigger', 'repeat', 'resolve', 'test')),
  payload         TEXT    NOT NULL,
  status          TEXT    NOT NULL
                  CHECK (status IN ('pending', 'sent', 'failed', 'suppressed')),
  attempt         INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER,
  response_code   INTEGER,
  error           TEXT,
  created_at      INTEGER NOT NULL,
  sent_at         INTEGER
);
CREATE INDEX notifications_pending ON notifications(next_attempt_at) WHERE status = 'pending';
CREATE INDEX notifications_by_alert ON notifications(alert_id, id);
)sql"},
    // Alerting, continued. Only added columns and a new table.
    // - services.alert_channels: JSON list of channel names the service alerts to ('[]': route
    //   by team, else default); services.repeat_every_ms: its reminder period (NULL: the
    //   channel's).
    // - alerts.previous_status: the status before the service went down ('up', or NULL when it
    //   had none: its first probe was down), sent as previous_status in the trigger.
    // - maintenance_windows: the windows created through the API; definition is the window's
    //   JSON in the services-file shape (alerting/maintenance.h), parsed again when read.
    {6, R"sql(
ALTER TABLE services ADD COLUMN alert_channels  TEXT    NOT NULL DEFAULT '[]';
ALTER TABLE services ADD COLUMN repeat_every_ms INTEGER;
ALTER TABLE alerts ADD COLUMN previous_status TEXT;
CREATE TABLE maintenance_windows (
  id         INTEGER PRIMARY KEY,
  definition TEXT    NOT NULL,
  created_at INTEGER NOT NULL
);
)sql"},
    // Compact storage: a year of history at the cost of a month.
    // - service_ticks is rebuilt WITHOUT ROWID, clustered by (service_id, ts, seq): one b-tree
    //   instead of a table and two indexes. seq orders ticks of one service in the same
    //   millisecond (0 for the first). response_us is whole microseconds (a 3-byte varint where
    //   a REAL took 8), and region_id points into regions instead of repeating the name.
    //   Retention walks it service by service, so the ts index is gone.
    // - Rollup tables are clustered by (bucket, service_id): the rows of the current period of
    //   every service sit together, so a batch dirties a few pages instead of one per service,
    //   and a window of all services is one range. *_by_service serves one service's reads and
    //   the cascade of a purge; an upsert of an existing row does not touch it.
    // - service_rollups_day: per UTC day, written like the others; filled from the hour rows
    //   here (in C++, after this SQL: histograms merge there).
    // - A minute with a single tick has no minute row from now on: that tick is the minute's
    //   rollup (at a 60 s interval a row per tick doubled the database). A minute row exists
    //   once a minute has two ticks, and summarises all of them.
    {7, R"sql(
CREATE TABLE regions (
  id   INTEGER PRIMARY KEY,
  name TEXT    NOT NULL UNIQUE
);
INSERT INTO regions(name) SELECT DISTINCT region FROM service_ticks ORDER BY region;

CREATE TABLE service_ticks_v7 (
  service_id    INTEGER NOT NULL REFERENCES services(id) ON DELETE CASCADE,
  ts            INTEGER NOT NULL,
  seq           INTEGER NOT NULL,
  up            INTEGER NOT NULL CHECK (up IN (0, 1)),
  status_code   INTEGER,
  response_us   INTEGER NOT NULL,
  error         TEXT,
  region_id     INTEGER NOT NULL,
  message       TEXT,
  resolve_us    INTEGER,
  connect_us    INTEGER,
  tls_us        INTEGER,
  processing_us INTEGER,
  transfer_us   INTEGER,
  PRIMARY KEY (service_id, ts, seq)
) WITHOUT ROWID;
INSERT INTO service_ticks_v7
  SELECT t.service_id, t.ts,
         row_number() OVER (PARTITION BY t.service_id, t.ts ORDER BY t.rowid) - 1,
         t.up, t.status_code, CAST(round(t.response_ms * 1000) AS INTEGER), t.error, r.id,
         t.message, t.resolve_us, t.connect_us, t.tls_us, t.processing_us, t.transfer_us
  FROM service_ticks t JOIN regions r ON r.name = t.region;
DROP TABLE service_ticks;
ALTER TABLE service_ticks_v7 RENAME TO service_ticks;

CREATE TABLE service_rollups_minute_v7 (
  service_id    INTEGER NOT NULL REFERENCES services(id) ON DELETE CASCADE,
  bucket        INTEGER NOT NULL,
  count         INTEGER NOT NULL,
  up            INTEGER NOT NULL,
  down          INTEGER NOT NULL,
  sum_ms        REAL    NOT NULL,
  min_ms        REAL    NOT NULL,
  max_ms        REAL    NOT NULL,
  histogram     BLOB    NOT NULL,
  phase_count   INTEGER NOT NULL DEFAULT 0,
  resolve_ms    REAL    NOT NULL DEFAULT 0,
  connect_ms    REAL    NOT NULL DEFAULT 0,
  tls_ms        REAL    NOT NULL DEFAULT 0,
  processing_ms REAL    NOT NULL DEFAULT 0,
  transfer_ms   REAL    NOT NULL DEFAULT 0,
  PRIMARY KEY (bucket, service_id)
) WITHOUT ROWID;
INSERT INTO service_rollups_minute_v7(service_id, bucket, count, up, down, sum_ms, min_ms, max_ms, histogram, phase_count, resolve_ms, connect_ms, tls_ms, processing_ms, transfer_ms)
  SELECT service_id, bucket, count, up, down, sum_ms, min_ms, max_ms, histogram, phase_count, resolve_ms, connect_ms, tls_ms, processing_ms, transfer_ms FROM service_rollups_minute;
DROP TABLE service_rollups_minute;
ALTER TABLE service_rollups_minute_v7 RENAME TO service_rollups_minute;
CREATE INDEX service_rollups_minute_by_service ON service_rollups_minute(service_id, bucket);

CREATE TABLE service_rollups_hour_v7 (
  service_id    INTEGER NOT NULL REFERENCES services(id) ON DELETE CASCADE,
  bucket        INTEGER NOT NULL,
  count         INTEGER NOT NULL,
  up            INTEGER NOT NULL,
  down          INTEGER NOT NULL,
  sum_ms        REAL    NOT NULL,
  min_ms        REAL    NOT NULL,
  max_ms        REAL    NOT NULL,
  histogram     BLOB    NOT NULL,
  phase_count   INTEGER NOT NULL DEFAULT 0,
  resolve_ms    REAL    NOT NULL DEFAULT 0,
  connect_ms    REAL    NOT NULL DEFAULT 0,
  tls_ms        REAL    NOT NULL DEFAULT 0,
  processing_ms REAL    NOT NULL DEFAULT 0,
  transfer_ms   REAL    NOT NULL DEFAULT 0,
  PRIMARY KEY (bucket, service_id)
) WITHOUT ROWID;
INSERT INTO service_rollups_hour_v7(service_id, bucket, count, up, down, sum_ms, min_ms, max_ms, histogram, phase_count, resolve_ms, connect_ms, tls_ms, processing_ms, transfer_ms)
  SELECT service_id, bucket, count, up, down, sum_ms, min_ms, max_ms, histogram, phase_count, resolve_ms, connect_ms, tls_ms, processing_ms, transfer_ms FROM service_rollups_hour;
DROP TABLE service_rollups_hour;
ALTER TABLE service_rollups_hour_v7 RENAME TO service_rollups_hour;
CREATE INDEX service_rollups_hour_by_service ON service_rollups_hour(service_id, bucket);

CREATE TABLE service_rollups_day (
  service_id    INTEGER NOT NULL REFERENCES services(id) ON DELETE CASCADE,
  bucket        INTEGER NOT NULL,
  count         INTEGER NOT NULL,
  up            INTEGER NOT NULL,
  down          INTEGER NOT NULL,
  sum_ms        REAL    NOT NULL,
  min_ms        REAL    NOT NULL,
  max_ms        REAL    NOT NULL,
  histogram     BLOB    NOT NULL,
  phase_count   INTEGER NOT NULL DEFAULT 0,
  resolve_ms    REAL    NOT NULL DEFAULT 0,
  connect_ms    REAL    NOT NULL DEFAULT 0,
  tls_ms        REAL    NOT NULL DEFAULT 0,
  processing_ms REAL    NOT NULL DEFAULT 0,
  transfer_ms   REAL    NOT NULL DEFAULT 0,
  PRIMARY KEY (bucket, service_id)
) WITHOUT ROWID;
CREATE INDEX service_rollups_day_by_service ON service_rollups_day(service_id, bucket);
)sql",
     backfill_day_rollups},
    // Liveness beats: the runner process writes, every few seconds, when each of its parts
    // last progressed, so that /healthz of another process (vigil api) sees a dead or hung one.
    // One row per (part, PROBER_REGION); beat_at is the part's progress, written_at the row's.
    {8, R"sql(
CREATE TABLE component_beats (
  component  TEXT    NOT NULL,
  instance   TEXT    NOT NULL,
  beat_at    INTEGER NOT NULL,
  written_at INTEGER NOT NULL,
  pid        INTEGER NOT NULL,
  PRIMARY KEY (component, instance)
) WITHOUT ROWID;
)sql"},
    // A queued beat is claimed by a runner process (its region) and removed only with its
    // stored tick, so that a runner process that dies in between loses none.
    {9, R"sql(
ALTER TABLE pending_beats ADD COLUMN claimed_by TEXT;
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
    if (migration.then) migration.then(db);
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

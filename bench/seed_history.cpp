// The history bench: seeds a database with months of history directly (ticks, minute and hour
// rollups, events, metrics, as apply() would have left them), then times the time-series reads
// the API serves: one service's 30-day summary (GET /v1/services/{id}/metrics?window=30d) and
// every service's (GET /v1/uptime?window=30d). With --database-url, the same history is then
// copied into that (empty) PostgreSQL database as `vigil migrate` copies it (COPY, one
// transaction), vacuumed and checkpointed, and the same reads are timed there through the same
// Store calls. Prints, per backend, the seeding (or copy) time, the database's size and the
// query times, and one JSON line each.
//
//   vigil_bench_seed_history --db /tmp/history.db --services 1000 --days 30 --interval 60
//                            [--repeats 5] [--reuse 1: keep an existing database, time only]
//                            [--database-url URL: also copy it into PostgreSQL and time there]
#include <SQLiteCpp/SQLiteCpp.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/logging.h"
#include "storage/migrate/sqlite_to_postgres.h"
#include "storage/postgres/connection.h"
#include "storage/postgres/postgres_store.h"
#include "storage/postgres/session.h"
#include "storage/rollups.h"
#include "storage/sqlite/rollup_sql.h"
#include "storage/sqlite/sqlite_database.h"
#include "storage/store.h"

using namespace vigil;
using Clock = std::chrono::steady_clock;

namespace {

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

struct Options {
  std::string db = "/tmp/vigil-history.db";
  int services = 1000;
  int days = 30;
  int interval_s = 60;
  int repeats = 5;
  bool reuse = false;                       // --reuse 1: time the queries on an existing database
  std::optional<std::string> database_url;  // --database-url: an empty PostgreSQL database
};

void insert_rollup(SQLite::Statement& insert, std::int64_t id, std::int64_t bucket,
                   const RollupSummary& s) {
  insert.reset();
  rollup_sql::bind_row(insert, id, bucket, s);
  insert.exec();
}

// What one simulated service carries from tick to tick.
struct Simulated {
  std::int64_t id = 0;
  bool up = true;
  std::int64_t event_start = 0;
  Metric metric;
  RollupSummary hour;
  RollupSummary day;
};

// Writes what vigil's writer would have written, in the order it would have: minute by minute,
// every service's tick of that minute (so the tick table's pages fill as they do in real life,
// not one service at a time), the hour and day rows as their period ends. At a 60 s interval a
// minute has one tick, so no minute rows (storage/sqlite/rollup_sql.h).
void seed(const Options& o) {
  std::filesystem::remove(o.db);
  std::filesystem::remove(o.db + "-wal");
  std::filesystem::remove(o.db + "-shm");
  {
    auto store = open_sqlite_store(o.db);  // the schema, and the services as vigil stores them
    std::vector<ServiceSpec> specs;
    for (int i = 0; i < o.services; ++i) {
      ServiceSpec spec;
      spec.name = "svc-" + std::to_string(i);
      spec.url = "http://127.0.0.1:1/" + std::to_string(i);
      spec.interval = Millis(o.interval_s * 1000);
      specs.push_back(spec);
    }
    store->sync_services(specs, now_ms());
  }
  SQLite::Database db(o.db, SQLite::OPEN_READWRITE);
  db.exec("PRAGMA journal_mode = WAL");
  db.exec("PRAGMA synchronous = OFF");
  db.exec("PRAGMA cache_size = -200000");
  db.exec("INSERT INTO regions(name) VALUES('local')");
  const std::int64_t region = db.getLastInsertRowid();
  SQLite::Statement tick(
      db,
      "INSERT INTO service_ticks(service_id, ts, seq, up, status_code,"
      " response_us, error, region_id, resolve_us, connect_us, tls_us,"
      " processing_us, transfer_us) VALUES(?, ?, 0, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)");
  SQLite::Statement hour(db,
                         std::string("INSERT INTO service_rollups_hour") + rollup_sql::kRowValues);
  SQLite::Statement day(db,
                        std::string("INSERT INTO service_rollups_day") + rollup_sql::kRowValues);
  SQLite::Statement event(db,
                          "INSERT INTO service_events(service_id, event, date_started, date_ended,"
                          " created_at, updated_at) VALUES(?1, ?2, ?3, ?4, ?3, ?3)");
  SQLite::Statement metric(db,
                           "INSERT INTO service_metrics(service_id, tick_count, up_count,"
                           " down_count, average_response_time_ms, uptime_percent, last_tick_at,"
                           " updated_at) VALUES(?, ?, ?, ?, ?, ?, ?, ?)");
  std::vector<Simulated> services;
  {
    SQLite::Statement select(db, "SELECT id FROM services ORDER BY id");
    while (select.executeStep()) {
      Simulated simulated;
      simulated.id = select.getColumn(0).getInt64();
      services.push_back(simulated);
    }
  }
  const std::int64_t step = std::int64_t(o.interval_s) * 1000;
  const std::int64_t end = to_unix_ms(now_ms()) / step * step;
  const std::int64_t start = end - std::int64_t(o.days) * 86'400'000;
  for (auto& s : services) s.event_start = start;
  std::mt19937_64 rng(1);
  std::lognormal_distribution<double> latency(std::log(40.0), 0.6);
  std::uniform_int_distribution<int> resolve_us(20, 60), connect_us(80, 250), transfer_us(10, 90);
  std::uniform_real_distribution<double> unit(0, 1);
  std::int64_t total = 0;
  std::optional<SQLite::Transaction> txn;
  for (std::int64_t t = start; t < end; t += step) {
    if (!txn) txn.emplace(db);
    for (auto& s : services) {
      // An outage about every three days, a few minutes long.
      const bool was_up = s.up;
      if (s.up && unit(rng) < double(step) / (3.0 * 86'400'000))
        s.up = false;
      else if (!s.up && unit(rng) < 0.2)
        s.up = true;
      if (s.up != was_up) {
        event.reset();
        event.bind(1, s.id);
        event.bind(2, was_up ? "uptime" : "downtime");
        event.bind(3, s.event_start);
        event.bind(4, t);
        event.exec();
        s.event_start = t;
      }
      Tick tk;
      tk.up = s.up;
      tk.response_ms = s.up ? latency(rng) : 10'000;
      const PhaseTimings phases{resolve_us(rng) / 1000.0, connect_us(rng) / 1000.0, 0,
                                tk.response_ms * 0.9, transfer_us(rng) / 1000.0};
      if (s.up) tk.phases = phases;
      tick.reset();
      tick.bind(1, s.id);
      tick.bind(2, t);
      tick.bind(3, s.up ? 1 : 0);
      if (s.up)
        tick.bind(4, 200);
      else
        tick.bind(4);
      tick.bind(5, static_cast<std::int64_t>(std::llround(tk.response_ms * 1000)));
      if (s.up)
        tick.bind(6);
      else
        tick.bind(6, "timeout");
      tick.bind(7, region);
      if (s.up) {
        tick.bind(8, static_cast<std::int64_t>(std::llround(phases.resolve_ms * 1000)));
        tick.bind(9, static_cast<std::int64_t>(std::llround(phases.connect_ms * 1000)));
        tick.bind(10, static_cast<std::int64_t>(std::llround(phases.processing_ms * 1000)));
        tick.bind(11, static_cast<std::int64_t>(std::llround(phases.transfer_ms * 1000)));
      } else {
        for (int i = 8; i <= 11; ++i) tick.bind(i);
      }
      tick.exec();
      s.hour.add(tk);
      s.day.add(tk);
      s.metric.add(s.up, tk.response_ms);
      ++total;
    }
    const std::int64_t next = t + step;
    if (next % 3'600'000 == 0 || next >= end) {
      for (auto& s : services) {
        insert_rollup(hour, s.id, (next - 1) / 3'600'000 * 3'600'000, s.hour);
        s.hour = RollupSummary{};
      }
      txn->commit();  // an hour of ticks per transaction
      txn.reset();
    }
    if (next % 86'400'000 == 0 || next >= end) {
      SQLite::Transaction days(db);
      for (auto& s : services) {
        insert_rollup(day, s.id, (next - 1) / 86'400'000 * 86'400'000, s.day);
        s.day = RollupSummary{};
      }
      days.commit();
    }
  }
  SQLite::Transaction txn_end(db);
  for (const auto& s : services) {
    event.reset();
    event.bind(1, s.id);
    event.bind(2, s.up ? "uptime" : "downtime");
    event.bind(3, s.event_start);
    event.bind(4);
    event.exec();
    metric.reset();
    metric.bind(1, s.id);
    metric.bind(2, s.metric.tick_count);
    metric.bind(3, s.metric.up_count);
    metric.bind(4, s.metric.down_count);
    metric.bind(5, s.metric.average_response_time_ms);
    metric.bind(6, s.metric.uptime_percent);
    metric.bind(7, end - step);
    metric.bind(8, end);
    metric.exec();
  }
  txn_end.commit();
  db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
  std::printf("seeded %lld ticks (%d services x %d days at %d s)\n", (long long)total, o.services,
              o.days, o.interval_s);
}

// The figures of one backend, printed as one JSON line at the end.
struct Measured {
  std::string backend;
  std::optional<double> load_s;  // seeding (SQLite) or copying (PostgreSQL), when done now
  std::int64_t ticks = 0;        // in the database
  std::uint64_t bytes = 0;       // the database's size on disk
  std::string timings;           // the JSON fields of the read times
};

// The number of ticks stored in the SQLite database at `path`.
std::int64_t sqlite_tick_count(const std::string& path) {
  SQLite::Database db(path, SQLite::OPEN_READONLY);
  return db.execAndGet("SELECT count(*) FROM service_ticks").getInt64();
}

// Times the reads of GET /v1/services/{id}/metrics?window=30d and GET /v1/uptime?window=30d on
// the stores `open` makes (each call a new store, as a new process would have), best and worst
// of o.repeats runs each; prints them and returns them as JSON fields.
std::string time_reads(const Options& o, const std::function<std::unique_ptr<Store>()>& open) {
  auto store = open();
  const TimePoint to = now_ms();
  const Millis month(30LL * 86'400'000);
  const ServiceId one = store->active_services().front().id;
  // Best and worst of `repeats` runs of `body` (after `setup`, not timed), in ms; printed and
  // kept for the JSON line.
  std::string json;
  const auto time = [&](const char* key, const char* what, auto&& setup, auto&& body) {
    double best = 1e18, worst = 0;
    for (int r = 0; r < o.repeats; ++r) {
      setup();
      const auto t0 = Clock::now();
      body();
      const double took = ms_since(t0);
      best = std::min(best, took);
      worst = std::max(worst, took);
    }
    std::printf("%-58s best %7.1f ms, worst %7.1f ms\n", what, best, worst);
    char field[160];
    std::snprintf(field, sizeof field, ", \"%s_best_ms\": %.2f, \"%s_worst_ms\": %.2f", key, best,
                  key, worst);
    json += field;
  };
  const auto nothing = [] {};
  std::int64_t count_one = 0;
  time("metrics_30d", "metrics?window=30d (1 service: summary + events, exact)", nothing, [&] {
    count_one = store->summarize(one, to - month, to).count;
    store->events_overlapping(one, to - month, to);
  });
  std::printf("  (%lld ticks in the window)\n", (long long)count_one);
  // A process's first call reads the whole closed part of the window; the first call in each
  // later hour only the hours around the cached days (a later now stands for a later hour);
  // other calls only the rows of the last two hours.
  std::unique_ptr<Store> fresh;
  time(
      "uptime_30d_cold", "uptime?window=30d (all services), first call of a process",
      [&] { fresh = open(); },
      [&] {
        fresh->summarize_all_recent(month, now_ms());
        fresh->list_services();
      });
  int hours_later = 0;
  time("uptime_30d_first", "uptime?window=30d (all services), first call in an hour", nothing, [&] {
    fresh->summarize_all_recent(month, now_ms() + Millis(3'600'000LL * ++hours_later));
    fresh->list_services();
  });
  std::size_t count_all = 0;
  store->summarize_all_recent(month, now_ms());
  time("uptime_30d", "uptime?window=30d (all services), later calls", nothing, [&] {
    count_all = store->summarize_all_recent(month, now_ms()).services.size();
    store->list_services();
  });
  std::printf("  (%zu services)\n", count_all);
  time("exact_30d_all", "summarize_all over exactly 30 d (no cache)", nothing,
       [&] { store->summarize_all(now_ms() - month, now_ms()); });
  char field[64];
  std::snprintf(field, sizeof field, ", \"ticks_in_window\": %lld", (long long)count_one);
  return field + json;
}

// Copies the SQLite database into the empty PostgreSQL one as `vigil migrate` does, then
// VACUUM (ANALYZE) and CHECKPOINT, as autovacuum and the checkpointer would have left a database
// that filled over months: the visibility map set (index-only scans), the WAL flushed.
Measured copy_to_postgres(const Options& o, const std::string& url) {
  Measured m;
  m.backend = "postgres";
  const auto copying = Clock::now();
  std::ostringstream progress;
  const MigrateSummary summary = migrate_sqlite_to_postgres(o.db, url, progress);
  for (const auto& table : summary.tables)
    if (table.table == "service_ticks") m.ticks = table.rows;
  postgres::Connection admin(url);
  admin.exec("VACUUM (ANALYZE)");
  admin.exec("CHECKPOINT");
  m.load_s = ms_since(copying) / 1000;
  std::printf("copying into PostgreSQL (vigil migrate's COPY), VACUUM, CHECKPOINT: %.1f s\n",
              *m.load_s);
  // Every table of the schema with its indexes and TOAST: each tick partition is a table of its
  // own (the partitioned parent holds nothing).
  m.bytes = static_cast<std::uint64_t>(
      postgres::int_at(admin.exec("SELECT sum(pg_total_relation_size(c.oid))::int8 FROM pg_class c"
                                  " JOIN pg_namespace n ON n.oid = c.relnamespace"
                                  " WHERE n.nspname = current_schema() AND c.relkind = 'r'"),
                       0, 0));
  return m;
}

void print_json(const Options& o, const Measured& m) {
  std::printf(
      "{\"backend\": \"%s\", \"services\": %d, \"days\": %d, \"ticks\": %lld,"
      " \"db_mib\": %.1f, \"db_bytes_per_tick\": %.1f",
      m.backend.c_str(), o.services, o.days, (long long)m.ticks, double(m.bytes) / 1048576.0,
      m.ticks ? double(m.bytes) / double(m.ticks) : 0.0);
  if (m.load_s) std::printf(", \"load_s\": %.1f", *m.load_s);
  std::printf("%s}\n", m.timings.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const std::string value = argv[i + 1];
    if (flag == "--db")
      o.db = value;
    else if (flag == "--services")
      o.services = std::atoi(value.c_str());
    else if (flag == "--days")
      o.days = std::atoi(value.c_str());
    else if (flag == "--interval")
      o.interval_s = std::atoi(value.c_str());
    else if (flag == "--repeats")
      o.repeats = std::atoi(value.c_str());
    else if (flag == "--reuse")
      o.reuse = value == "1";
    else if (flag == "--database-url")
      o.database_url = value;
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  if (o.services < 1 || o.days < 1 || o.interval_s != 60 || o.repeats < 1) {
    std::fprintf(stderr, "need --services >= 1, --days >= 1, --interval 60, --repeats >= 1\n");
    return 2;
  }
  set_log_level(LogLevel::warn);
  try {
    Measured sqlite;
    sqlite.backend = "sqlite";
    const auto seeding = Clock::now();
    if (!o.reuse || !std::filesystem::exists(o.db)) {
      seed(o);
      sqlite.load_s = ms_since(seeding) / 1000;
      std::printf("seeding: %.1f s\n", *sqlite.load_s);
    }
    // seed() checkpointed the WAL into the file; an existing database may still have one.
    for (const char* suffix : {"", "-wal"})
      if (std::filesystem::exists(o.db + suffix))
        sqlite.bytes += std::filesystem::file_size(o.db + suffix);
    sqlite.ticks = sqlite_tick_count(o.db);
    std::printf("SQLite database: %.1f MiB, %.1f bytes per tick\n",
                double(sqlite.bytes) / 1048576.0, double(sqlite.bytes) / double(sqlite.ticks));
    sqlite.timings = time_reads(o, [&] { return open_sqlite_store(o.db); });

    std::optional<Measured> postgres;
    if (o.database_url) {
      postgres = copy_to_postgres(o, *o.database_url);
      std::printf("PostgreSQL database: %.1f MiB, %.1f bytes per tick\n",
                  double(postgres->bytes) / 1048576.0,
                  double(postgres->bytes) / double(postgres->ticks));
      postgres->timings = time_reads(o, [&] { return open_postgres_store(*o.database_url); });
    }
    print_json(o, sqlite);
    if (postgres) print_json(o, *postgres);
  } catch (const std::exception& e) {
    // Neither the migrate library nor the PostgreSQL store shows the URL's password.
    std::fprintf(stderr, "vigil_bench_seed_history: %s\n", e.what());
    return 1;
  }
  return 0;
}

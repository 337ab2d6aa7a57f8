// The history bench: seeds a database with months of history directly (ticks, minute and hour
// rollups, events, metrics, as apply() would have left them), then times the time-series reads
// the API serves: one service's 30-day summary (GET /v1/services/{id}/metrics?window=30d) and
// every service's (GET /v1/uptime?window=30d). Prints the seeding time, the DB size and the
// query times.
//
//   vigil_bench_seed_history --db /tmp/history.db --services 1000 --days 30 --interval 60
//                            [--repeats 5] [--reuse 1: keep an existing database, time only]
#include <SQLiteCpp/SQLiteCpp.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "core/logging.h"
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
  bool reuse = false;  // --reuse 1: time the queries on an existing database
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
  const auto seeding = Clock::now();
  std::optional<double> seed_s;
  if (!o.reuse || !std::filesystem::exists(o.db)) {
    seed(o);
    seed_s = ms_since(seeding) / 1000;
    std::printf("seeding: %.1f s\n", *seed_s);
  }
  std::uintmax_t size = 0;
  for (const char* suffix : {"", "-wal"})
    if (std::filesystem::exists(o.db + suffix)) size += std::filesystem::file_size(o.db + suffix);
  const double db_mib = double(size) / 1048576.0;
  std::printf("database: %.1f MiB\n", db_mib);

  auto store = open_sqlite_store(o.db);
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
      [&] { fresh = open_sqlite_store(o.db); },
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
  std::printf("{\"services\": %d, \"days\": %d, \"ticks_in_window\": %lld, \"db_mib\": %.1f",
              o.services, o.days, (long long)count_one, db_mib);
  if (seed_s) std::printf(", \"seeding_s\": %.1f", *seed_s);
  std::printf("%s}\n", json.c_str());
  return 0;
}

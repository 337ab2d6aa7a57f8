// Issue 6 bench: seeds a database with months of history directly (ticks, minute and hour
// rollups, events, metrics, as apply() would have left them), then times the time-series reads
// the API serves: one service's 30-day summary (GET /v1/services/{id}/metrics?window=30d) and
// every service's (GET /v1/uptime?window=30d). Prints the seeding time, the DB size and the
// query times.
//
//   vigil_bench_seed_history --db /tmp/history.db --services 1000 --days 30 --interval 60
#include <SQLiteCpp/SQLiteCpp.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "config/logging.h"
#include "storage/rollups.h"
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
};

void insert_rollup(SQLite::Statement& insert, std::int64_t id, std::int64_t bucket,
                   const RollupSummary& s) {
  insert.reset();
  insert.bind(1, id);
  insert.bind(2, bucket);
  insert.bind(3, s.count);
  insert.bind(4, s.up);
  insert.bind(5, s.down);
  insert.bind(6, s.sum_ms);
  insert.bind(7, s.min_ms);
  insert.bind(8, s.max_ms);
  const std::string blob = s.histogram.encode();
  insert.bind(9, blob.data(), static_cast<int>(blob.size()));
  insert.exec();
}

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
  SQLite::Statement tick(db,
                         "INSERT INTO service_ticks(service_id, ts, up, status_code, response_ms,"
                         " error, region) VALUES(?, ?, ?, ?, ?, ?, 'local')");
  const std::string columns =
      "(service_id, bucket, count, up, down, sum_ms, min_ms, max_ms, histogram)"
      " VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)";
  SQLite::Statement minute(db, "INSERT INTO service_rollups_minute" + columns);
  SQLite::Statement hour(db, "INSERT INTO service_rollups_hour" + columns);
  SQLite::Statement event(db,
                          "INSERT INTO service_events(service_id, event, date_started, date_ended,"
                          " created_at, updated_at) VALUES(?1, ?2, ?3, ?4, ?3, ?3)");
  SQLite::Statement metric(db,
                           "INSERT INTO service_metrics(service_id, tick_count, up_count,"
                           " down_count, average_response_time_ms, uptime_percent, last_tick_at,"
                           " updated_at) VALUES(?, ?, ?, ?, ?, ?, ?, ?)");
  std::vector<std::int64_t> ids;
  {
    SQLite::Statement select(db, "SELECT id FROM services ORDER BY id");
    while (select.executeStep()) ids.push_back(select.getColumn(0).getInt64());
  }
  const std::int64_t step = std::int64_t(o.interval_s) * 1000;
  const std::int64_t end = to_unix_ms(now_ms()) / step * step;
  const std::int64_t start = end - std::int64_t(o.days) * 86'400'000;
  std::mt19937_64 rng(1);
  std::lognormal_distribution<double> latency(std::log(40.0), 0.6);
  std::uniform_real_distribution<double> unit(0, 1);
  std::int64_t total = 0;
  for (const std::int64_t id : ids) {
    SQLite::Transaction txn(db);
    Metric m;
    bool up = true;
    std::int64_t event_start = start;
    std::map<std::int64_t, RollupSummary> hours;
    for (std::int64_t t = start; t < end; t += step) {
      // An outage about every three days, a few minutes long.
      const bool was_up = up;
      if (up && unit(rng) < double(step) / (3.0 * 86'400'000))
        up = false;
      else if (!up && unit(rng) < 0.2)
        up = true;
      if (up != was_up) {
        event.reset();
        event.bind(1, id);
        event.bind(2, was_up ? "uptime" : "downtime");
        event.bind(3, event_start);
        event.bind(4, t);
        event.exec();
        event_start = t;
      }
      Tick tk;
      tk.up = up;
      tk.response_ms = up ? latency(rng) : 10'000;
      tick.reset();
      tick.bind(1, id);
      tick.bind(2, t);
      tick.bind(3, up ? 1 : 0);
      if (up)
        tick.bind(4, 200);
      else
        tick.bind(4);
      tick.bind(5, tk.response_ms);
      if (up)
        tick.bind(6);
      else
        tick.bind(6, "timeout");
      tick.exec();
      RollupSummary one;
      one.add(tk);
      insert_rollup(minute, id, t / 60'000 * 60'000, one);  // one tick a minute at 60 s
      hours[t / 3'600'000 * 3'600'000].add(tk);
      m.add(up, tk.response_ms);
      ++total;
    }
    for (const auto& [bucket, s] : hours) insert_rollup(hour, id, bucket, s);
    event.reset();
    event.bind(1, id);
    event.bind(2, up ? "uptime" : "downtime");
    event.bind(3, event_start);
    event.bind(4);
    event.exec();
    metric.reset();
    metric.bind(1, id);
    metric.bind(2, m.tick_count);
    metric.bind(3, m.up_count);
    metric.bind(4, m.down_count);
    metric.bind(5, m.average_response_time_ms);
    metric.bind(6, m.uptime_percent);
    metric.bind(7, end - step);
    metric.bind(8, end);
    metric.exec();
    txn.commit();
  }
  db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
  std::printf("seeded %lld ticks (%d services x %d days at %d s)\n", (long long)total, o.services,
              o.days, o.interval_s);
  if (step != 60'000) std::printf("note: minute rollups assume a 60 s interval\n");
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
  seed(o);
  const double seed_ms = ms_since(seeding);
  std::uintmax_t size = 0;
  for (const char* suffix : {"", "-wal"})
    if (std::filesystem::exists(o.db + suffix)) size += std::filesystem::file_size(o.db + suffix);
  std::printf("seeding: %.1f s, database: %.1f MiB\n", seed_ms / 1000, double(size) / 1048576.0);

  auto store = open_sqlite_store(o.db);
  const TimePoint to = now_ms();
  const TimePoint from = to - Millis(30LL * 86'400'000);
  const ServiceId one = store->active_services().front().id;
  double best_one = 1e18, best_all = 1e18, worst_one = 0, worst_all = 0;
  std::int64_t count_one = 0;
  std::size_t count_all = 0;
  for (int r = 0; r < o.repeats; ++r) {
    auto t0 = Clock::now();
    const auto s = store->summarize(one, from, to);
    store->events_overlapping(one, from, to);
    const double a = ms_since(t0);
    t0 = Clock::now();
    const auto all = store->summarize_all(from, to);
    store->list_services();
    const double b = ms_since(t0);
    best_one = std::min(best_one, a);
    worst_one = std::max(worst_one, a);
    best_all = std::min(best_all, b);
    worst_all = std::max(worst_all, b);
    count_one = s.count;
    count_all = all.size();
  }
  std::printf("metrics?window=30d (1 service, %lld ticks): best %.1f ms, worst %.1f ms\n",
              (long long)count_one, best_one, worst_one);
  std::printf("uptime?window=30d (%zu services): best %.1f ms, worst %.1f ms\n", count_all,
              best_all, worst_all);
  return 0;
}

// `vigil migrate`: a SQLite database with history (written by the real Store and AlertStore:
// services of every kind, days of ticks and so rollups, events, alerts with notifications, a
// maintenance window, a purged service) copied into a fresh PostgreSQL schema of a real server by
// the real binary. Checked straight from both databases (every table, row for row), through
// `vigil api` on each (the same JSON, byte for byte), by writing to the copy (fresh ids, the push
// token), and by failures that must leave the target as it was.
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "storage/alert_store.h"
#include "storage/migrate/sqlite_to_postgres.h"
#include "storage/store.h"
#include "support/process.h"
#include "support/store_backends.h"
#include "support/target_server.h"
#include "support/vigil_process.h"

namespace vigil::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr std::int64_t kDay = 86'400'000;
constexpr std::int64_t kMinute = 60'000;
// A whole UTC day, in the past: the history is fixed, so every answer that depends on the time
// of the request (stale, muted, maintenance now) is the same on both sides.
constexpr std::int64_t kStart = 1'699'920'000'000;  // 2023-11-14 00:00 UTC
constexpr std::int64_t kDays = 3;
constexpr std::int64_t kEnd = kStart + kDays * kDay;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// What the tests refer to in the history: its services' ids, the heartbeat's push token, alerts.
struct History {
  ServiceId web = 0;
  ServiceId db = 0;
  ServiceId nightly = 0;
  ServiceId retired = 0;
  ServiceId purged = 0;
  std::string push_token;
  std::int64_t resolved_alert = 0;
  std::int64_t active_alert = 0;
};

std::vector<NewNotification> trigger_notifications(const AlertRecord& alert) {
  const std::string payload = json{{"alert", alert.alert_name}, {"kind", "trigger"}}.dump();
  return {NewNotification{"hook", "trigger", payload},
          NewNotification{"pager", "trigger", payload}};
}

// Written the way vigil writes it: Store::apply batches, the AlertStore's calls.
History write_history(const TestDatabase& sqlite) {
  History h;
  auto store = sqlite.open();
  ServiceSpec web;
  web.name = "web";
  web.url = "https://web.test/health?key=secret";
  web.interval = Millis(5 * kMinute);
  web.headers = {{"Accept", "application/json"}, {"X-Trace", "1"}};
  web.expected_status = {StatusRange{200, 204}, StatusRange{301, 301}};
  web.team = "core";
  web.priority = 2;
  web.tags = {"prod", "edge"};
  web.runbook = "https://runbooks.test/web";
  web.alert_channels = {"hook"};
  web.repeat_every = Millis(30 * kMinute);
  web.probe.follow_redirects = false;
  web.probe.user_agent = "migrate-test";
  ServiceSpec db;
  db.name = "db";
  db.url = "tcp://db.test:5432";
  db.interval = Millis(5 * kMinute);
  db.muted = true;
  db.muted_until = from_unix_ms(kEnd + 3650 * kDay);
  ServiceSpec retired;
  retired.name = "retired";
  retired.url = "http://retired.test/";
  store->sync_services({web, db, retired}, from_unix_ms(kStart - kDay));
  for (const auto& s : store->active_services()) {
    if (s.spec.name == "web") h.web = s.id;
    if (s.spec.name == "db") h.db = s.id;
    if (s.spec.name == "retired") h.retired = s.id;
  }
  ServiceSpec nightly;
  nightly.name = "nightly";
  nightly.kind = ServiceKind::heartbeat;
  nightly.interval = Millis(kDay);
  nightly.grace = Millis(10 * kMinute);
  nightly.threshold = 2;
  const Service beat = store->create_service(nightly, from_unix_ms(kStart - kDay));
  h.nightly = beat.id;
  h.push_token = beat.push_token;
  ServiceSpec purged;
  purged.name = "purged";
  purged.url = "http://purged.test/";
  h.purged = store->create_service(purged, from_unix_ms(kStart - kDay)).id;

  // Ticks every 5 minutes for three days (web down for an hour on the second day), a burst of
  // ticks every 20 s for an hour (so minute rows exist), two ticks of one millisecond (seq 1),
  // phases on web's, two regions on db's, a beat a day with its message.
  std::map<ServiceId, Metric> metrics;
  std::map<ServiceId, std::optional<bool>> last;
  std::vector<TickRecord> batch;
  const auto add = [&](ServiceId id, std::int64_t ts, bool up, Tick tick) {
    tick.service_id = id;
    tick.ts = from_unix_ms(ts);
    tick.up = up;
    TickRecord record{tick, {}, std::nullopt};
    metrics[id].add(up, tick.response_ms);
    record.metric_after = metrics[id];
    if (last[id] != up) record.opens_event = up ? EventKind::uptime : EventKind::downtime;
    last[id] = up;
    batch.push_back(record);
    if (batch.size() >= 200) {
      store->apply(batch);
      batch.clear();
    }
  };
  for (std::int64_t ts = kStart; ts < kEnd; ts += 5 * kMinute) {
    const bool up = !(ts >= kStart + kDay + 10 * 3'600'000 && ts < kStart + kDay + 11 * 3'600'000);
    Tick w;
    w.response_ms = 20.0 + double((ts / kMinute) % 37) * 1.25;
    w.status_code = up ? 200 : 503;
    if (!up) w.error = "HTTP 503";
    w.phases = PhaseTimings{1.5, 2.25, 3.0, w.response_ms - 8.0, 1.25};
    w.region = "eu-west";
    add(h.web, ts, up, w);
  }
  for (std::int64_t ts = kStart; ts < kEnd; ts += ts < kEnd - 3'600'000 ? 5 * kMinute : 20'000) {
    Tick d;
    d.response_ms =
        3.0 + double((ts / 20'000) % 11) * 0.5;  // exact in binary: sums compare exactly
    d.region = (ts / kMinute) % 2 ? "us-east" : "eu-west";
    add(h.db, ts, (ts / 20'000) % 17 != 0, d);
  }
  Tick twin;
  twin.response_ms = 9.5;
  twin.region = "eu-west";
  add(h.retired, kEnd - kMinute, true, twin);
  add(h.retired, kEnd - kMinute, false, twin);
  for (std::int64_t day = 0; day < kDays; ++day) {
    Tick b;
    b.response_ms = 1234.5;
    b.message = "backup " + std::to_string(day) + " done\twith a tab";
    add(h.nightly, kStart + day * kDay + 2 * 3'600'000, true, b);
  }
  Tick p;
  p.response_ms = 1;
  add(h.purged, kStart, true, p);
  store->apply(batch);
  EXPECT_TRUE(store->purge_service(h.purged));
  EXPECT_TRUE(store->set_service_active(h.retired, false, from_unix_ms(kEnd)));
  EXPECT_EQ(store->enqueue_beat(h.nightly, BeatReport{from_unix_ms(kEnd), false, "late", 15.5}),
            Store::BeatQueued::queued);

  // An alert resolved (one notification sent, one retried then failed), one still active.
  auto alerts = sqlite.database()->open_alert_store();
  const TimePoint down_at = from_unix_ms(kStart + kDay + 10 * 3'600'000);
  const AlertRecord first =
      alerts->open_alert(h.web, "web down", "HTTP 503", "up", down_at, trigger_notifications);
  h.resolved_alert = first.alert_id;
  const auto sent = alerts->notifications(first.alert_id);
  EXPECT_EQ(sent.size(), 2u);
  alerts->record_sent(sent.at(0).id, 1, 200, down_at + 1s);
  alerts->record_retry(sent.at(1).id, 1, 500, "HTTP 500", down_at + 30s);
  alerts->record_failed(sent.at(1).id, 2, std::nullopt, "connection refused", down_at + 60s);
  alerts->next_cycle(first.alert_id, down_at + 30min, trigger_notifications);
  alerts->close_alert(first.alert_id, down_at + 1h, [](const AlertRecord& a) {
    return std::vector<NewNotification>{
        NewNotification{"hook", "resolve", json{{"alert", a.alert_name}}.dump()}};
  });
  h.active_alert = alerts
                       ->open_alert(h.db, "db down", "connection refused", std::nullopt,
                                    from_unix_ms(kEnd - kMinute), trigger_notifications)
                       .alert_id;
  alerts->add_notifications(std::nullopt, from_unix_ms(kEnd),
                            {NewNotification{"hook", "test", "{}"}});
  alerts->add_maintenance_window(json{{"start", (kStart + kDay) / 1000},
                                      {"end", (kStart + kDay) / 1000 + 3600},
                                      {"services", {"web"}}}
                                     .dump(),
                                 from_unix_ms(kStart));
  alerts->add_maintenance_window(json{{"every", "sun 02:00"},
                                      {"duration_minutes", 90},
                                      {"timezone", "+02:00"},
                                      {"tags", {"prod"}}}
                                     .dump(),
                                 from_unix_ms(kStart));
  return h;
}

class Migrate : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto reason = unavailable(StoreBackend::postgres)) GTEST_SKIP() << *reason;
    sqlite.emplace(StoreBackend::sqlite);
    pg.emplace(StoreBackend::postgres);
    std::smatch found;
    ASSERT_TRUE(std::regex_search(pg->location(), found, std::regex("password=(\\S+)")));
    password = found[1];
    history = write_history(*sqlite);
  }

  struct Run {
    int exit_code = -1;
    std::string output;  // stdout and stderr
  };
  // The real binary: `vigil migrate` with `args`.
  Run vigil_migrate(const std::vector<std::string>& args,
                    const std::map<std::string, std::string>& env = {}) {
    const std::string log = dir.file("migrate-" + std::to_string(++runs) + ".log");
    std::vector<std::string> argv{"migrate"};
    argv.insert(argv.end(), args.begin(), args.end());
    ChildProcess process(VIGIL_BINARY, argv, dir.path(), env, log);
    Run run;
    run.exit_code = process.wait_for_exit(60s).value_or(-1);
    run.output = read_file(log);
    return run;
  }
  Run migrate_history() {
    return vigil_migrate({"--from", sqlite->location(), "--to", pg->location()});
  }

  // Rows of `table` in each database.
  std::int64_t source_rows(const std::string& table) const {
    return sqlite->count("SELECT count(*) FROM " + table);
  }
  std::int64_t target_rows(const std::string& table) const {
    return pg->count("SELECT count(*) FROM " + table);
  }
  // Tables in the target's schema: none until something migrated it.
  std::int64_t target_tables() const {
    return pg->count("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()");
  }
  std::int64_t target_rows_in_all_tables() const {
    std::int64_t rows = 0;
    for (const auto& table : migrated_tables()) rows += target_rows(table);
    return rows;
  }

  std::optional<TestDatabase> sqlite;
  std::optional<TestDatabase> pg;
  std::string password;
  History history;
  TempDir dir;
  int runs = 0;
};

// Every row of every copied table, value for value: a digest of each table, computed the same
// way in both databases from the same column values in the same order.
TEST_F(Migrate, CopiesEveryTableRowForRow) {
  const std::string file_before = read_file(sqlite->location());
  const Run run = migrate_history();
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_TRUE(read_file(sqlite->location()) == file_before);  // opened read-only
  EXPECT_FALSE(contains(run.output, password)) << run.output;
  for (const auto& table : migrated_tables()) {
    SCOPED_TRACE(table);
    EXPECT_EQ(target_rows(table), source_rows(table));
    // The summary names each table with its count.
    EXPECT_TRUE(std::regex_search(
        run.output,
        std::regex("\\n  " + table + " +" + std::to_string(source_rows(table)) + "\\n")))
        << run.output;
  }
  // The history has rows in each table worth checking.
  for (const char* table :
       {"services", "service_tombstones", "service_ticks", "service_events",
        "service_rollups_minute", "service_rollups_hour", "service_rollups_day", "regions",
        "pending_beats", "alerts", "notifications", "maintenance_windows", "service_metrics"})
    EXPECT_GT(source_rows(table), 0) << table;
  EXPECT_EQ(target_rows("component_beats"), 0);  // liveness is not copied

  // Values, not only counts: sums over the columns of each kind, the same numbers on both sides.
  const std::vector<std::pair<std::string, std::string>> sums = {
      {"services",
       "sum(id * 7 + interval_ms + timeout_ms + grace_ms + threshold + priority + "
       "revision + created_at + updated_at + coalesce(muted_until, 0) + "
       "coalesce(repeat_every_ms, 0) + length(name || url || method || headers || "
       "expected_status || source || kind || team || runbook || tags || "
       "coalesce(push_token, '') || probe_options || alert_channels))"},
      {"services",
       "sum(CASE WHEN active THEN id ELSE 0 END + CASE WHEN muted THEN 1000 ELSE 0 END)"},
      {"service_ticks",
       "sum(service_id + ts % 1000003 + seq + response_us + coalesce(status_code, 0) + "
       "region_id + coalesce(resolve_us + connect_us + tls_us + processing_us + "
       "transfer_us, 0) + length(coalesce(error, '') || coalesce(message, '')))"},
      {"service_ticks", "sum(CASE WHEN up THEN ts % 1000003 ELSE 0 END)"},
      {"service_events",
       "sum(id + service_id + date_started + coalesce(date_ended, 0) + created_at + "
       "updated_at + length(event))"},
      {"service_metrics",
       "sum(service_id + tick_count + up_count + down_count + last_tick_at + "
       "updated_at + round(average_response_time_ms * 1000) + "
       "round(uptime_percent * 1000))"},
      {"service_rollups_hour",
       "sum(bucket % 1000003 + count + up + down + phase_count + "
       "round((sum_ms + min_ms + max_ms + resolve_ms + connect_ms + "
       "tls_ms + processing_ms + transfer_ms) * 1000) + length(histogram))"},
      {"service_rollups_minute",
       "sum(bucket % 1000003 + count + up + round(sum_ms * 1000) + "
       "length(histogram))"},
      {"service_rollups_day",
       "sum(bucket % 1000003 + count + down + round(max_ms * 1000) + "
       "length(histogram))"},
      {"alerts",
       "sum(alert_id + service_id + alert_cycle + created_date + coalesce(closed_date, 0) + "
       "length(alert_name || external_reference_id || reason || coalesce(previous_status, '-')))"},
      {"alerts", "sum(CASE WHEN active THEN alert_id ELSE 0 END)"},
      {"notifications",
       "sum(id + coalesce(alert_id, 0) + attempt + coalesce(next_attempt_at, 0) + "
       "coalesce(response_code, 0) + created_at + coalesce(sent_at, 0) + "
       "length(channel || kind || payload || status || coalesce(error, '')))"},
      {"pending_beats",
       "sum(id + service_id + at + round(coalesce(duration_ms, 0) * 1000) + "
       "length(message))"},
      {"pending_beats", "sum(CASE WHEN up THEN 1 ELSE 0 END)"},
      {"service_tombstones", "sum(revision * 1000 + service_id)"},
      {"regions", "sum(id * length(name))"},
      {"maintenance_windows", "sum(id + created_at + length(definition))"},
  };
  for (const auto& [table, sum] : sums) {
    SCOPED_TRACE(table + ": " + sum);
    const std::string sql = "SELECT CAST(" + sum + " AS BIGINT) FROM " + table;
    EXPECT_EQ(pg->count(sql), sqlite->count(sql));
  }
  // The bytes of every histogram, not only their lengths.
  for (const char* table :
       {"service_rollups_minute", "service_rollups_hour", "service_rollups_day"}) {
    const std::string sql = std::string("SELECT count(DISTINCT hex(histogram)) FROM ") + table;
    const std::string pg_sql =
        std::string("SELECT count(DISTINCT encode(histogram, 'hex')) FROM ") + table;
    EXPECT_EQ(pg->count(pg_sql), sqlite->count(sql)) << table;
    const auto first = [&](const TestDatabase& db, const char* hex) {
      return db.count(std::string("SELECT count(*) FROM ") + table + " WHERE " + hex +
                      " = (SELECT " + hex + " FROM " + table +
                      " ORDER BY bucket, service_id LIMIT 1)");
    };
    EXPECT_EQ(first(*pg, "encode(histogram, 'hex')"), first(*sqlite, "lower(hex(histogram))"))
        << table;
  }
}

// The rows are copied with the ids they had, so vigil's next ids must come after them: a new
// service after the purged one's id, new events, alerts, notifications, windows, regions.
TEST_F(Migrate, TheCopyGivesFreshIdsAfterTheCopiedOnes) {
  ASSERT_EQ(migrate_history().exit_code, 0);
  auto store = pg->open();
  ServiceSpec spec;
  spec.name = "after";
  spec.url = "http://after.test/";
  const Service created = store->create_service(spec, from_unix_ms(kEnd + kMinute));
  EXPECT_EQ(created.id, history.purged + 1);  // the purged service's id stays given

  Tick tick;
  tick.service_id = created.id;
  tick.ts = from_unix_ms(kEnd + kMinute);
  tick.up = true;
  tick.region = "ap-south";  // a new region
  Metric metric;
  metric.add(true, 0);
  store->apply({TickRecord{tick, metric, EventKind::uptime}});
  EXPECT_EQ(pg->count("SELECT id FROM regions WHERE name = 'ap-south'"),
            sqlite->count("SELECT max(id) FROM regions") + 1);
  EXPECT_EQ(pg->count("SELECT count(*) FROM service_events WHERE service_id = " +
                      std::to_string(created.id)),
            1);
  EXPECT_EQ(pg->count("SELECT min(id) FROM service_events WHERE service_id = " +
                      std::to_string(created.id)),
            sqlite->count("SELECT max(id) FROM service_events") + 1);

  auto alerts = pg->database()->open_alert_store();
  const AlertRecord alert = alerts->open_alert(created.id, "after down", "x", std::nullopt,
                                               from_unix_ms(kEnd + kMinute), trigger_notifications);
  EXPECT_EQ(alert.alert_id, sqlite->count("SELECT max(alert_id) FROM alerts") + 1);
  EXPECT_EQ(alerts->notifications(alert.alert_id).front().id,
            sqlite->count("SELECT max(id) FROM notifications") + 1);
  EXPECT_EQ(
      alerts->add_maintenance_window(json{{"start", 1}, {"end", 2}}.dump(), from_unix_ms(kEnd)),
      sqlite->count("SELECT max(id) FROM maintenance_windows") + 1);
  EXPECT_EQ(
      store->enqueue_beat(history.nightly, BeatReport{from_unix_ms(kEnd), true, "", std::nullopt}),
      Store::BeatQueued::queued);
  EXPECT_EQ(pg->count("SELECT max(id) FROM pending_beats"),
            sqlite->count("SELECT max(id) FROM pending_beats") + 1);
}

// GET `path` on 127.0.0.1:`port`: status and body; status 0 when there is no answer.
std::pair<int, std::string> get(int port, const std::string& path) {
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(1);
  client.set_read_timeout(10);
  const auto res = client.Get(path.c_str());
  if (!res) return {0, ""};
  return {res->status, res->body};
}

// The read routes answer the same bytes from `vigil api` on the SQLite file and on the copy; a
// push to the heartbeat's token and a new service work on the copy.
TEST_F(Migrate, TheApiAnswersTheSameBeforeAndAfter) {
  // The password from libpq's PGPASSWORD rather than --to.
  const Run run =
      vigil_migrate({"--from", sqlite->location(), "--to",
                     std::regex_replace(pg->location(), std::regex(" password=\\S+"), "")},
                    {{"PGPASSWORD", password}});
  ASSERT_EQ(run.exit_code, 0) << run.output;

  TempDir sqlite_dir, pg_dir;
  const int sqlite_port = closed_port();
  VigilProcess on_sqlite(sqlite_dir, "api", sqlite_port, {{"DB_FILE", sqlite->location()}});
  const int pg_port = closed_port();
  VigilProcess on_pg(pg_dir, "api", pg_port, {{"DATABASE_URL", pg->location()}});
  ASSERT_TRUE(eventually([&] { return get(sqlite_port, "/v1/services").first == 200; }, 20s))
      << on_sqlite.log();
  ASSERT_TRUE(eventually([&] { return get(pg_port, "/v1/services").first == 200; }, 20s))
      << on_pg.log();

  const std::string window =
      "from=" + std::to_string(kStart / 1000 - 3600) + "&to=" + std::to_string(kEnd / 1000 + 60);
  std::vector<std::string> paths = {"/v1/services",
                                    "/v1/services?limit=2",
                                    "/v1/services?tag=prod",
                                    "/v1/uptime?" + window,
                                    "/v1/alerts",
                                    "/v1/alerts?active=true",
                                    "/v1/alerts/" + std::to_string(history.resolved_alert),
                                    "/v1/alerts/" + std::to_string(history.active_alert),
                                    "/v1/maintenance",
                                    "/v1/badges/web/status.svg",
                                    "/v1/badges/db/uptime.svg"};
  for (const ServiceId id : {history.web, history.db, history.nightly, history.retired}) {
    const std::string service = "/v1/services/" + std::to_string(id);
    for (const std::string& route :
         {service, service + "/events?limit=1000", service + "/ticks?limit=1000",
          service + "/ticks?limit=7", service + "/metrics?" + window,
          service + "/metrics?from=" + std::to_string((kStart + kDay) / 1000 + 1234) +
              "&to=" + std::to_string((kStart + 2 * kDay) / 1000 - 977),
          service + "/series?" + window + "&step=3600",
          service + "/series?" + window + "&step=86400",
          service + "/series?from=" + std::to_string(kEnd / 1000 - 3600) +
              "&to=" + std::to_string(kEnd / 1000) + "&step=60",
          service + "/ticks?limit=50&from=" + std::to_string((kStart + kDay) / 1000) +
              "&to=" + std::to_string((kStart + kDay) / 1000 + 7200),
          service + "/events?limit=2", service + "/badges/response-time.svg"})
      paths.push_back(route);
  }
  int compared = 0;
  const std::size_t first_pages = paths.size();
  for (std::size_t i = 0; i < paths.size(); ++i) {
    const std::string& path = paths[i];
    const auto [sqlite_status, sqlite_body] = get(sqlite_port, path);
    const auto [pg_status, pg_body] = get(pg_port, path);
    EXPECT_EQ(sqlite_status, 200) << path << ": " << sqlite_body;
    EXPECT_EQ(pg_status, sqlite_status) << path << ": " << pg_body;
    EXPECT_EQ(pg_body, sqlite_body) << path;
    ++compared;
    // The next page of a paged list, by its cursor, is compared too.
    if (i >= first_pages) continue;
    const json answer = json::parse(sqlite_body, nullptr, false);
    if (!answer.is_object() || !answer.contains("data") || !answer["data"].is_object()) continue;
    for (const auto& [name, list] : answer["data"].items())
      if (list.is_object() && list.contains("next") && list["next"].is_string())
        paths.push_back(path.substr(0, path.find('?')) +
                        "?limit=" + std::to_string(list["data"].size()) +
                        "&cursor=" + list["next"].get<std::string>());
  }
  EXPECT_GT(compared, 40);

  // Writes on the copy: a beat pushed to the heartbeat's token, a new service.
  const auto [push_status, push_body] =
      get(pg_port, "/v1/push/" + history.push_token + "?msg=moved");
  EXPECT_EQ(push_status, 200) << push_body;
  EXPECT_EQ(pg->count("SELECT count(*) FROM pending_beats WHERE message = 'moved'"), 1);
  httplib::Client client("127.0.0.1", pg_port);
  const auto created =
      client.Post("/v1/services", json{{"name", "after"}, {"url", "http://after.test/"}}.dump(),
                  "application/json");
  ASSERT_TRUE(created);
  ASSERT_EQ(created->status, 201) << created->body;
  EXPECT_EQ(json::parse(created->body)["data"]["service"]["id"], history.purged + 1)
      << created->body;
  EXPECT_EQ(on_pg.stop(), 0) << on_pg.log();
  EXPECT_EQ(on_sqlite.stop(), 0) << on_sqlite.log();
  EXPECT_FALSE(contains(on_pg.log(), password));
}

// A target that already holds vigil data is refused (exit 2), and left as it was.
TEST_F(Migrate, ATargetWithDataIsRefusedAndLeftAsItWas) {
  ASSERT_EQ(migrate_history().exit_code, 0);
  pg->exec("DELETE FROM service_ticks WHERE service_id = " + std::to_string(history.web));
  const std::int64_t before = target_rows_in_all_tables();
  const Run again = migrate_history();
  EXPECT_EQ(again.exit_code, 2) << again.output;
  EXPECT_TRUE(contains(again.output, "already holds vigil data")) << again.output;
  EXPECT_TRUE(contains(again.output, "services")) << again.output;
  EXPECT_FALSE(contains(again.output, password)) << again.output;
  EXPECT_EQ(target_rows_in_all_tables(), before);

  // Any vigil data counts, not only services: here one maintenance window.
  TestDatabase other(StoreBackend::postgres);
  other.open();
  other.database()->open_alert_store()->add_maintenance_window(
      json{{"start", 1}, {"end", 2}}.dump(), from_unix_ms(kStart));
  const Run into_other = vigil_migrate({"--from", sqlite->location(), "--to", other.location()});
  EXPECT_EQ(into_other.exit_code, 2) << into_other.output;
  EXPECT_TRUE(contains(into_other.output, "(in maintenance_windows)")) << into_other.output;
  EXPECT_EQ(other.count("SELECT count(*) FROM services"), 0);
  EXPECT_EQ(other.count("SELECT count(*) FROM maintenance_windows"), 1);
}

// A row the target refuses half-way (here the last table's: text that is not UTF-8, which SQLite
// keeps and PostgreSQL does not) fails the copy (exit 1) and rolls back everything before it,
// the tick partitions it created included.
TEST_F(Migrate, AFailureHalfWayLeavesNothingBehind) {
  sqlite->exec(
      "UPDATE maintenance_windows SET definition = CAST(X'7B22C328227D' AS TEXT)"
      " WHERE id = (SELECT max(id) FROM maintenance_windows)");
  std::ostringstream progress;
  try {
    migrate_sqlite_to_postgres(sqlite->location(), pg->location(), progress);
    FAIL() << "copied";
  } catch (const MigrateFailed& e) {
    EXPECT_TRUE(contains(e.what(), "maintenance_windows")) << e.what();
    EXPECT_FALSE(contains(e.what(), password)) << e.what();
  }
  EXPECT_EQ(target_rows_in_all_tables(), 0);
  EXPECT_EQ(
      pg->count("SELECT count(*) FROM pg_inherits WHERE inhparent = 'service_ticks'::regclass"), 0);
  const Run run = migrate_history();
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_TRUE(contains(run.output, "nothing was copied")) << run.output;
  EXPECT_EQ(target_rows_in_all_tables(), 0);
}

// An unreachable server, a malformed --to, missing arguments: clear errors, no password shown.
TEST_F(Migrate, BadTargetsAndArgumentsAreClearErrors) {
  const std::string secret = "s3cret-Pw";
  const Run unreachable = vigil_migrate({"--from", sqlite->location(), "--to",
                                         "postgresql://vigil:" + secret +
                                             "@127.0.0.1:" + std::to_string(closed_port()) +
                                             "/vigil?connect_timeout=2"});
  EXPECT_EQ(unreachable.exit_code, 1) << unreachable.output;
  EXPECT_TRUE(contains(unreachable.output, "127.0.0.1")) << unreachable.output;
  EXPECT_FALSE(contains(unreachable.output, secret)) << unreachable.output;

  const Run malformed = vigil_migrate({"--from", sqlite->location(), "--to",
                                       "postgresql://vigil:" + secret + "@127.0.0.1:99999/vigil"});
  EXPECT_EQ(malformed.exit_code, 2) << malformed.output;
  EXPECT_FALSE(contains(malformed.output, secret)) << malformed.output;

  const Run no_target = vigil_migrate({"--from", sqlite->location()});
  EXPECT_EQ(no_target.exit_code, 2) << no_target.output;
  EXPECT_TRUE(contains(no_target.output, "--to")) << no_target.output;

  const Run no_source = vigil_migrate({"--from", dir.file("missing.db"), "--to", pg->location()});
  EXPECT_EQ(no_source.exit_code, 1) << no_source.output;
  EXPECT_TRUE(contains(no_source.output, "missing.db")) << no_source.output;
  EXPECT_FALSE(contains(no_source.output, password)) << no_source.output;
  EXPECT_EQ(target_tables(), 0);  // never reached

  const Run help = vigil_migrate({"--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_TRUE(contains(help.output, "--from")) << help.output;
  // vigil's own usage lists the command.
  ChildProcess usage(VIGIL_BINARY, {"--help"}, dir.path(), {}, dir.file("usage.log"));
  EXPECT_EQ(usage.wait_for_exit(10s), 0);
  EXPECT_TRUE(contains(read_file(dir.file("usage.log")), "migrate --from <sqlite file> --to"));
}

// A source at an older schema version is refused with what to do, and not migrated by the copy
// (it is opened read-only).
TEST_F(Migrate, ASourceAtAnotherSchemaVersionIsRefused) {
  const std::int64_t version = sqlite->count("SELECT max(version) FROM schema_version");
  sqlite->exec("DELETE FROM schema_version WHERE version = " + std::to_string(version));
  const Run run = migrate_history();
  EXPECT_EQ(run.exit_code, 2) << run.output;
  EXPECT_TRUE(contains(run.output, "start this vigil once on it")) << run.output;
  EXPECT_EQ(sqlite->count("SELECT max(version) FROM schema_version"), version - 1);
  EXPECT_EQ(target_tables(), 0);  // never reached
}

// Long copies report their progress; the column mapping covers every table of the SQLite schema.
TEST_F(Migrate, ReportsProgressOnLongCopiesAndKnowsEveryTable) {
  std::ostringstream progress;
  const MigrateSummary summary = migrate_sqlite_to_postgres(
      sqlite->location(), pg->location(), progress, MigrateOptions{.chunk_rows = 500});
  const std::int64_t ticks = source_rows("service_ticks");
  ASSERT_GT(ticks, 1000);
  EXPECT_TRUE(
      contains(progress.str(), "migrate: service_ticks 500/" + std::to_string(ticks) + "\n"))
      << progress.str();
  EXPECT_TRUE(contains(progress.str(), "migrate: service_ticks " + std::to_string(ticks) + "/" +
                                           std::to_string(ticks) + "\n"))
      << progress.str();
  EXPECT_FALSE(contains(progress.str(), "migrate: services ")) << progress.str();  // one chunk
  EXPECT_FALSE(contains(summary.target, password));
  ASSERT_EQ(summary.tables.size(), migrated_tables().size());
  for (const auto& table : summary.tables)
    EXPECT_EQ(table.rows, source_rows(table.table)) << table.table;

  // Every table of the SQLite schema is either copied or left out on purpose.
  std::vector<std::string> known = migrated_tables();
  for (const auto& table : tables_not_migrated()) known.push_back(table);
  const std::int64_t tables = sqlite->count(
      "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'");
  EXPECT_EQ(tables, static_cast<std::int64_t>(known.size()));
  for (const auto& table : known)
    EXPECT_EQ(sqlite->count("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '" +
                            table + "'"),
              1)
        << table;
}

}  // namespace
}  // namespace vigil::test

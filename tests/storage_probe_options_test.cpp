// Storage of the probe-depth fields in a real SQLite file: a spec's probe options come
// back equal (conditions compiled again), ticks keep their phases, and a database written by
// vigil 0.1 (schema version 1) migrates with its data intact.
#include <SQLiteCpp/SQLiteCpp.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/conditions.h"
#include "storage/sqlite/sqlite_database.h"
#include "storage/store.h"
#include "support/phase_sum.h"
#include "support/target_server.h"

namespace vigil {
namespace {

using namespace std::chrono_literals;

const TimePoint kT0 = from_unix_ms(1'700'000'000'000);

ServiceSpec deep_spec() {
  ServiceSpec spec;
  spec.name = "deep";
  spec.url = "https://example.com/health";
  spec.method = "POST";
  spec.probe.body = R"({"check":true})";
  spec.probe.conditions = parse_conditions(
      nlohmann::json{{"body_contains", "ok"}, {"json", {{{"pointer", "/a/b"}, {"lt", 3}}}}},
      "test");
  spec.probe.follow_redirects = false;
  spec.probe.max_redirects = 2;
  spec.probe.insecure_skip_verify = true;
  spec.probe.proxy = "http://proxy.internal:3128";
  spec.probe.ip_version = IpVersion::v4;
  spec.probe.user_agent = "deep/1";
  spec.probe.failure_threshold = 3;
  spec.probe.success_threshold = 2;
  spec.probe.retry_interval = 2500ms;
  return spec;
}

TickRecord record(ServiceId id, TimePoint ts, std::optional<PhaseTimings> phases) {
  TickRecord r;
  r.tick.service_id = id;
  r.tick.ts = ts;
  r.tick.up = true;
  r.tick.status_code = 200;
  r.tick.response_ms = phases ? test::phase_sum(*phases) : 3;
  r.tick.phases = phases;
  r.metric_after.add(true, r.tick.response_ms);
  return r;
}

TEST(StorageProbeOptions, SpecRoundTripsAndChangesAreSeen) {
  test::TempDir dir;
  auto store = open_sqlite_store(dir.file("vigil.db"));
  ServiceSpec tcp;
  tcp.name = "tcp";
  tcp.url = "tcp://127.0.0.1:6379";
  tcp.probe.tcp_send = "PING";
  tcp.probe.tcp_expect = "+PONG";
  ServiceSpec plain;
  plain.name = "plain";
  plain.url = "http://127.0.0.1/";
  store->sync_services({deep_spec(), tcp, plain}, kT0);

  const auto services = store->active_services();
  ASSERT_EQ(services.size(), 3u);
  EXPECT_EQ(services[0].spec, deep_spec());
  ASSERT_TRUE(services[0].spec.probe.conditions.compiled);
  EXPECT_EQ(services[0].spec.probe.conditions.compiled->checks.size(), 2u);
  EXPECT_EQ(services[1].spec, tcp);
  EXPECT_EQ(services[2].spec.probe, ProbeOptions{});

  // The plain service's row holds '' (defaults take no room); the others their JSON.
  SQLite::Database db(dir.file("vigil.db"), SQLite::OPEN_READONLY);
  EXPECT_EQ(db.execAndGet("SELECT probe_options FROM services WHERE name = 'plain'").getString(),
            "");
  EXPECT_EQ(db.execAndGet("SELECT probe_options FROM services WHERE name = 'tcp'").getString(),
            R"({"expect":"+PONG","send":"PING"})");

  // A change of a probe option alone is an update, and a re-sync of the same specs is not.
  ServiceSpec changed = deep_spec();
  changed.probe.failure_threshold = 4;
  const SyncResult again = store->sync_services({changed, tcp, plain}, kT0 + 1s);
  EXPECT_EQ(again.updated, std::vector<std::string>{"deep"});
  EXPECT_EQ(store->active_services()[0].spec.probe.failure_threshold, 4);
  EXPECT_TRUE(store->sync_services({changed, tcp, plain}, kT0 + 2s).updated.empty());
}

TEST(StorageProbeOptions, TicksKeepTheirPhases) {
  test::TempDir dir;
  auto store = open_sqlite_store(dir.file("vigil.db"));
  ServiceSpec spec;
  spec.name = "phased";
  spec.url = "https://example.com/";
  store->sync_services({spec}, kT0);
  const ServiceId id = store->active_services()[0].id;

  const PhaseTimings phases{0.021, 0.105, 4.75, 12.5, 0.333};
  store->apply({record(id, kT0, phases), record(id, kT0 + 1s, std::nullopt)});
  const auto ticks = store->ticks(id, TickQuery{});
  ASSERT_EQ(ticks.size(), 2u);
  EXPECT_FALSE(ticks[0].phases);  // newest first: the one without
  ASSERT_TRUE(ticks[1].phases);
  EXPECT_EQ(*ticks[1].phases, phases);  // microsecond precision, exact for these values
  EXPECT_NEAR(test::phase_sum(*ticks[1].phases), ticks[1].response_ms, 0.001);
}

// vigil 0.1's schema (migration 1), as a file it left behind.
constexpr const char* kVersion1SchemaWithOptions = R"sql(
CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL);
INSERT INTO schema_version VALUES (1, 1700000000000);
CREATE TABLE services (
  id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, url TEXT NOT NULL,
  interval_ms INTEGER NOT NULL, timeout_ms INTEGER NOT NULL, method TEXT NOT NULL,
  headers TEXT NOT NULL DEFAULT '[]', expected_status TEXT NOT NULL DEFAULT '200-399',
  active INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)), source TEXT NOT NULL DEFAULT 'file',
  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
CREATE TABLE service_metrics (
  service_id INTEGER PRIMARY KEY REFERENCES services(id) ON DELETE CASCADE,
  tick_count INTEGER NOT NULL, up_count INTEGER NOT NULL, down_count INTEGER NOT NULL,
  average_response_time_ms REAL NOT NULL, uptime_percent REAL NOT NULL,
  last_tick_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
CREATE TABLE service_events (
  id INTEGER PRIMARY KEY, service_id INTEGER NOT NULL REFERENCES services(id) ON DELETE CASCADE,
  event TEXT NOT NULL CHECK (event IN ('uptime', 'downtime')), date_started INTEGER NOT NULL,
  date_ended INTEGER, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
CREATE INDEX service_events_by_service ON service_events(service_id, id);
CREATE UNIQUE INDEX service_events_one_open ON service_events(service_id) WHERE date_ended IS NULL;
CREATE TABLE service_ticks (
  service_id INTEGER NOT NULL REFERENCES services(id) ON DELETE CASCADE, ts INTEGER NOT NULL,
  up INTEGER NOT NULL CHECK (up IN (0, 1)), status_code INTEGER, response_ms REAL NOT NULL,
  error TEXT, region TEXT NOT NULL DEFAULT '');
CREATE INDEX service_ticks_by_service_ts ON service_ticks(service_id, ts);

INSERT INTO services VALUES (1, 'old', 'http://127.0.0.1:8080/', 15000, 5000, 'HEAD', '[]',
  '200-299', 1, 'file', 1700000000000, 1700000000000);
INSERT INTO service_metrics VALUES (1, 2, 1, 1, 7.5, 50.0, 1700000060000, 1700000060000);
INSERT INTO service_events VALUES (1, 1, 'downtime', 1700000060000, NULL, 1700000060000,
  1700000060000);
INSERT INTO service_ticks VALUES (1, 1700000000000, 1, 200, 5.0, NULL, 'eu');
INSERT INTO service_ticks VALUES (1, 1700000060000, 0, NULL, 10.0, 'connection refused', 'eu');
)sql";

TEST(StorageProbeOptions, MigratingAVersion1DatabaseKeepsItsData) {
  test::TempDir dir;
  const std::string path = dir.file("old.db");
  {
    SQLite::Database db(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    db.exec(kVersion1SchemaWithOptions);
  }
  auto store = open_sqlite_store(path);

  const auto services = store->active_services();
  ASSERT_EQ(services.size(), 1u);
  EXPECT_EQ(services[0].spec.name, "old");
  EXPECT_EQ(services[0].spec.method, "HEAD");
  EXPECT_EQ(services[0].spec.expected_status, (std::vector<StatusRange>{StatusRange{200, 299}}));
  EXPECT_EQ(services[0].spec.probe, ProbeOptions{});  // defaults for the new fields

  const auto ticks = store->ticks(1, TickQuery{});
  ASSERT_EQ(ticks.size(), 2u);
  EXPECT_EQ(ticks[0].error, "connection refused");
  EXPECT_EQ(ticks[1].response_ms, 5.0);
  for (const auto& tick : ticks) EXPECT_FALSE(tick.phases);  // older ticks have none

  const auto runtime = store->load_runtime();
  ASSERT_TRUE(runtime.contains(1));
  EXPECT_EQ(runtime.at(1).metric.tick_count, 2);
  EXPECT_EQ(runtime.at(1).open_event_kind, EventKind::downtime);

  // New ticks carry phases next to the old ones.
  store->apply({record(1, from_unix_ms(1'700'000'120'000), PhaseTimings{1, 2, 3, 4, 5})});
  const auto after = store->ticks(1, TickQuery{});
  ASSERT_EQ(after.size(), 3u);
  EXPECT_EQ(after[0].phases, (PhaseTimings{1, 2, 3, 4, 5}));

  SQLite::Database db(path, SQLite::OPEN_READONLY);
  EXPECT_GE(db.execAndGet("SELECT MAX(version) FROM schema_version").getInt(), 3);
}

}  // namespace
}  // namespace vigil

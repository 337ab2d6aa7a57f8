// Service management in storage, against real databases of every backend: migration 2 from a
// version-1 database (SQLite only), API-owned services beside file ones, push tokens, filters and
// pages, purge (with ticks still on their way), the change feed a runner process follows, queued
// beats and retention.
#include <SQLiteCpp/SQLiteCpp.h>
#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/model.h"
#include "storage/change_feed.h"
#include "storage/retention.h"
#include "storage/sqlite/sqlite_database.h"
#include "storage/sqlite/sqlite_schema.h"
#include "storage/store.h"
#include "storage/writer.h"
#include "support/store_backends.h"
#include "support/target_server.h"
#include "support/test_data.h"

namespace vigil {
namespace {

using namespace std::chrono_literals;
using test::TempDir;

using test::at;

using test::probed;

ServiceSpec heartbeat(const std::string& name) {
  ServiceSpec spec;
  spec.name = name;
  spec.kind = ServiceKind::heartbeat;
  spec.interval = Millis(60'000);
  spec.grace = Millis(6'000);
  spec.threshold = 2;
  return spec;
}

TickRecord tick(ServiceId id, std::int64_t ts_ms, bool up, Metric& metric,
                std::optional<EventKind> opens = std::nullopt, const std::string& error = {}) {
  TickRecord record;
  record.tick.service_id = id;
  record.tick.ts = at(ts_ms);
  record.tick.up = up;
  record.tick.error = up ? "" : (error.empty() ? "connection refused" : error);
  record.tick.response_ms = 5;
  metric.add(up, 5);
  record.metric_after = metric;
  record.opens_event = opens;
  return record;
}

using test::sqlite_count;

bool base64url(const std::string& token) {
  for (const char c : token)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return false;
  return true;
}

// Each test on every backend, on a database of its own.
struct StoreFixture : ::testing::TestWithParam<test::StoreBackend> {
  void SetUp() override {
    if (auto reason = test::unavailable(GetParam())) GTEST_SKIP() << *reason;
    db = std::make_unique<test::TestDatabase>(GetParam());
    store = db->open();
  }
  std::int64_t count(const std::string& sql) const { return db->count(sql); }

  std::unique_ptr<test::TestDatabase> db;
  std::unique_ptr<Store> store;
};
INSTANTIATE_TEST_SUITE_P(Backends, StoreFixture, test::kStoreBackends, test::backend_name);

// The version-1 schema, exactly as migration 1 created it (migrations are append-only).
constexpr const char* kVersion1SchemaWithHistory = R"sql(
CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL);
INSERT INTO schema_version VALUES (1, 0);
CREATE TABLE services (
  id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, url TEXT NOT NULL,
  interval_ms INTEGER NOT NULL, timeout_ms INTEGER NOT NULL, method TEXT NOT NULL,
  headers TEXT NOT NULL DEFAULT '[]', expected_status TEXT NOT NULL DEFAULT '200-399',
  active INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
  source TEXT NOT NULL DEFAULT 'file', created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
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
INSERT INTO services VALUES (7, 'legacy', 'http://legacy.test/', 10000, 2000, 'HEAD',
  '[["X-A","1"]]', '200-299', 1, 'file', 1000, 2000);
INSERT INTO service_metrics VALUES (7, 2, 1, 1, 15.0, 50.0, 4000, 4000);
INSERT INTO service_events VALUES (1, 7, 'uptime', 3000, 4000, 3000, 4000);
INSERT INTO service_events VALUES (2, 7, 'downtime', 4000, NULL, 4000, 4000);
INSERT INTO service_ticks VALUES (7, 3000, 1, 200, 10.0, NULL, 'eu');
INSERT INTO service_ticks VALUES (7, 4000, 0, NULL, 20.0, 'connection refused', 'eu');
)sql";

TEST(StorageManagement, MigrationTwoKeepsVersionOneDataAndAddsDefaults) {
  TempDir dir;
  const auto path = dir.file("vigil.db");
  {
    SQLite::Database db(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    db.exec(kVersion1SchemaWithHistory);
  }
  auto store = open_sqlite_store(path);
  EXPECT_EQ(sqlite_count(path, "SELECT MAX(version) FROM schema_version"),
            sqlite_schema::current_version());
  EXPECT_EQ(sqlite_count(path, "SELECT COUNT(*) FROM schema_version WHERE version = 2"), 1);

  const auto view = store->get_service(7);
  ASSERT_TRUE(view);
  const Service& legacy = view->service;
  EXPECT_EQ(legacy.spec.name, "legacy");
  EXPECT_EQ(legacy.spec.method, "HEAD");
  EXPECT_EQ(legacy.spec.timeout, Millis(2000));
  EXPECT_EQ(legacy.spec.headers.size(), 1u);
  EXPECT_EQ(legacy.source, ServiceSource::file);
  EXPECT_EQ(legacy.spec.kind, ServiceKind::http);
  EXPECT_EQ(legacy.spec.priority, 3);
  EXPECT_TRUE(legacy.spec.tags.empty());
  EXPECT_FALSE(legacy.spec.muted);
  EXPECT_TRUE(legacy.push_token.empty());
  EXPECT_EQ(view->metric.tick_count, 2);
  ASSERT_TRUE(view->open_event);
  EXPECT_EQ(view->open_event->kind, EventKind::downtime);
  const auto ticks = store->ticks(7, {});
  ASSERT_EQ(ticks.size(), 2u);
  EXPECT_EQ(ticks[0].error, "connection refused");
  EXPECT_TRUE(ticks[0].message.empty());
  EXPECT_EQ(store->load_runtime().at(7).last_tick_at, at(4000));

  // The file sync that follows an upgrade sees an unchanged service, not a new one.
  ServiceSpec same = legacy.spec;
  const SyncResult sync = store->sync_services({same}, at(9000));
  EXPECT_TRUE(sync.inserted.empty());
  EXPECT_TRUE(sync.updated.empty());
}

TEST_P(StoreFixture, CreatedServicesAreOwnedByTheApiAndHeartbeatsGetAPushToken) {
  ServiceSpec spec = heartbeat("backup");
  spec.team = "ops";
  spec.tags = {"cron", "nightly"};
  spec.priority = 2;
  spec.runbook = "https://wiki.test/backup";
  spec.muted = true;
  spec.muted_until = at(1'900'000'000'000);
  const Service created = store->create_service(spec, at(5000));
  EXPECT_GT(created.id, 0);
  EXPECT_EQ(created.source, ServiceSource::api);
  EXPECT_TRUE(created.active);
  EXPECT_EQ(created.created_at, at(5000));
  EXPECT_EQ(created.spec, spec);
  EXPECT_EQ(created.push_token.size(), 32u);  // 192 bits, base64url without padding
  EXPECT_TRUE(base64url(created.push_token)) << created.push_token;

  const Service other = store->create_service(heartbeat("report"), at(5000));
  EXPECT_NE(other.push_token, created.push_token);
  const Service web = store->create_service(probed("web"), at(5000));
  EXPECT_TRUE(web.push_token.empty());

  EXPECT_EQ(store->get_service(created.id)->service.spec, spec);
  const auto found = store->find_by_push_token(created.push_token);
  ASSERT_TRUE(found);
  EXPECT_EQ(found->id, created.id);
  EXPECT_FALSE(store->find_by_push_token("not-a-token"));
  EXPECT_FALSE(store->find_by_push_token(""));
  // An inactive heartbeat takes no beats.
  store->set_service_active(created.id, false, at(6000));
  EXPECT_FALSE(store->find_by_push_token(created.push_token));
}

TEST_P(StoreFixture, DuplicateNamesAreConflictsWhateverTheSourceOrState) {
  store->sync_services({probed("from-file")}, at(1000));
  const Service api = store->create_service(probed("from-api"), at(1000));
  EXPECT_THROW(store->create_service(probed("from-file"), at(2000)), ConflictError);
  EXPECT_THROW(store->create_service(probed("from-api"), at(2000)), ConflictError);
  store->set_service_active(api.id, false, at(2000));
  try {
    store->create_service(probed("from-api"), at(3000));
    FAIL() << "the name of an inactive service was taken";
  } catch (const ConflictError& e) {
    EXPECT_NE(std::string(e.what()).find("already taken by service " + std::to_string(api.id) +
                                         " (inactive)"),
              std::string::npos)
        << e.what();
  }
  const Service other = store->create_service(probed("other"), at(3000));
  EXPECT_THROW(store->update_service(other.id, probed("from-file"), at(4000)), ConflictError);
  EXPECT_EQ(count("SELECT COUNT(*) FROM services"), 3);
}

TEST_P(StoreFixture, UpdateKeepsTheTokenAndIdentityAndAKindChangeGivesOrTakesIt) {
  const Service beat = store->create_service(heartbeat("job"), at(1000));
  ServiceSpec changed = beat.spec;
  changed.interval = Millis(120'000);
  changed.name = "job-renamed";
  const auto updated = store->update_service(beat.id, changed, at(2000));
  ASSERT_TRUE(updated);
  EXPECT_EQ(updated->spec, changed);
  EXPECT_EQ(updated->push_token, beat.push_token);
  EXPECT_EQ(updated->created_at, at(1000));
  EXPECT_EQ(updated->updated_at, at(2000));
  EXPECT_EQ(updated->source, ServiceSource::api);

  const auto as_probe = store->update_service(beat.id, probed("job-renamed"), at(3000));
  EXPECT_TRUE(as_probe->push_token.empty());
  const auto again = store->update_service(beat.id, heartbeat("job-renamed"), at(4000));
  EXPECT_EQ(again->push_token.size(), 32u);
  EXPECT_NE(again->push_token, beat.push_token);

  EXPECT_FALSE(store->update_service(beat.id + 100, probed("ghost"), at(5000)));
  EXPECT_FALSE(store->set_service_active(beat.id + 100, false, at(5000)));
  EXPECT_FALSE(store->purge_service(beat.id + 100));
}

TEST_P(StoreFixture, FileSyncNeverTouchesApiServicesAndFileHeartbeatsGetTokens) {
  const Service api = store->create_service(probed("api-owned"), at(1000));
  // A file that also names the API service, then a file without it.
  SyncResult sync = store->sync_services({probed("api-owned"), heartbeat("file-beat")}, at(2000));
  EXPECT_EQ(sync.inserted, std::vector<std::string>{"file-beat"});
  sync = store->sync_services({}, at(3000));
  EXPECT_EQ(sync.deactivated, std::vector<std::string>{"file-beat"});
  const auto still = store->get_service(api.id);
  EXPECT_TRUE(still->service.active);
  EXPECT_EQ(still->service.spec, api.spec);
  EXPECT_EQ(still->service.updated_at, at(1000));

  store->sync_services({heartbeat("file-beat")}, at(4000));
  const auto views = store->list_services(ServiceFilter{.kind = ServiceKind::heartbeat});
  ASSERT_EQ(views.size(), 1u);
  EXPECT_EQ(views[0].service.source, ServiceSource::file);
  EXPECT_EQ(views[0].service.push_token.size(), 32u);
  // A file change keeps the token the users already put in their cron lines.
  ServiceSpec slower = heartbeat("file-beat");
  slower.interval = Millis(600'000);
  const std::string token = views[0].service.push_token;
  store->sync_services({slower}, at(5000));
  EXPECT_EQ(store->get_service(views[0].service.id)->service.push_token, token);
}

TEST_P(StoreFixture, ListFiltersCombineAndPage) {
  auto make = [&](const std::string& name, const std::string& team, std::vector<std::string> tags,
                  bool muted, std::optional<TimePoint> until, bool beat = false) {
    ServiceSpec spec = beat ? heartbeat(name) : probed(name);
    spec.team = team;
    spec.tags = std::move(tags);
    spec.muted = muted;
    spec.muted_until = until;
    return store->create_service(spec, at(1000)).id;
  };
  const ServiceId a = make("a", "payments", {"prod", "eu"}, false, std::nullopt);
  const ServiceId b = make("b", "payments", {"staging"}, true, std::nullopt);
  const ServiceId c = make("c", "search", {"prod"}, true, at(2000));  // snooze ends at 2 s
  const ServiceId d = make("d", "", {}, false, std::nullopt, true);
  const ServiceId e = make("e", "search", {"prod"}, false, std::nullopt);
  store->set_service_active(e, false, at(1500));  // inactive: never listed
  Metric ma, mb;
  store->apply(
      {tick(a, 1000, true, ma, EventKind::uptime), tick(b, 1000, false, mb, EventKind::downtime)});

  const auto ids = [&](const ServiceFilter& filter) {
    std::vector<ServiceId> out;
    for (const auto& view : store->list_services(filter)) out.push_back(view.service.id);
    return out;
  };
  using Ids = std::vector<ServiceId>;
  EXPECT_EQ(ids({}), (Ids{a, b, c, d}));
  EXPECT_EQ(ids({.team = "payments"}), (Ids{a, b}));
  EXPECT_EQ(ids({.tag = "prod"}), (Ids{a, c}));
  EXPECT_EQ(ids({.team = "search", .tag = "prod"}), (Ids{c}));
  EXPECT_EQ(ids({.tag = "pro"}), Ids{});  // whole tags only
  EXPECT_EQ(ids({.status = EventKind::uptime}), (Ids{a}));
  EXPECT_EQ(ids({.status = EventKind::downtime}), (Ids{b}));
  EXPECT_EQ(ids({.kind = ServiceKind::heartbeat}), (Ids{d}));
  EXPECT_EQ(ids({.kind = ServiceKind::http}), (Ids{a, b, c}));
  // Muted is evaluated at `now`: c's snooze runs until 2 s.
  EXPECT_EQ(ids({.muted = true, .now = at(1999)}), (Ids{b, c}));
  EXPECT_EQ(ids({.muted = true, .now = at(2000)}), (Ids{b}));
  EXPECT_EQ(ids({.muted = false, .now = at(2000)}), (Ids{a, c, d}));
  EXPECT_EQ(ids({.limit = 2}), (Ids{a, b}));
  EXPECT_EQ(ids({.limit = 2, .offset = 2}), (Ids{c, d}));
  EXPECT_EQ(ids({.limit = 2, .offset = 4}), Ids{});
  EXPECT_EQ(ids({.tag = "prod", .limit = 1, .offset = 1}), (Ids{c}));
}

// list_services reads its rows through SQLite's C API (for speed), get_service through
// SQLiteCpp: both must give the same service, every field, NULLs and empty arrays included.
TEST_P(StoreFixture, ListedServicesReadEveryFieldAsGetServiceDoes) {
  ServiceSpec full = heartbeat("full \"quoted\" caf\u00e9");
  full.headers = {{"X-B", "2"}, {"Accept", "*/*"}};
  full.expected_status = {{200, 299}, {404, 404}};
  full.team = "ops";
  full.priority = 2;
  full.runbook = "https://wiki.test/full";
  full.tags = {"cron", "nightly"};
  full.muted = true;
  full.muted_until = at(1'900'000'000'000);
  full.alert_channels = {"pager", "mail"};
  full.repeat_every = Millis(600'000);
  full.probe.body = "{\"ping\":1}";
  full.probe.max_redirects = 3;
  full.probe.retry_interval = Millis(2'000);
  ServiceSpec bare = probed("bare");  // empty arrays, NULL muted_until and repeat_every
  bare.expected_status.clear();
  const ServiceId full_id = store->create_service(full, at(1000)).id;
  const ServiceId bare_id = store->create_service(bare, at(1000)).id;
  Metric metric;
  store->apply({tick(bare_id, 2000, false, metric, EventKind::downtime)});

  const auto views = store->list_services();
  ASSERT_EQ(views.size(), 2u);
  for (const ServiceView& listed : views) {
    const auto got = store->get_service(listed.service.id);
    ASSERT_TRUE(got);
    EXPECT_EQ(listed.service.spec, got->service.spec);
    EXPECT_EQ(listed.service.id, got->service.id);
    EXPECT_EQ(listed.service.active, got->service.active);
    EXPECT_EQ(listed.service.source, got->service.source);
    EXPECT_EQ(listed.service.push_token, got->service.push_token);
    EXPECT_EQ(listed.service.created_at, got->service.created_at);
    EXPECT_EQ(listed.service.updated_at, got->service.updated_at);
    EXPECT_EQ(listed.metric, got->metric);
    ASSERT_EQ(listed.open_event.has_value(), got->open_event.has_value());
    if (listed.open_event) {
      EXPECT_EQ(listed.open_event->id, got->open_event->id);
      EXPECT_EQ(listed.open_event->kind, got->open_event->kind);
      EXPECT_EQ(listed.open_event->date_started, got->open_event->date_started);
      EXPECT_EQ(listed.open_event->updated_at, got->open_event->updated_at);
    }
  }
  // And both are what was stored.
  EXPECT_EQ(views[0].service.id, full_id);
  EXPECT_EQ(views[0].service.spec, full);
  EXPECT_EQ(views[0].service.push_token.size(), 32u);
  EXPECT_FALSE(views[0].open_event);
  EXPECT_EQ(views[1].service.spec, bare);
  EXPECT_TRUE(views[1].service.push_token.empty());
  EXPECT_EQ(views[1].metric, metric);
  ASSERT_TRUE(views[1].open_event);
  EXPECT_EQ(views[1].open_event->kind, EventKind::downtime);
  EXPECT_EQ(views[1].open_event->date_started, at(2000));
}

// A failing read through the C API surfaces as the store's StorageError, naming the operation.
TEST_P(StoreFixture, ListServicesReportsASqliteErrorAsStorageError) {
  store->create_service(probed("a"), at(1000));
  db->exec("ALTER TABLE service_metrics RENAME TO service_metrics_gone");
  try {
    store->list_services();
    FAIL() << "list_services read a database without service_metrics";
  } catch (const StorageError& e) {
    EXPECT_NE(std::string(e.what()).find("list_services"), std::string::npos) << e.what();
  }
}

TEST_P(StoreFixture, PurgeDeletesHistoryAndLaterTicksOfItAreSkippedNotFatal) {
  const ServiceId keep = store->create_service(probed("keep"), at(0)).id;
  const ServiceId gone = store->create_service(probed("gone"), at(0)).id;
  Metric mk, mg;
  std::vector<TickRecord> history;
  for (int i = 0; i < 12'000; ++i)  // more than one purge batch
    history.push_back(tick(
        gone, 1000 + i, i % 2 == 0, mg,
        i < 2 ? std::optional(i == 0 ? EventKind::uptime : EventKind::downtime) : std::nullopt));
  store->apply(history);
  store->apply({tick(keep, 1000, true, mk, EventKind::uptime)});
  ASSERT_TRUE(store->purge_service(gone));
  EXPECT_FALSE(store->get_service(gone));
  EXPECT_EQ(count("SELECT COUNT(*) FROM service_ticks WHERE service_id = " + std::to_string(gone)),
            0);
  EXPECT_EQ(count("SELECT COUNT(*) FROM service_events WHERE service_id = " + std::to_string(gone)),
            0);
  EXPECT_EQ(
      count("SELECT COUNT(*) FROM service_metrics WHERE service_id = " + std::to_string(gone)), 0);
  EXPECT_FALSE(store->purge_service(gone));

  // Ticks the runner produced before the purge reach apply() after it, mixed with others.
  store->apply({tick(gone, 50'000, true, mg), tick(keep, 50'000, false, mk, EventKind::downtime),
                tick(gone, 51'000, true, mg, EventKind::uptime)});
  const auto kept = store->get_service(keep);
  EXPECT_EQ(kept->metric.tick_count, 2);
  EXPECT_EQ(kept->open_event->kind, EventKind::downtime);
  EXPECT_EQ(count("SELECT COUNT(*) FROM service_ticks"), 2);
}

TEST_P(StoreFixture, APurgedServicesIdIsNeverGivenAgain) {
  store->create_service(probed("first"), at(0));
  const ServiceId gone = store->create_service(probed("gone"), at(0)).id;  // the highest id
  ASSERT_TRUE(store->purge_service(gone));
  const ServiceId api = store->create_service(probed("next"), at(0)).id;
  EXPECT_GT(api, gone);
  store->sync_services({probed("from-file")}, at(0));
  for (const auto& service : store->active_services()) EXPECT_NE(service.id, gone);
  // A tick of the purged service that was still on its way is skipped, not given to another.
  Metric metric;
  store->apply({tick(gone, 1000, true, metric, EventKind::uptime)});
  EXPECT_EQ(count("SELECT COUNT(*) FROM service_ticks"), 0);
  EXPECT_EQ(store->get_service(api)->metric.tick_count, 0);
}

TEST_P(StoreFixture, TheWriterSurvivesTicksOfAServicePurgedWhileTheyWereQueued) {
  prometheus::Registry registry;
  const ServiceId keep = store->create_service(probed("keep"), at(0)).id;
  const ServiceId gone = store->create_service(probed("gone"), at(0)).id;
  // A long flush interval keeps the records queued until the purge is done.
  Writer writer(*store, registry, WriterOptions{.flush_interval = 10s});
  Metric mk, mg;
  writer.submit(tick(keep, 1000, true, mk, EventKind::uptime));
  writer.submit(tick(gone, 1000, true, mg, EventKind::uptime));
  writer.submit(tick(keep, 2000, true, mk));
  ASSERT_TRUE(store->purge_service(gone));
  writer.flush();
  EXPECT_EQ(writer.failed_batches(), 0u);
  EXPECT_EQ(writer.queue_depth(), 0u);
  EXPECT_EQ(store->get_service(keep)->metric.tick_count, 2);
}

TEST_P(StoreFixture, ChangesAfterARevisionIncludeWritesPurgesAndFileSyncs) {
  const std::int64_t start = store->services_revision();
  const Service a = store->create_service(probed("a"), at(1000));
  const Service b = store->create_service(probed("b"), at(1000));
  const std::int64_t after_create = store->services_revision();
  EXPECT_GT(after_create, start);

  ServiceChanges changes = store->service_changes(start);
  ASSERT_EQ(changes.changed.size(), 2u);
  EXPECT_EQ(changes.revision, after_create);
  EXPECT_TRUE(store->service_changes(after_create).changed.empty());

  store->set_service_active(a.id, false, at(2000));
  ASSERT_TRUE(store->purge_service(b.id));
  store->sync_services({probed("f")}, at(3000));
  changes = store->service_changes(after_create);
  ASSERT_EQ(changes.changed.size(), 2u);
  EXPECT_EQ(changes.changed[0].id, a.id);
  EXPECT_FALSE(changes.changed[0].active);
  EXPECT_EQ(changes.changed[1].spec.name, "f");
  EXPECT_EQ(changes.purged, std::vector<ServiceId>{b.id});
  EXPECT_EQ(changes.revision, store->services_revision());
  // A file sync that changes nothing writes nothing.
  store->sync_services({probed("f")}, at(4000));
  EXPECT_EQ(store->services_revision(), changes.revision);
}

TEST_P(StoreFixture, PurgingTheServiceWrittenLastReachesAFollower) {
  const Service only = store->create_service(probed("only"), at(1000));
  const std::int64_t seen = store->services_revision();  // a follower saw the create
  ASSERT_TRUE(store->purge_service(only.id));
  store->create_service(probed("next"), at(2000));
  const ServiceChanges changes = store->service_changes(seen);
  EXPECT_EQ(changes.purged, std::vector<ServiceId>{only.id});
  ASSERT_EQ(changes.changed.size(), 1u);
  EXPECT_EQ(changes.changed[0].spec.name, "next");
}

TEST_P(StoreFixture, PushTokensNeverStartWithADash) {
  // A command line would take such a token for an option. 1 token in 64 would, by chance: with
  // 300 of them, the chance that none does is under 1 %.
  for (int i = 0; i < 300; ++i) {
    const Service beat = store->create_service(heartbeat("job-" + std::to_string(i)), at(0));
    ASSERT_EQ(beat.push_token.size(), 32u);
    EXPECT_NE(beat.push_token.front(), '-') << beat.push_token;
  }
}

TEST_P(StoreFixture, QueuedBeatsAreClaimedOnceInOrderAndLeaveOnlyWithTheirTick) {
  const ServiceId id = store->create_service(heartbeat("job"), at(0)).id;
  EXPECT_TRUE(store->claim_beats("east", 10).empty());
  using Queued = Store::BeatQueued;
  EXPECT_EQ(store->enqueue_beat(id, BeatReport{at(1000), true, "first", 12.5}), Queued::queued);
  EXPECT_EQ(store->enqueue_beat(id, BeatReport{at(2000), false, "disk full", std::nullopt}),
            Queued::queued);
  EXPECT_EQ(store->enqueue_beat(id, BeatReport{at(3000), true, "", std::nullopt}), Queued::queued);
  auto beats = store->claim_beats("east", 2);
  ASSERT_EQ(beats.size(), 2u);
  EXPECT_LT(beats[0].id, beats[1].id);
  EXPECT_EQ(beats[0].service_id, id);
  EXPECT_EQ(beats[0].beat.at, at(1000));
  EXPECT_TRUE(beats[0].beat.up);
  EXPECT_EQ(beats[0].beat.message, "first");
  EXPECT_EQ(beats[0].beat.duration_ms, 12.5);
  EXPECT_FALSE(beats[1].beat.up);
  EXPECT_EQ(beats[1].beat.message, "disk full");
  EXPECT_FALSE(beats[1].beat.duration_ms);
  const auto third = store->claim_beats("east", 10);
  ASSERT_EQ(third.size(), 1u);
  EXPECT_EQ(third[0].beat.at, at(3000));
  // Claimed: no runner process gets them again, yet they are all still queued.
  EXPECT_TRUE(store->claim_beats("east", 10).empty());
  EXPECT_TRUE(store->claim_beats("west", 10).empty());
  EXPECT_EQ(count("SELECT COUNT(*) FROM pending_beats"), 3);

  // The first one's tick is stored: it leaves the queue with it, in the same transaction.
  Metric metric;
  TickRecord record = tick(id, 1000, true, metric, EventKind::uptime);
  record.queued_beat = beats[0].id;
  store->apply({record});
  EXPECT_EQ(count("SELECT COUNT(*) FROM pending_beats"), 2);
  EXPECT_EQ(count("SELECT COUNT(*) FROM service_ticks"), 1);

  // Its runner process stops before storing the others; started again, it gives them back.
  store->release_beats("east");
  beats = store->claim_beats("east", 10);
  ASSERT_EQ(beats.size(), 2u);
  EXPECT_EQ(beats[0].beat.message, "disk full");
  EXPECT_EQ(beats[1].beat.at, at(3000));
  // One that became no tick is discarded.
  store->discard_beats({beats[0].id, beats[1].id});
  EXPECT_EQ(count("SELECT COUNT(*) FROM pending_beats"), 0);
  store->release_beats("east");
  EXPECT_TRUE(store->claim_beats("east", 10).empty());

  ASSERT_TRUE(store->purge_service(id));
  EXPECT_EQ(store->enqueue_beat(id, BeatReport{at(4000), true, "", std::nullopt}),
            Queued::unknown_service);
}

TEST_P(StoreFixture, AClusterMemberClaimsOnlyTheBeatsOfItsShardsAndGivesBackMovedOnes) {
  // Heartbeats with ids 1..70: shards 1, 2 and 1 again (id 65) among them.
  std::vector<ServiceId> ids;
  for (int i = 0; i < 70; ++i)
    ids.push_back(store->create_service(heartbeat("job-" + std::to_string(i)), at(0)).id);
  ASSERT_EQ(ids[0], 1);
  for (const ServiceId id : {ServiceId{1}, ServiceId{2}, ServiceId{65}})
    ASSERT_EQ(store->enqueue_beat(id, BeatReport{at(id), true, "", std::nullopt}),
              Store::BeatQueued::queued);
  EXPECT_TRUE(store->claim_beats("eu-a", 10, std::vector<int>{}).empty());  // no shards: none
  auto beats = store->claim_beats("eu-a", 10, std::vector<int>{1, 5});
  ASSERT_EQ(beats.size(), 2u);
  EXPECT_EQ(beats[0].service_id, 1);
  EXPECT_EQ(beats[1].service_id, 65);
  EXPECT_TRUE(store->claim_beats("eu-b", 10, std::vector<int>{1}).empty());  // claimed once
  // Shard 1 moved to eu-b before the ticks were stored: eu-a gives the beat of 65 back.
  store->unclaim_beats({beats[1].id});
  const auto moved = store->claim_beats("eu-b", 10, std::vector<int>{1});
  ASSERT_EQ(moved.size(), 1u);
  EXPECT_EQ(moved[0].service_id, 65);
  const auto rest = store->claim_beats("eu-c", 10);  // every shard
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0].service_id, 2);
}

TEST_P(StoreFixture, TheBeatQueueIsBoundedWhenNoRunnerTakesBeats) {
  const ServiceId id = store->create_service(heartbeat("job"), at(0)).id;
  // As if a runner process had been away for a long time.
  for (std::int64_t i : {std::int64_t{1}, Store::kMaxPendingBeats})
    db->exec("INSERT INTO pending_beats(id, service_id, at, up) VALUES(" + std::to_string(i) +
             ", " + std::to_string(id) + ", 0, true)");
  EXPECT_EQ(store->enqueue_beat(id, BeatReport{at(1), true, "", std::nullopt}),
            Store::BeatQueued::full);
  // The oldest goes with its tick: room again.
  const auto oldest = store->claim_beats("east", 1);
  ASSERT_EQ(oldest.size(), 1u);
  Metric metric;
  TickRecord record = tick(id, 1, true, metric, EventKind::uptime);
  record.queued_beat = oldest[0].id;
  store->apply({record});
  EXPECT_EQ(store->enqueue_beat(id, BeatReport{at(1), true, "", std::nullopt}),
            Store::BeatQueued::queued);
}

TEST_P(StoreFixture, HeartbeatRuntimeKnowsItsLastReportBehindMissedTicks) {
  const ServiceId id = store->create_service(heartbeat("job"), at(0)).id;
  Metric metric;
  TickRecord report = tick(id, 1000, true, metric, EventKind::uptime);
  report.tick.message = "backup done";
  store->apply({report, tick(id, 2000, false, metric, EventKind::downtime, kMissedHeartbeat),
                tick(id, 3000, false, metric, std::nullopt, kMissedHeartbeat)});
  const ServiceRuntime runtime = store->load_runtime().at(id);
  EXPECT_EQ(runtime.last_tick_at, at(3000));
  EXPECT_EQ(runtime.last_beat_at, at(1000));
  EXPECT_EQ(runtime.open_event_kind, EventKind::downtime);
  const auto ticks = store->ticks(id, {});
  ASSERT_EQ(ticks.size(), 3u);
  EXPECT_EQ(ticks[2].message, "backup done");
  EXPECT_TRUE(ticks[0].message.empty());
  // A failure report counts as a report.
  store->apply({tick(id, 4000, false, metric, std::nullopt, "reported down: exit code 1")});
  EXPECT_EQ(store->load_runtime().at(id).last_beat_at, at(4000));
}

TEST_P(StoreFixture, RetentionDeletesOnlyOldTicksInBatchesAndKeepsMetricsAndEvents) {
  const ServiceId a = store->create_service(probed("a"), at(0)).id;
  const ServiceId b = store->create_service(probed("b"), at(0)).id;
  Metric ma, mb;
  std::vector<TickRecord> batch;
  for (int i = 0; i < 25; ++i) {
    batch.push_back(
        tick(a, 1000 * i, true, ma, i == 0 ? std::optional(EventKind::uptime) : std::nullopt));
    batch.push_back(tick(b, 1000 * i + 500, i < 20, mb,
                         i == 0    ? std::optional(EventKind::uptime)
                         : i == 20 ? std::optional(EventKind::downtime)
                                   : std::nullopt));
  }
  store->apply(batch);
  // Older than 10 s: a's 0..9 s and b's 0.5..9.5 s, 20 ticks.
  EXPECT_EQ(store->delete_ticks_older_than(at(10'000), std::nullopt, 8), 8u);
  EXPECT_EQ(store->delete_ticks_older_than(at(10'000), std::nullopt, 8), 8u);
  EXPECT_EQ(store->delete_ticks_older_than(at(10'000), std::nullopt, 8), 4u);
  EXPECT_EQ(store->delete_ticks_older_than(at(10'000), std::nullopt, 8), 0u);
  EXPECT_EQ(count("SELECT COUNT(*) FROM service_ticks"), 30);
  EXPECT_EQ(count("SELECT COUNT(*) FROM service_ticks WHERE ts < 10000"), 0);
  EXPECT_EQ(count("SELECT MIN(ts) FROM service_ticks"), 10'000);
  EXPECT_EQ(store->get_service(a)->metric.tick_count, 25);
  EXPECT_EQ(store->get_service(b)->metric.tick_count, 25);
  EXPECT_EQ(store->events(b, 10, std::nullopt).size(), 2u);
}

TEST_P(StoreFixture, RetentionCleanerRunsAtStartAndLeavesRecentTicks) {
  const ServiceId id = store->create_service(probed("a"), at(0)).id;
  Metric metric;
  const std::int64_t now = to_unix_ms(now_ms());
  const std::int64_t day = 86'400'000;
  std::vector<TickRecord> batch;
  for (int i = 0; i < 50; ++i)
    batch.push_back(tick(id, now - 40 * day + i, true, metric,
                         i == 0 ? std::optional(EventKind::uptime) : std::nullopt));
  for (int i = 0; i < 5; ++i) batch.push_back(tick(id, now - 29 * day + i, true, metric));
  store->apply(batch);
  RetentionCleaner cleaner(
      *store, RetentionOptions{
                  .retention = Millis(30 * day), .interval = Millis(3'600'000), .batch_size = 7});
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (count("SELECT COUNT(*) FROM service_ticks") > 5 &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  cleaner.stop();
  EXPECT_EQ(count("SELECT COUNT(*) FROM service_ticks"), 5);
  EXPECT_EQ(store->get_service(id)->metric.tick_count, 55);
}

TEST_P(StoreFixture, ZeroRetentionKeepsEverything) {
  const ServiceId id = store->create_service(probed("a"), at(0)).id;
  Metric metric;
  store->apply({tick(id, 1000, true, metric, EventKind::uptime)});
  RetentionCleaner cleaner(*store, RetentionOptions{.retention = Millis(0)});
  std::this_thread::sleep_for(100ms);
  cleaner.stop();
  EXPECT_EQ(count("SELECT COUNT(*) FROM service_ticks"), 1);
}

// Collects what a ChangeFeed delivers, from its thread.
struct FeedLog {
  std::mutex mutex;
  std::condition_variable changed_cv;
  std::vector<Service> changed;
  std::vector<ServiceId> purged;
  std::vector<std::pair<ServiceId, BeatReport>> beats;
  std::vector<std::int64_t> queued_ids;
  // What becomes of each beat's tick; by default it is committed at once (nothing stored: the
  // queued beat stays, claimed).
  std::function<CommitFuture(ServiceId, std::int64_t)> tick = [](ServiceId, std::int64_t) {
    auto [promise, future] = make_commit_pair();
    promise.committed();
    return future;
  };

  ChangeFeedHandlers handlers() {
    return {[this](const Service& s) { add([&] { changed.push_back(s); }); },
            [this](ServiceId id) { add([&] { purged.push_back(id); }); },
            [this](ServiceId id, const BeatReport& b, std::int64_t queued) {
              CommitFuture future = tick(id, queued);
              add([&] {
                beats.emplace_back(id, b);
                queued_ids.push_back(queued);
              });
              return future;
            }};
  }
  void add(const std::function<void()>& change) {
    std::lock_guard lock(mutex);
    change();
    changed_cv.notify_all();
  }
  bool wait(const std::function<bool()>& done) {
    std::unique_lock lock(mutex);
    return changed_cv.wait_for(lock, 5s, done);
  }
};

TEST_P(StoreFixture, ChangeFeedFollowsAnotherProcessWritesAndBeats) {
  const ServiceId before = store->create_service(probed("before"), at(0)).id;
  FeedLog log;
  ChangeFeed feed(*store, store->services_revision(), "east", log.handlers(), 50ms);
  // Another process: its own connection to the same file.
  auto other = db->open();
  const Service beat = other->create_service(heartbeat("job"), at(1000));
  ASSERT_TRUE(log.wait([&] { return !log.changed.empty(); }));
  ASSERT_EQ(other->enqueue_beat(beat.id, BeatReport{at(2000), true, "ok", 3.0}),
            Store::BeatQueued::queued);
  ASSERT_TRUE(log.wait([&] { return !log.beats.empty(); }));
  ASSERT_TRUE(other->purge_service(before));
  ASSERT_TRUE(log.wait([&] { return !log.purged.empty(); }));
  feed.stop();

  std::lock_guard lock(log.mutex);
  ASSERT_EQ(log.changed.size(), 1u);  // the service that existed before is not repeated
  EXPECT_EQ(log.changed[0].id, beat.id);
  EXPECT_EQ(log.changed[0].push_token, beat.push_token);
  ASSERT_EQ(log.beats.size(), 1u);
  EXPECT_EQ(log.beats[0].first, beat.id);
  EXPECT_EQ(log.beats[0].second.message, "ok");
  EXPECT_EQ(log.purged, std::vector<ServiceId>{before});
  EXPECT_TRUE(store->claim_beats("west", 10).empty());  // claimed once
}

// A runner process that dies after its feed handed a beat over and before the beat's tick was
// committed: `vigil api` answered that push 200, so the next start hands it over again, and a
// beat whose tick is committed is never handed twice.
TEST_P(StoreFixture, ABeatWhoseTickWasNotCommittedWhenTheRunnerDiedIsHandedOverAgain) {
  auto api = db->open();  // the `vigil api` process
  const Service job = api->create_service(heartbeat("job"), at(0));
  const Service other_job = api->create_service(heartbeat("other-job"), at(0));
  const std::int64_t revision = store->services_revision();
  ASSERT_EQ(api->enqueue_beat(job.id, BeatReport{at(1000), true, "lost?", std::nullopt}),
            Store::BeatQueued::queued);
  ASSERT_EQ(api->enqueue_beat(other_job.id, BeatReport{at(1000), true, "stored", std::nullopt}),
            Store::BeatQueued::queued);
  {
    // The first run: other-job's tick is committed, job's is still in the writer's queue (its
    // promise kept unresolved) when the process dies.
    FeedLog log;
    std::vector<CommitPromise> in_the_writer;
    log.tick = [&](ServiceId id, std::int64_t queued) {
      auto [promise, future] = make_commit_pair();
      if (id == other_job.id) {
        Metric metric;
        TickRecord record = tick(id, 1000, true, metric, EventKind::uptime);
        record.queued_beat = queued;
        store->apply({record});
        promise.committed();
      } else {
        in_the_writer.push_back(promise);
      }
      return future;
    };
    ChangeFeed feed(*store, revision, "east", log.handlers(), 20ms);
    ASSERT_TRUE(log.wait([&] { return log.beats.size() == 2; }));
    feed.stop();
  }
  EXPECT_EQ(count("SELECT COUNT(*) FROM pending_beats"), 1);

  // The next run of the same runner process (same region).
  auto restarted = db->open();
  FeedLog log;
  ChangeFeed feed(*restarted, restarted->services_revision(), "east", log.handlers(), 20ms);
  ASSERT_TRUE(log.wait([&] { return !log.beats.empty(); }));
  feed.stop();
  std::lock_guard lock(log.mutex);
  ASSERT_EQ(log.beats.size(), 1u);
  EXPECT_EQ(log.beats[0].first, job.id);
  EXPECT_EQ(log.beats[0].second.message, "lost?");
}

}  // namespace
}  // namespace vigil

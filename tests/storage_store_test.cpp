// The Store against real databases: the contract's tests on every backend (a SQLite file in a
// temporary directory, a fresh PostgreSQL database), the SQLite file's own tests on SQLite.
// Checks from "outside" use a connection of their own, the way an operator's shell would.
#include <SQLiteCpp/SQLiteCpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <future>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/model.h"
#include "storage/sqlite/sqlite_database.h"
#include "storage/sqlite/sqlite_schema.h"
#include "storage/store.h"
#include "support/store_backends.h"
#include "support/target_server.h"
#include "support/test_data.h"
#include "support/text.h"

namespace vigil {
namespace {

using namespace std::chrono_literals;
using test::TempDir;

using test::at;

ServiceSpec make_spec(const std::string& name, const std::string& url = "http://example.test/") {
  ServiceSpec spec;
  spec.name = name;
  spec.url = url;
  return spec;
}

// Produces the records the runner would hand the writer for a sequence of probe results: the
// running metric, and an event opened on the first tick and on every change of status.
struct Prober {
  ServiceId id;
  Metric metric;
  std::optional<bool> last_up;

  TickRecord next(bool up, TimePoint ts, double response_ms = 10) {
    TickRecord record;
    record.tick.service_id = id;
    record.tick.ts = ts;
    record.tick.up = up;
    if (up) record.tick.status_code = 200;
    record.tick.response_ms = response_ms;
    if (!up) record.tick.error = "connection refused";
    record.tick.region = "eu-west";
    metric.add(up, response_ms);
    record.metric_after = metric;
    if (!last_up || *last_up != up)
      record.opens_event = up ? EventKind::uptime : EventKind::downtime;
    last_up = up;
    return record;
  }
};

using test::sqlite_count;

// Every schema object and every schema_version row, as text, to compare two moments.
std::vector<std::string> schema_snapshot(const std::string& path) {
  SQLite::Database db(path, SQLite::OPEN_READONLY);
  std::vector<std::string> rows;
  SQLite::Statement objects(db,
                            "SELECT type || '|' || name || '|' || COALESCE(sql, '') FROM "
                            "sqlite_master ORDER BY type, name");
  while (objects.executeStep()) rows.push_back(objects.getColumn(0).getString());
  SQLite::Statement versions(db, "SELECT version || '@' || applied_at FROM schema_version");
  while (versions.executeStep()) rows.push_back(versions.getColumn(0).getString());
  return rows;
}

ServiceId id_of(Store& store, const std::string& name) {
  for (const auto& service : store.active_services())
    if (service.spec.name == name) return service.id;
  ADD_FAILURE() << "no active service named " << name;
  return 0;
}

using test::contains;

// The tests of the Store contract, run on every backend: each on a database of its own.
class StorageStoreOnBackend : public ::testing::TestWithParam<test::StoreBackend> {
 protected:
  void SetUp() override {
    if (auto reason = test::unavailable(GetParam())) GTEST_SKIP() << *reason;
    db = std::make_unique<test::TestDatabase>(GetParam());
  }
  std::unique_ptr<Store> open_store() const { return db->open(); }
  std::int64_t count(const std::string& sql) const { return db->count(sql); }

  std::unique_ptr<test::TestDatabase> db;
};
INSTANTIATE_TEST_SUITE_P(Backends, StorageStoreOnBackend, test::kStoreBackends, test::backend_name);

// ---- SQLite only: the file, its schema objects, WAL and the locks of other processes ----

TEST(StorageStore, MigrationsCreateTheSchemaAndReopeningChangesNothing) {
  TempDir dir;
  const auto path = dir.file("vigil.db");
  {
    auto store = open_sqlite_store(path);
    store->sync_services({make_spec("a")}, at(1000));
  }
  const auto before = schema_snapshot(path);
  for (const char* object :
       {"table|services|", "table|service_metrics|", "table|service_events|",
        "table|service_ticks|", "table|schema_version|", "index|service_events_one_open|",
        "table|regions|", "table|service_rollups_day|", "index|service_rollups_hour_by_service|"}) {
    bool found = false;
    for (const auto& row : before) found = found || row.rfind(object, 0) == 0;
    EXPECT_TRUE(found) << object;
  }
  EXPECT_EQ(sqlite_count(path, "SELECT MAX(version) FROM schema_version"),
            sqlite_schema::current_version());
  EXPECT_EQ(sqlite_count(path, "SELECT COUNT(*) FROM schema_version"),
            sqlite_schema::current_version());

  auto reopened = open_sqlite_store(path);
  EXPECT_EQ(schema_snapshot(path), before);
  ASSERT_EQ(reopened->active_services().size(), 1u);
  EXPECT_EQ(reopened->active_services()[0].spec.name, "a");
}

TEST(StorageStore, RefusesADatabaseWrittenByANewerVigil) {
  TempDir dir;
  const auto path = dir.file("vigil.db");
  open_sqlite_store(path);
  const int newer = sqlite_schema::current_version() + 1;
  {
    SQLite::Database db(path, SQLite::OPEN_READWRITE);
    db.exec("INSERT INTO schema_version(version, applied_at) VALUES(" + std::to_string(newer) +
            ", 0)");
  }
  try {
    open_sqlite_store(path);
    FAIL() << "opened a database of schema version " << newer;
  } catch (const StorageError& e) {
    const std::string expected = "database " + path + " has schema version " +
                                 std::to_string(newer) + ", this vigil knows up to " +
                                 std::to_string(sqlite_schema::current_version()) +
                                 "; upgrade vigil";
    EXPECT_TRUE(contains(e.what(), expected)) << e.what();
  }
  EXPECT_EQ(sqlite_count(path, "SELECT MAX(version) FROM schema_version"), newer);
}

TEST(StorageStore, RefusesAFileThatIsNotADatabase) {
  TempDir dir;
  const auto path = dir.file("notes.txt");
  std::ofstream(path) << std::string(4096, 'x');
  try {
    open_sqlite_store(path);
    FAIL() << "opened a text file";
  } catch (const StorageError& e) {
    EXPECT_TRUE(contains(e.what(), path)) << e.what();
  }
  EXPECT_THROW(open_sqlite_store(":memory:"), StorageError);
}

TEST(StorageStore, UsesWriteAheadLogging) {
  TempDir dir;
  const auto path = dir.file("vigil.db");
  auto store = open_sqlite_store(path);
  SQLite::Database db(path, SQLite::OPEN_READONLY);
  EXPECT_EQ(db.execAndGet("PRAGMA journal_mode").getString(), "wal");
  EXPECT_EQ(store->ping_failure(), std::nullopt);
}

// `vigil runner` and `vigil api` are started together on a database that does not exist yet:
// both switch it to WAL and migrate it at once. Each must wait for the other, never fail with
// "database is locked" (SQLite skips the busy handler for some of these lock changes).
TEST(StorageStore, ConnectionsOpeningAFreshDatabaseAtOnceAllSucceed) {
  for (int round = 0; round < 20; ++round) {
    TempDir dir;
    const auto path = dir.file("vigil.db");
    constexpr int kOpeners = 6;
    std::atomic<int> ready{0};
    std::vector<std::future<std::string>> openers;
    for (int i = 0; i < kOpeners; ++i) {
      openers.push_back(std::async(std::launch::async, [&] {
        ++ready;
        while (ready.load() < kOpeners) std::this_thread::yield();
        try {
          auto store = open_sqlite_store(path);
          return store->ping_failure().value_or(std::string());
        } catch (const StorageError& e) {
          return std::string(e.what());
        }
      }));
    }
    for (auto& opener : openers) EXPECT_EQ(opener.get(), "") << "round " << round;
    SQLite::Database db(path, SQLite::OPEN_READONLY);
    EXPECT_EQ(db.execAndGet("SELECT MAX(version) FROM schema_version").getInt(),
              sqlite_schema::current_version());
    EXPECT_EQ(
        db.execAndGet("SELECT COUNT(*) - COUNT(DISTINCT version) FROM schema_version").getInt(),
        0);  // each migration applied once
  }
}

TEST_P(StorageStoreOnBackend, SyncInsertsUpdatesDeactivatesAndReactivatesByNameKeepingHistory) {
  auto store = open_store();

  auto result = store->sync_services({make_spec("a"), make_spec("b")}, at(1000));
  EXPECT_EQ(result.inserted, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(result.updated.empty());
  EXPECT_TRUE(result.deactivated.empty());
  const ServiceId a = id_of(*store, "a");
  const ServiceId b = id_of(*store, "b");

  // The same specs again: nothing changes, not even updated_at.
  result = store->sync_services({make_spec("a"), make_spec("b")}, at(2000));
  EXPECT_TRUE(result.inserted.empty() && result.updated.empty() && result.deactivated.empty());
  EXPECT_EQ(store->get_service(a)->service.updated_at, at(1000));

  Prober probe_b{b, {}, {}};
  store->apply({probe_b.next(true, at(2500)), probe_b.next(false, at(2600))});

  // a changes its url; b disappears from the file.
  result = store->sync_services({make_spec("a", "http://changed.test/")}, at(3000));
  EXPECT_EQ(result.updated, (std::vector<std::string>{"a"}));
  EXPECT_EQ(result.deactivated, (std::vector<std::string>{"b"}));
  EXPECT_TRUE(result.inserted.empty());
  auto active = store->active_services();
  ASSERT_EQ(active.size(), 1u);
  EXPECT_EQ(active[0].id, a);
  EXPECT_EQ(active[0].spec.url, "http://changed.test/");
  EXPECT_EQ(active[0].created_at, at(1000));
  EXPECT_EQ(active[0].updated_at, at(3000));
  auto gone = store->get_service(b);
  ASSERT_TRUE(gone);
  EXPECT_FALSE(gone->service.active);
  EXPECT_EQ(store->ticks(b, {}).size(), 2u);
  EXPECT_EQ(store->events(b, 10, std::nullopt).size(), 2u);

  // b comes back: same id, same history, active again.
  result = store->sync_services({make_spec("a", "http://changed.test/"), make_spec("b")}, at(4000));
  EXPECT_EQ(result.updated, (std::vector<std::string>{"b"}));
  EXPECT_TRUE(result.inserted.empty() && result.deactivated.empty());
  auto back = store->get_service(b);
  ASSERT_TRUE(back);
  EXPECT_TRUE(back->service.active);
  EXPECT_EQ(back->service.created_at, at(1000));
  EXPECT_EQ(back->service.updated_at, at(4000));
  EXPECT_EQ(back->metric.tick_count, 2);
  EXPECT_EQ(store->ticks(b, {}).size(), 2u);
  EXPECT_EQ(store->active_services().size(), 2u);
}

TEST_P(StorageStoreOnBackend, SyncOnlyTouchesServicesFromTheFile) {
  auto store = open_store();
  db->exec(
      "INSERT INTO services(id, name, url, interval_ms, timeout_ms, method, source, created_at,"
      " updated_at) VALUES(1, 'from-api', 'http://api.test/', 1000, 1000, 'GET', 'api', 1, 1)");
  auto result = store->sync_services({make_spec("from-api", "http://file.test/")}, at(1000));
  EXPECT_TRUE(result.inserted.empty() && result.updated.empty() && result.deactivated.empty());
  result = store->sync_services({}, at(2000));
  EXPECT_TRUE(result.deactivated.empty());
  auto active = store->active_services();
  ASSERT_EQ(active.size(), 1u);
  EXPECT_EQ(active[0].spec.url, "http://api.test/");
}

TEST_P(StorageStoreOnBackend, SyncRefusesDuplicateNamesAndWritesNothing) {
  auto store = open_store();
  EXPECT_THROW(store->sync_services({make_spec("a"), make_spec("b"), make_spec("a")}, at(1)),
               StorageError);
  EXPECT_TRUE(store->active_services().empty());
}

TEST_P(StorageStoreOnBackend, SpecFieldsRoundTripExactly) {
  auto store = open_store();
  ServiceSpec spec = make_spec("api");
  spec.interval = 2500ms;
  spec.timeout = 750ms;
  spec.method = "HEAD";
  spec.headers = {{"X-B", "2"}, {"Accept", "*/*"}, {"X-B", "again"}};
  spec.expected_status = {{200, 299}, {404, 404}, {301, 302}};
  ServiceSpec bare = make_spec("bare");
  bare.expected_status.clear();
  store->sync_services({spec, bare}, at(1));

  auto active = store->active_services();
  ASSERT_EQ(active.size(), 2u);
  EXPECT_EQ(active[0].spec, spec);
  EXPECT_EQ(active[1].spec, bare);
  auto result = store->sync_services({spec, bare}, at(2));
  EXPECT_TRUE(result.updated.empty());
}

TEST_P(StorageStoreOnBackend, HostileTextIsStoredVerbatim) {
  auto store = open_store();
  ServiceSpec spec = make_spec("'; DROP TABLE services; --", "http://x.test/?q=' OR 1=1 --");
  spec.method = "GET\"";
  spec.headers = {{"X-Evil", "\"); DELETE FROM services; --"}, {"X-Ünïcode", "grüße ✓ \\n"}};
  store->sync_services({spec}, at(1));

  auto active = store->active_services();
  ASSERT_EQ(active.size(), 1u);
  EXPECT_EQ(active[0].spec, spec);
  EXPECT_EQ(count("SELECT COUNT(*) FROM services"), 1);

  Prober probe{active[0].id, {}, {}};
  auto record = probe.next(false, at(10));
  record.tick.error = "'); DROP TABLE service_ticks; --";
  record.tick.region = "r'--";
  store->apply({record});
  auto ticks = store->ticks(active[0].id, {});
  ASSERT_EQ(ticks.size(), 1u);
  EXPECT_EQ(ticks[0].error, record.tick.error);
  EXPECT_EQ(ticks[0].region, record.tick.region);
}

// A NUL is valid UTF-8 and may come from outside (a probe's error, a pushed message), but
// PostgreSQL's text cannot hold it: every backend writes it as U+FFFD, so the batch is not refused
// forever and the text reads back the same from either.
TEST_P(StorageStoreOnBackend, ANulInOutsideTextIsWrittenAsAReplacementCharacter) {
  auto store = open_store();
  const ServiceId id = store->create_service(make_spec("a"), at(0)).id;
  Prober probe{id, {}, {}};
  TickRecord record = probe.next(false, at(1000));
  record.tick.error = std::string("bad\0byte", 8);
  record.tick.message = std::string("\0", 1);
  store->apply({record});
  const auto ticks = store->ticks(id, {});
  ASSERT_EQ(ticks.size(), 1u);
  EXPECT_EQ(ticks[0].error,
            "bad\xEF\xBF\xBD"
            "byte");
  EXPECT_EQ(ticks[0].message, "\xEF\xBF\xBD");
  ASSERT_EQ(store->enqueue_beat(id, BeatReport{at(2000), true, std::string("a\0", 2), {}}),
            Store::BeatQueued::queued);
  const auto beats = store->claim_beats("east", 10);
  ASSERT_EQ(beats.size(), 1u);
  EXPECT_EQ(beats[0].beat.message, "a\xEF\xBF\xBD");
}

void expect_up_up_down_down_up(const test::TestDatabase& db,
                               const std::vector<std::size_t>& batch_sizes) {
  auto store = db.open();
  store->sync_services({make_spec("svc")}, at(0));
  const ServiceId id = id_of(*store, "svc");

  Prober probe{id, {}, {}};
  const std::vector<bool> results{true, true, false, false, true};
  std::vector<TickRecord> records;
  for (std::size_t i = 0; i < results.size(); ++i)
    records.push_back(probe.next(results[i], at(1000 * std::int64_t(i + 1)), double(10 * (i + 1))));
  std::size_t next = 0;
  for (const auto size : batch_sizes) {
    store->apply(
        {records.begin() + std::ptrdiff_t(next), records.begin() + std::ptrdiff_t(next + size)});
    next += size;
  }
  ASSERT_EQ(next, records.size());

  auto events = store->events(id, 10, std::nullopt);  // newest first
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[2].kind, EventKind::uptime);
  EXPECT_EQ(events[2].date_started, at(1000));
  EXPECT_EQ(events[2].date_ended, at(3000));
  EXPECT_EQ(events[1].kind, EventKind::downtime);
  EXPECT_EQ(events[1].date_started, at(3000));
  EXPECT_EQ(events[1].date_ended, at(5000));
  EXPECT_EQ(events[0].kind, EventKind::uptime);
  EXPECT_EQ(events[0].date_started, at(5000));
  EXPECT_FALSE(events[0].date_ended);
  EXPECT_EQ(events[1].updated_at, at(5000));
  EXPECT_EQ(events[0].created_at, at(5000));

  auto view = store->get_service(id);
  ASSERT_TRUE(view);
  EXPECT_EQ(view->metric.tick_count, 5);
  EXPECT_EQ(view->metric.up_count, 3);
  EXPECT_EQ(view->metric.down_count, 2);
  EXPECT_EQ(view->metric, probe.metric);
  EXPECT_DOUBLE_EQ(view->metric.average_response_time_ms, 30.0);
  EXPECT_DOUBLE_EQ(view->metric.uptime_percent, 60.0);
  ASSERT_TRUE(view->open_event);
  EXPECT_EQ(view->open_event->id, events[0].id);
  EXPECT_EQ(db.count("SELECT COUNT(*) FROM service_ticks"), 5);
  EXPECT_EQ(db.count("SELECT COUNT(*) FROM service_ticks WHERE up"), 3);
}

TEST_P(StorageStoreOnBackend, UpUpDownDownUpInOneBatchGivesTwoClosedEventsAndOneOpen) {
  expect_up_up_down_down_up(*db, {5});
}

TEST_P(StorageStoreOnBackend, UpUpDownDownUpAcrossBatchesGivesTwoClosedEventsAndOneOpen) {
  expect_up_up_down_down_up(*db, {1, 2, 1, 1});
}

TEST_P(StorageStoreOnBackend, EveryProbedServiceHasExactlyOneOpenEvent) {
  auto store = open_store();
  std::vector<ServiceSpec> specs;
  for (int i = 0; i < 5; ++i) specs.push_back(make_spec("svc" + std::to_string(i)));
  store->sync_services(specs, at(0));
  std::vector<Prober> probes;
  for (const auto& service : store->active_services()) probes.push_back({service.id, {}, {}});

  std::int64_t ts = 1;
  for (int batch = 0; batch < 20; ++batch) {
    std::vector<TickRecord> records;
    for (int i = 0; i < 10; ++i) {
      auto& probe = probes[std::size_t((batch + i) % 5)];
      records.push_back(probe.next((batch * 7 + i * 3) % 4 != 0, at(ts++)));
    }
    store->apply(records);
    EXPECT_EQ(count("SELECT COUNT(*) FROM service_events WHERE date_ended IS NULL"), 5);
  }
  EXPECT_EQ(
      count("SELECT COUNT(*) FROM (SELECT service_id FROM service_events"
            " WHERE date_ended IS NULL GROUP BY service_id HAVING COUNT(*) <> 1) AS open_events"),
      0);
  EXPECT_GT(count("SELECT COUNT(*) FROM service_events"), 10);

  // The database itself refuses a second open event, whoever writes it.
  EXPECT_ANY_THROW(
      db->exec("INSERT INTO service_events(service_id, event, date_started,"
               " created_at, updated_at) VALUES(" +
               std::to_string(probes[0].id) + ", 'uptime', 1, 1, 1)"));
}

TEST_P(StorageStoreOnBackend, AFailingBatchLeavesNothingHalfWritten) {
  auto store = open_store();
  store->sync_services({make_spec("svc")}, at(0));
  const ServiceId id = id_of(*store, "svc");
  Prober probe{id, {}, {}};
  store->apply({probe.next(true, at(1000)), probe.next(true, at(2000))});
  const auto events_before = store->events(id, 10, std::nullopt);
  const auto metric_before = store->get_service(id)->metric;

  // A status change (closes an event, opens one, moves the metric), then a tick the database
  // refuses (a trigger stands in for a full disk): the last statement of the batch fails.
  if (GetParam() == test::StoreBackend::sqlite) {
    db->exec(
        "CREATE TRIGGER refuse_4500 BEFORE INSERT ON service_ticks WHEN NEW.ts = 4500"
        " BEGIN SELECT RAISE(ABORT, 'injected failure'); END");
  } else {
    db->exec(
        "CREATE FUNCTION refuse_4500() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        " IF NEW.ts = 4500 THEN RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END $$;"
        " CREATE TRIGGER refuse_4500 BEFORE INSERT ON service_ticks FOR EACH ROW"
        " EXECUTE FUNCTION refuse_4500()");
  }
  Prober failing = probe;
  std::vector<TickRecord> batch{failing.next(false, at(3000)), failing.next(false, at(4000))};
  batch.push_back(failing.next(false, at(4500)));
  EXPECT_THROW(store->apply(batch), StorageError);

  EXPECT_EQ(count("SELECT COUNT(*) FROM service_ticks"), 2);
  EXPECT_EQ(count("SELECT COUNT(*) FROM service_metrics"), 1);
  const auto events_after = store->events(id, 10, std::nullopt);
  ASSERT_EQ(events_after.size(), events_before.size());
  EXPECT_FALSE(events_after[0].date_ended);
  EXPECT_EQ(events_after[0].kind, EventKind::uptime);
  EXPECT_EQ(store->get_service(id)->metric, metric_before);
  EXPECT_EQ(store->load_runtime().at(id).last_tick_at, at(2000));

  // The write connection is healthy afterwards: the same records without the refused one commit.
  batch.pop_back();
  store->apply(batch);
  EXPECT_EQ(count("SELECT COUNT(*) FROM service_ticks"), 4);
  EXPECT_EQ(store->get_service(id)->open_event->kind, EventKind::downtime);
}

TEST_P(StorageStoreOnBackend, ListServicesShowsMetricAndOpenEventOfActiveServices) {
  auto store = open_store();
  store->sync_services({make_spec("a"), make_spec("b"), make_spec("c")}, at(0));
  const ServiceId a = id_of(*store, "a");
  const ServiceId c = id_of(*store, "c");
  Prober probe{a, {}, {}};
  store->apply({probe.next(true, at(100)), probe.next(false, at(200), 40)});
  store->sync_services({make_spec("a"), make_spec("b")}, at(300));

  auto views = store->list_services();
  ASSERT_EQ(views.size(), 2u);
  EXPECT_EQ(views[0].service.spec.name, "a");
  EXPECT_EQ(views[1].service.spec.name, "b");
  EXPECT_LT(views[0].service.id, views[1].service.id);
  EXPECT_EQ(views[0].metric, probe.metric);
  ASSERT_TRUE(views[0].open_event);
  EXPECT_EQ(views[0].open_event->kind, EventKind::downtime);
  EXPECT_EQ(views[0].open_event->date_started, at(200));
  EXPECT_EQ(views[0].open_event->service_id, a);
  EXPECT_EQ(views[1].metric, Metric{});
  EXPECT_FALSE(views[1].open_event);

  auto inactive = store->get_service(c);
  ASSERT_TRUE(inactive);
  EXPECT_FALSE(inactive->service.active);
  EXPECT_EQ(inactive->service.spec.name, "c");
}

TEST_P(StorageStoreOnBackend, GetServiceOfAnUnknownIdIsEmpty) {
  auto store = open_store();
  store->sync_services({make_spec("a")}, at(0));
  EXPECT_TRUE(store->get_service(id_of(*store, "a")));
  EXPECT_FALSE(store->get_service(424242));
}

TEST_P(StorageStoreOnBackend, EventsPageNewestFirstByLimitAndBefore) {
  auto store = open_store();
  store->sync_services({make_spec("a"), make_spec("b")}, at(0));
  Prober a{id_of(*store, "a"), {}, {}};
  Prober b{id_of(*store, "b"), {}, {}};
  std::vector<TickRecord> records;
  for (int i = 0; i < 5; ++i) {  // each tick flips: five events for each service, interleaved
    records.push_back(a.next(i % 2 == 0, at(1000 * (i + 1))));
    records.push_back(b.next(i % 2 == 0, at(1000 * (i + 1))));
  }
  store->apply(records);

  const auto all = store->events(a.id, 100, std::nullopt);
  ASSERT_EQ(all.size(), 5u);
  for (std::size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].service_id, a.id);
    EXPECT_EQ(all[i].date_started, at(1000 * std::int64_t(5 - i)));
    if (i > 0) {
      EXPECT_LT(all[i].id, all[i - 1].id);
    }
  }
  const auto first = store->events(a.id, 2, std::nullopt);
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(first[0].id, all[0].id);
  EXPECT_EQ(first[1].id, all[1].id);
  const auto second = store->events(a.id, 2, first.back().id);
  ASSERT_EQ(second.size(), 2u);
  EXPECT_EQ(second[0].id, all[2].id);
  EXPECT_EQ(second[1].id, all[3].id);
  const auto last = store->events(a.id, 2, second.back().id);
  ASSERT_EQ(last.size(), 1u);
  EXPECT_EQ(last[0].id, all[4].id);
  EXPECT_TRUE(store->events(a.id, 2, last.back().id).empty());
  EXPECT_TRUE(store->events(a.id, 0, std::nullopt).empty());
}

// Ticks of one service in one millisecond are all kept, in one batch or across batches (a later
// batch's go on after the stored ones), while the other services' ticks of the batch are written
// as usual.
TEST_P(StorageStoreOnBackend, TicksOfOneMillisecondAreAllKeptAcrossBatches) {
  auto store = open_store();
  store->sync_services({make_spec("a"), make_spec("b")}, at(0));
  Prober a{id_of(*store, "a"), {}, {}};
  Prober b{id_of(*store, "b"), {}, {}};
  store->apply({a.next(true, at(1000), 1), a.next(true, at(1000), 2)});
  store->apply({b.next(true, at(1000), 3), a.next(false, at(1000), 4), a.next(true, at(1000), 5)});
  const auto ticks = store->ticks(a.id, {at(1000), at(1000), 100});
  ASSERT_EQ(ticks.size(), 4u);
  std::multiset<double> times;
  for (const auto& tick : ticks) times.insert(tick.response_ms);
  EXPECT_EQ(times, (std::multiset<double>{1, 2, 4, 5}));
  EXPECT_EQ(store->ticks(b.id, {}).size(), 1u);
  EXPECT_EQ(store->summarize(a.id, at(0), at(2000)).count, 4);
}

TEST_P(StorageStoreOnBackend, TicksFilterByInclusiveRangeNewestFirst) {
  auto store = open_store();
  store->sync_services({make_spec("a"), make_spec("b")}, at(0));
  Prober a{id_of(*store, "a"), {}, {}};
  Prober b{id_of(*store, "b"), {}, {}};
  std::vector<TickRecord> records;
  for (int i = 1; i <= 10; ++i) {
    records.push_back(a.next(i % 3 != 0, at(1000 * i), i));
    records.push_back(b.next(true, at(1000 * i)));
  }
  store->apply(records);

  const auto range = store->ticks(a.id, {at(2000), at(5000), 100});
  ASSERT_EQ(range.size(), 4u);
  for (std::size_t i = 0; i < range.size(); ++i) {
    EXPECT_EQ(range[i].ts, at(5000 - 1000 * std::int64_t(i)));
    EXPECT_EQ(range[i].service_id, a.id);
  }
  const auto limited = store->ticks(a.id, {at(2000), at(5000), 2});
  ASSERT_EQ(limited.size(), 2u);
  EXPECT_EQ(limited[0].ts, at(5000));
  EXPECT_EQ(limited[1].ts, at(4000));
  const auto from_only = store->ticks(a.id, {at(9000), std::nullopt, 100});
  ASSERT_EQ(from_only.size(), 2u);
  EXPECT_EQ(from_only[0].ts, at(10000));
  const auto to_only = store->ticks(a.id, {std::nullopt, at(1000), 100});
  ASSERT_EQ(to_only.size(), 1u);
  EXPECT_EQ(to_only[0].ts, at(1000));
  EXPECT_EQ(store->ticks(a.id, {}).size(), 10u);

  // Field by field: tick 3 is down without an HTTP answer, tick 2 is up with one.
  const auto& down = range[2];
  EXPECT_EQ(down.ts, at(3000));
  EXPECT_FALSE(down.up);
  EXPECT_FALSE(down.status_code);
  EXPECT_EQ(down.error, "connection refused");
  EXPECT_DOUBLE_EQ(down.response_ms, 3);
  EXPECT_EQ(down.region, "eu-west");
  const auto& up = range[3];
  EXPECT_TRUE(up.up);
  EXPECT_EQ(up.status_code, 200);
  EXPECT_EQ(up.error, "");
}

TEST_P(StorageStoreOnBackend, LoadRuntimeSurvivesClosingAndReopening) {
  Prober a{0, {}, {}};
  Prober b{0, {}, {}};
  ServiceId never = 0;
  {
    auto store = open_store();
    store->sync_services({make_spec("a"), make_spec("b"), make_spec("never")}, at(0));
    a.id = id_of(*store, "a");
    b.id = id_of(*store, "b");
    never = id_of(*store, "never");
    store->apply(
        {a.next(true, at(1000), 12), b.next(false, at(1100)), a.next(false, at(2000), 30)});
    store->apply({a.next(false, at(3000), 7), b.next(true, at(3100))});
  }
  auto store = open_store();
  const auto runtime = store->load_runtime();
  ASSERT_EQ(runtime.size(), 2u);
  EXPECT_FALSE(runtime.contains(never));

  const auto& ra = runtime.at(a.id);
  EXPECT_EQ(ra.metric, a.metric);
  EXPECT_EQ(ra.open_event_kind, EventKind::downtime);
  EXPECT_EQ(ra.open_event_started, at(2000));
  EXPECT_EQ(ra.last_tick_at, at(3000));
  const auto& rb = runtime.at(b.id);
  EXPECT_EQ(rb.metric, b.metric);
  EXPECT_EQ(rb.open_event_kind, EventKind::uptime);
  EXPECT_EQ(rb.open_event_started, at(3100));
  EXPECT_EQ(rb.last_tick_at, at(3100));
}

// SQLite only: another process's write lock (PostgreSQL has row locks, not a database lock).
TEST(StorageStore, ReadsDoNotWaitForAWriterAndWritesWaitForItsLock) {
  TempDir dir;
  const auto path = dir.file("vigil.db");
  auto store = open_sqlite_store(path);
  store->sync_services({make_spec("a")}, at(0));
  Prober probe{id_of(*store, "a"), {}, {}};

  // Another process (say `vigil api`, or a sqlite3 shell) holds the write lock.
  SQLite::Database other(path, SQLite::OPEN_READWRITE);
  other.exec("BEGIN IMMEDIATE");
  other.exec(
      "INSERT INTO services(name, url, interval_ms, timeout_ms, method, created_at, updated_at)"
      " VALUES('uncommitted', 'http://u.test/', 1, 1, 'GET', 1, 1)");

  auto started = std::chrono::steady_clock::now();
  const auto views = store->list_services();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 1s);
  ASSERT_EQ(views.size(), 1u);  // the uncommitted row is invisible
  EXPECT_EQ(store->ping_failure(), std::nullopt);

  auto release = std::async(std::launch::async, [&] {
    std::this_thread::sleep_for(300ms);
    other.exec("COMMIT");
  });
  started = std::chrono::steady_clock::now();
  EXPECT_NO_THROW(store->apply({probe.next(true, at(1000))}));  // waits, within busy_timeout
  EXPECT_GE(std::chrono::steady_clock::now() - started, 250ms);
  release.get();
  EXPECT_EQ(store->ticks(probe.id, {}).size(), 1u);
  EXPECT_EQ(store->list_services().size(), 2u);
}

TEST_P(StorageStoreOnBackend, ConcurrentReadersAndAWriterAgree) {
  auto store = open_store();
  store->sync_services({make_spec("a")}, at(0));
  Prober probe{id_of(*store, "a"), {}, {}};

  std::atomic<bool> done{false};
  std::atomic<int> bad{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 4; ++r) {
    readers.emplace_back([&] {
      while (!done) {
        try {
          // One snapshot per read: a metric row never shows without the event written with it.
          auto view = store->get_service(probe.id);
          if (!view || (view->metric.tick_count > 0 && !view->open_event)) ++bad;
          if (store->list_services().size() != 1) ++bad;
        } catch (const StorageError&) {
          ++bad;  // e.g. SQLITE_BUSY: a reader must never wait for, or fail on, the writer
        }
      }
    });
  }
  for (int batch = 0; batch < 50; ++batch) {
    std::vector<TickRecord> records;
    for (int i = 0; i < 20; ++i) records.push_back(probe.next(i % 5 != 0, at(batch * 100 + i)));
    store->apply(records);
  }
  done = true;
  for (auto& reader : readers) reader.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(store->get_service(probe.id)->metric.tick_count, 1000);
}

}  // namespace
}  // namespace vigil

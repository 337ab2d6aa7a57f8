// What only the PostgreSQL Store has, against a real server (the contract's tests run on it in
// storage_store_test and the other storage suites): its migrations and their version check, tick
// partitions made ahead and on demand, retention that drops whole partitions, edits of one
// service and ticks of the same services from two stores at once, and a refused password kept
// out of the error.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "core/model.h"
#include "storage/alert_store.h"
#include "storage/component_beats.h"
#include "storage/postgres/connection.h"
#include "storage/postgres/postgres_store.h"
#include "storage/postgres/schema.h"
#include "storage/postgres/session.h"
#include "storage/store.h"
#include "support/store_backends.h"
#include "support/test_data.h"

namespace vigil {
namespace {

using test::StoreBackend;
using test::TestDatabase;

constexpr std::int64_t kPartitionDayMs = postgres_schema::kPartitionMs;

using test::probed;

TickRecord record_at(ServiceId id, std::int64_t ts, Metric& metric) {
  TickRecord record;
  record.tick.service_id = id;
  record.tick.ts = from_unix_ms(ts);
  record.tick.up = true;
  record.tick.response_ms = 5;
  metric.add(true, 5);
  record.metric_after = metric;
  return record;
}

class PostgresStore : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto reason = test::unavailable(StoreBackend::postgres)) GTEST_SKIP() << *reason;
    db = std::make_unique<TestDatabase>(StoreBackend::postgres);
    store = db->open();
  }
  // The days that have a partition of service_ticks in this test's schema.
  std::vector<std::int64_t> partition_days() const {
    std::vector<std::int64_t> days;
    for (std::int64_t day = first_day; day <= last_day; ++day)
      if (db->count("SELECT COUNT(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                    " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname ="
                    " current_schema() AND c.relname = '" +
                    postgres_schema::partition_name(day) + "'") == 1)
        days.push_back(day);
    return days;
  }

  std::unique_ptr<TestDatabase> db;
  std::unique_ptr<Store> store;
  // The days partition_days() looks at.
  std::int64_t first_day = 0;
  std::int64_t last_day = 0;
};

TEST_F(PostgresStore, MigrationsRecordEachVersionOnceAndReopeningChangesNothing) {
  EXPECT_EQ(db->count("SELECT MAX(version) FROM schema_version"), postgres_schema_version());
  EXPECT_EQ(db->count("SELECT COUNT(*) FROM schema_version"), postgres_schema_version());
  const auto tables = [&] {
    return db->count("SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema()");
  };
  const auto before = tables();
  for (const char* table :
       {"services", "service_ticks", "service_events", "service_metrics", "service_rollups_minute",
        "service_rollups_hour", "service_rollups_day", "pending_beats", "regions", "alerts",
        "notifications", "maintenance_windows", "component_beats"})
    EXPECT_EQ(db->count(std::string("SELECT COUNT(*) FROM pg_tables WHERE schemaname ="
                                    " current_schema() AND tablename = '") +
                        table + "'"),
              1)
        << table;
  store.reset();
  store = db->open();
  EXPECT_EQ(tables(), before);
  EXPECT_EQ(db->count("SELECT COUNT(*) FROM schema_version"), postgres_schema_version());
}

// A database a vigil without the alerting tables migrated (schema version 2, with a service in
// it) gains them at the next open, its services kept, and its AlertStore works.
TEST_F(PostgresStore, AVersionTwoDatabaseGainsTheAlertsBeatsAndClusterTables) {
  const ServiceId id = store->create_service(probed("kept"), now_ms()).id;
  store.reset();
  db->exec(
      "DROP TABLE alerts, notifications, maintenance_windows, component_beats, cluster_members,"
      " cluster_shards CASCADE;"
      " ALTER TABLE pending_beats DROP COLUMN claimed_by;"
      " DELETE FROM schema_version WHERE version > 2");
  store = db->open();
  EXPECT_EQ(db->count("SELECT MAX(version) FROM schema_version"), postgres_schema_version());
  ASSERT_TRUE(store->get_service(id));
  const auto alerts = db->database()->open_alert_store();
  const auto alert = alerts->open_alert(
      id, "kept", "down", std::nullopt, from_unix_ms(1'000), [](const AlertRecord&) {
        return std::vector<NewNotification>{{"hook", "trigger", "{}", false}};
      });
  EXPECT_EQ(alerts->active_alert(id)->alert_id, alert.alert_id);
  EXPECT_EQ(alerts->due(from_unix_ms(1'000), 10, {}).size(), 1u);
  EXPECT_EQ(db->count("SELECT COUNT(*) FROM cluster_members"), 0);
  EXPECT_EQ(db->count("SELECT COUNT(*) FROM cluster_shards"), 0);
}

TEST_F(PostgresStore, RefusesADatabaseMigratedByANewerVigil) {
  const int newer = postgres_schema_version() + 1;
  db->exec("INSERT INTO schema_version(version, applied_at) VALUES(" + std::to_string(newer) +
           ", 0)");
  store.reset();
  try {
    db->open();
    FAIL() << "a database of schema version " << newer << " was opened";
  } catch (const StorageError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("has schema version " + std::to_string(newer)), std::string::npos)
        << message;
    EXPECT_NE(message.find("upgrade vigil"), std::string::npos) << message;
    EXPECT_EQ(message.find("password"), std::string::npos) << message;
  }
  EXPECT_EQ(db->count("SELECT MAX(version) FROM schema_version"), newer);  // left as it was
}

TEST_F(PostgresStore, AWrongPasswordIsRefusedWithoutShowingIt) {
  std::string conninfo = db->location();
  const auto at = conninfo.find("password=");
  ASSERT_NE(at, std::string::npos);
  const auto end = conninfo.find(' ', at);
  conninfo.replace(at, end - at, "password=notTheRightOne42");
  try {
    open_postgres_store(conninfo);
    FAIL() << "a wrong password was accepted";
  } catch (const StorageError& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.find("notTheRightOne42"), std::string::npos) << message;
    EXPECT_NE(message.find("host=127.0.0.1"), std::string::npos) << message;
  }
}

TEST_F(PostgresStore, OpeningMakesThePartitionsOfTheDaysAroundToday) {
  const std::int64_t today = postgres_schema::partition_day(to_unix_ms(now_ms()));
  first_day = today - 3;
  last_day = today + 5;
  const auto days = partition_days();
  for (std::int64_t day = today - 1; day <= today + 2; ++day)
    EXPECT_NE(std::find(days.begin(), days.end(), day), days.end()) << "day " << day - today;
}

TEST_F(PostgresStore, ATickOfADayWithoutAPartitionGetsOneAndIsNeverLost) {
  const ServiceId id = store->create_service(probed("a"), from_unix_ms(0)).id;
  const std::int64_t far = to_unix_ms(now_ms()) + 3650 * kPartitionDayMs;  // ten years ahead
  Metric metric;
  store->apply({record_at(id, 1000, metric), record_at(id, far, metric)});
  EXPECT_EQ(store->ticks(id, {}).size(), 2u);
  first_day = postgres_schema::partition_day(far);
  last_day = first_day;
  EXPECT_EQ(partition_days().size(), 1u);
  // Another store (another process) writing to the day it did not make finds it there.
  auto other = db->open();
  other->apply({record_at(id, far + 1, metric)});
  EXPECT_EQ(store->ticks(id, {}).size(), 3u);
}

TEST_F(PostgresStore, RetentionDropsWholeDaysAndDeletesTheRestRowByRow) {
  const ServiceId id = store->create_service(probed("a"), from_unix_ms(0)).id;
  const std::int64_t day = 20'000;  // 2024-10-04
  Metric metric;
  std::vector<TickRecord> batch;
  for (int i = 0; i < 10; ++i)
    batch.push_back(record_at(id, day * kPartitionDayMs + i * 1000, metric));
  for (int i = 0; i < 10; ++i)
    batch.push_back(record_at(id, (day + 1) * kPartitionDayMs + i * 1000, metric));
  store->apply(batch);
  first_day = day;
  last_day = day + 1;
  ASSERT_EQ(partition_days().size(), 2u);
  // Every minute above has ten ticks and so its row: no tick is lone.
  const TimePoint cutoff = from_unix_ms((day + 1) * kPartitionDayMs + 4500);
  EXPECT_EQ(store->delete_ticks_older_than(cutoff, cutoff, 1000), 15u);
  EXPECT_EQ(partition_days(), std::vector<std::int64_t>{day + 1});  // the whole day dropped
  const auto left = store->ticks(id, {});
  ASSERT_EQ(left.size(), 5u);
  EXPECT_EQ(left.back().ts, from_unix_ms((day + 1) * kPartitionDayMs + 5000));
  EXPECT_EQ(store->delete_ticks_older_than(cutoff, cutoff, 1000), 0u);
  // Metrics, events and rollups stay.
  EXPECT_EQ(store->get_service(id)->metric.tick_count, 20);
  EXPECT_EQ(store
                ->summarize(id, from_unix_ms(day * kPartitionDayMs),
                            from_unix_ms((day + 1) * kPartitionDayMs))
                .count,
            10);
}

TEST_F(PostgresStore, ADayAnotherStoreDroppedIsMadeAgainForALateTick) {
  const ServiceId id = store->create_service(probed("a"), from_unix_ms(0)).id;
  const std::int64_t day = 20'000;
  Metric metric;
  store->apply({record_at(id, day * kPartitionDayMs + 1000, metric),
                record_at(id, day * kPartitionDayMs + 2000, metric)});
  auto other = db->open();  // another process, running retention
  const TimePoint cutoff = from_unix_ms((day + 1) * kPartitionDayMs);
  ASSERT_EQ(other->delete_ticks_older_than(cutoff, cutoff, 100), 2u);
  first_day = day;
  last_day = day;
  ASSERT_TRUE(partition_days().empty());
  store->apply({record_at(id, day * kPartitionDayMs + 3000, metric)});  // late, but never lost
  EXPECT_EQ(store->ticks(id, {}).size(), 1u);
  EXPECT_EQ(partition_days().size(), 1u);
}

TEST_F(PostgresStore, ADayWithALoneTickStaysUntilTheLoneCutoff) {
  const ServiceId id = store->create_service(probed("a"), from_unix_ms(0)).id;
  const std::int64_t day = 20'000;
  Metric metric;
  store->apply({record_at(id, day * kPartitionDayMs + 1000, metric)});  // alone in its minute
  first_day = day;
  last_day = day;
  const TimePoint cutoff = from_unix_ms((day + 2) * kPartitionDayMs);
  EXPECT_EQ(store->delete_ticks_older_than(cutoff, from_unix_ms(day * kPartitionDayMs), 100), 0u);
  EXPECT_EQ(partition_days().size(), 1u);
  EXPECT_EQ(store->ticks(id, {}).size(), 1u);
  EXPECT_EQ(store->delete_ticks_older_than(cutoff, cutoff, 100), 1u);
  EXPECT_TRUE(partition_days().empty());
}

TEST_F(PostgresStore, EditsOfOneServiceFromTwoStoresAtOnceLoseNothing) {
  const ServiceId id = store->create_service(probed("a"), from_unix_ms(0)).id;
  auto other = db->open();  // as another vigil process would
  constexpr int kEdits = 20;
  const auto add_tags = [id](Store& s, const std::string& prefix) {
    for (int i = 0; i < kEdits; ++i) {
      s.edit_service(
          id,
          [&](const Service& current) {
            Store::ServiceEdit edit{current.spec, current.active};
            edit.spec.tags.push_back(prefix + std::to_string(i));
            return edit;
          },
          from_unix_ms(1000 + i));
    }
  };
  std::thread first([&] { add_tags(*store, "x"); });
  std::thread second([&] { add_tags(*other, "y"); });
  first.join();
  second.join();
  EXPECT_EQ(store->get_service(id)->service.spec.tags.size(), 2u * kEdits);
}

TEST_F(PostgresStore, TicksOfTheSameServicesFromTwoStoresAtOnceAllReachTheirRollups) {
  // Two writers on one database fold ticks into the same hour and day rows; a row changed by
  // one between the other's read and write must be merged again, never overwritten.
  std::vector<ServiceId> ids;
  for (const char* name : {"a", "b", "c"})
    ids.push_back(store->create_service(probed(name), from_unix_ms(0)).id);
  auto other = db->open();  // as another vigil process would
  const std::int64_t base = to_unix_ms(now_ms()) / 3'600'000 * 3'600'000 - 3'600'000;
  constexpr int kBatches = 40;
  const auto write = [&](Store& s, std::int64_t offset) {
    Metric metric;
    for (int i = 0; i < kBatches; ++i) {
      std::vector<TickRecord> batch;
      // Across an hour's end, so that both hours' rows are contested.
      for (const ServiceId id : ids)
        batch.push_back(record_at(id, base + i * 90'000 + offset, metric));
      s.apply(batch);
    }
  };
  std::thread first([&] { write(*store, 1); });
  std::thread second([&] { write(*other, 2); });
  first.join();
  second.join();
  const std::int64_t total = 2 * kBatches * static_cast<std::int64_t>(ids.size());
  ASSERT_EQ(db->count("SELECT COUNT(*) FROM service_ticks"), total);
  for (const char* table : {"service_rollups_hour", "service_rollups_day"}) {
    EXPECT_EQ(db->count(std::string("SELECT SUM(count) FROM ") + table), total) << table;
    const std::string period =
        table == std::string("service_rollups_hour") ? "3600000" : "86400000";
    EXPECT_EQ(db->count(std::string("SELECT COUNT(*) FROM ") + table +
                        " r WHERE r.count != (SELECT COUNT(*) FROM service_ticks t WHERE"
                        " t.service_id = r.service_id AND t.ts >= r.bucket AND t.ts < r.bucket + " +
                        period + ")"),
              0)
        << table;
  }
  for (const ServiceId id : ids) {
    const RollupSummary summary =
        store->summarize(id, from_unix_ms(base), from_unix_ms(base + kBatches * 90'000 + 3));
    EXPECT_EQ(summary.count, 2 * kBatches);
    EXPECT_EQ(summary.histogram.total(), static_cast<std::uint64_t>(2 * kBatches));
    EXPECT_DOUBLE_EQ(summary.sum_ms, 5.0 * 2 * kBatches);
  }
}

TEST_F(PostgresStore, SessionsTheServerEndedAreReplacedAndNothingIsLost) {
  const ServiceId id = store->create_service(probed("a"), from_unix_ms(0)).id;
  Metric metric;
  store->apply({record_at(id, 1000, metric)});
  ASSERT_EQ(store->list_services().size(), 1u);  // a read session is idle in the pool now
  // As an operator's pg_terminate_backend would: every session of this store, each waited for
  // (up to 10 s) until it has ended.
  ASSERT_GE(db->count("SELECT COUNT(*) FILTER (WHERE pg_terminate_backend(pid, 10000))"
                      " FROM pg_stat_activity WHERE application_name ="
                      " current_setting('application_name') AND pid <> pg_backend_pid()"),
            2);
  EXPECT_EQ(store->list_services().size(), 1u);  // on a new read session
  EXPECT_EQ(store->ping_failure(), std::nullopt);
  store->apply({record_at(id, 2000, metric)});  // on a new write session
  EXPECT_EQ(store->ticks(id, {}).size(), 2u);
  EXPECT_EQ(store->create_service(probed("b"), from_unix_ms(3000)).spec.name, "b");
}

// The alerts' and the component beats' sessions too: each ended session is found lost before
// the next call sends anything on it, so even a single statement (which cannot be tried again
// safely once sent) does not fail.
TEST_F(PostgresStore, AlertsAndBeatsReplaceASessionTheServerEndedWithoutFailingACall) {
  const auto database = db->database();
  const auto alerts = database->open_alert_store();
  const auto beats = database->open_component_beats();
  const ComponentBeat beat{"runner", "local", from_unix_ms(1000), from_unix_ms(1000), 1};
  beats->write({beat});
  EXPECT_TRUE(alerts->active_alerts().empty());
  ASSERT_GE(db->count("SELECT COUNT(*) FILTER (WHERE pg_terminate_backend(pid, 10000))"
                      " FROM pg_stat_activity WHERE application_name ="
                      " current_setting('application_name') AND pid <> pg_backend_pid()"),
            3);
  EXPECT_TRUE(alerts->active_alerts().empty());
  EXPECT_EQ(beats->read(), std::vector<ComponentBeat>{beat});
  EXPECT_GT(alerts->add_maintenance_window("{}", from_unix_ms(2000)), 0);
}

// Ticks are sent in COPY's text format, where a tab, a line break, a backslash and "\N" mean
// something: in a tick's text they are kept as they were.
TEST_F(PostgresStore, TextWithCopysSeparatorsInATickIsKeptAsItWas) {
  const ServiceId id = store->create_service(probed("a"), from_unix_ms(0)).id;
  Metric metric;
  TickRecord record = record_at(id, 1000, metric);
  record.tick.up = false;
  record.tick.error = "tab\there\nline\r\\N \\. \\";
  record.tick.message = "\\.";
  store->apply({record});
  const auto ticks = store->ticks(id, {});
  ASSERT_EQ(ticks.size(), 1u);
  EXPECT_EQ(ticks[0].error, record.tick.error);
  EXPECT_EQ(ticks[0].message, record.tick.message);
}

TEST_F(PostgresStore, AReadStuckBehindALockFailsWithinItsTimeoutInsteadOfHanging) {
  store->create_service(probed("a"), from_unix_ms(0));
  // Another session holds services locked, as a stuck migration or operator would.
  postgres::Connection other(db->location());
  postgres::Transaction holding(other);
  other.exec("LOCK TABLE services IN ACCESS EXCLUSIVE MODE");
  const auto started = std::chrono::steady_clock::now();
  EXPECT_THROW(store->list_services(), StorageError);
  const auto waited = std::chrono::steady_clock::now() - started;
  EXPECT_GE(waited, postgres::SessionPool::kStatementTimeout);
  EXPECT_LT(waited, postgres::SessionPool::kStatementTimeout * 3);
}

}  // namespace
}  // namespace vigil

// Writer against a real Store: the tests of its storage-facing behaviour on every backend (a
// SQLite file in a temporary directory, a fresh PostgreSQL database), the others on SQLite.
//
// Storage faults are real database failures, injected by a second connection the way another
// process could: a trigger that makes every tick insert fail. The brief's
// first idea, chmod 0444 on the file, cannot work here: the tests run as root, which ignores file
// modes, and even for other users an already open connection keeps writing through its open
// descriptor, so the fault would never reach apply().
#include <SQLiteCpp/SQLiteCpp.h>
#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "core/commit.h"
#include "core/model.h"
#include "storage/sqlite/sqlite_database.h"
#include "storage/store.h"
#include "storage/write_queue.h"
#include "storage/writer.h"
#include "support/store_backends.h"
#include "support/target_server.h"
#include "support/test_data.h"

namespace vigil {
namespace {

using namespace std::chrono_literals;
using test::TempDir;

using test::at;

// A store of `backend` with `n` services named s0..s(n-1); their ids in that order.
struct Fixture {
  TempDir dir;
  test::TestDatabase db;
  const std::string& path = db.location();  // SQLite's file
  std::unique_ptr<Store> store = db.open();
  std::vector<ServiceId> ids;

  explicit Fixture(int n, test::StoreBackend backend = test::StoreBackend::sqlite) : db(backend) {
    std::vector<ServiceSpec> specs;
    for (int i = 0; i < n; ++i) {
      ServiceSpec spec;
      // append() rather than "literal" + string: GCC 12 warns falsely (-Wrestrict) on that.
      spec.name = std::string("s").append(std::to_string(i));
      spec.url = std::string("http://example.test/").append(std::to_string(i));
      specs.push_back(spec);
    }
    store->sync_services(specs, at(0));
    for (const auto& service : store->active_services()) ids.push_back(service.id);
  }

  std::int64_t count(const std::string& sql) const { return db.count(sql); }

  void break_tick_inserts() const {
    if (db.backend() == test::StoreBackend::sqlite) {
      db.exec(
          "CREATE TRIGGER injected_fault BEFORE INSERT ON service_ticks"
          " BEGIN SELECT RAISE(ABORT, 'injected storage fault'); END");
    } else {
      db.exec(
          "CREATE OR REPLACE FUNCTION injected_fault() RETURNS trigger LANGUAGE plpgsql AS $$"
          " BEGIN RAISE EXCEPTION 'injected storage fault'; END $$;"
          " CREATE TRIGGER injected_fault BEFORE INSERT ON service_ticks FOR EACH ROW"
          " EXECUTE FUNCTION injected_fault()");
    }
  }
  void repair_tick_inserts() const {
    db.exec(db.backend() == test::StoreBackend::sqlite
                ? "DROP TRIGGER injected_fault"
                : "DROP TRIGGER injected_fault ON service_ticks");
  }
};

// The tests of the writer over a store, on every backend.
class StorageWriterOnBackend : public ::testing::TestWithParam<test::StoreBackend> {
 protected:
  void SetUp() override {
    if (auto reason = test::unavailable(GetParam())) GTEST_SKIP() << *reason;
  }
};
INSTANTIATE_TEST_SUITE_P(Backends, StorageWriterOnBackend, test::kStoreBackends,
                         test::backend_name);

// The n-th record of a service that is always up: an uptime event opens on its first tick.
TickRecord record(ServiceId id, std::int64_t n) {
  TickRecord record;
  record.tick.service_id = id;
  record.tick.ts = at(n);
  record.tick.up = true;
  record.tick.status_code = 200;
  record.tick.response_ms = 5;
  record.metric_after = {n + 1, n + 1, 0, 5, 100};
  if (n == 0) record.opens_event = EventKind::uptime;
  return record;
}

// Polls `done` for up to `limit`, so a writer that lost records fails the test instead of
// hanging it in flush().
template <typename Done>
bool eventually(Done done, std::chrono::milliseconds limit = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

const prometheus::ClientMetric* find_metric(const std::vector<prometheus::MetricFamily>& families,
                                            const std::string& name) {
  for (const auto& family : families)
    if (family.name == name && !family.metric.empty()) return &family.metric.front();
  return nullptr;
}

double counter(prometheus::Registry& registry, const std::string& name) {
  const auto families = registry.Collect();
  const auto* metric = find_metric(families, name);
  return metric ? metric->counter.value : -1;
}

TEST_P(StorageWriterOnBackend, CommitsEveryRecordFromManyThreadsByFlush) {
  Fixture fx(4, GetParam());
  prometheus::Registry registry;
  Writer writer(*fx.store, registry);
  constexpr int kPerThread = 5000;
  std::vector<std::thread> producers;
  for (const ServiceId id : fx.ids) {
    producers.emplace_back([&writer, id] {
      for (int n = 0; n < kPerThread; ++n) writer.submit(record(id, n));
    });
  }
  for (auto& producer : producers) producer.join();
  writer.flush();

  EXPECT_EQ(writer.committed_records(), 4u * kPerThread);
  EXPECT_EQ(writer.queue_depth(), 0u);
  EXPECT_EQ(writer.failed_batches(), 0u);
  EXPECT_EQ(fx.count("SELECT COUNT(*) FROM service_ticks"), 4 * kPerThread);
  EXPECT_EQ(fx.count("SELECT COUNT(DISTINCT service_id || ':' || ts) FROM service_ticks"),
            4 * kPerThread);
  EXPECT_EQ(fx.count("SELECT COUNT(*) FROM service_events WHERE date_ended IS NULL"), 4);
  for (const auto& [id, runtime] : fx.store->load_runtime()) {
    EXPECT_EQ(runtime.metric.tick_count, kPerThread) << id;
    EXPECT_EQ(runtime.last_tick_at, at(kPerThread - 1)) << id;
  }
  EXPECT_EQ(counter(registry, "vigil_writer_committed_ticks_total"), 4.0 * kPerThread);
}

TEST_P(StorageWriterOnBackend, BatchesHoldManyRecordsUnderLoad) {
  Fixture fx(1, GetParam());
  prometheus::Registry registry;
  Writer writer(*fx.store, registry, {.flush_interval = 100ms, .max_batch = 1000});
  constexpr int kRecords = 20000;
  for (int n = 0; n < kRecords; ++n) writer.submit(record(fx.ids[0], n));
  writer.flush();

  const auto families = registry.Collect();
  const auto* sizes = find_metric(families, "vigil_writer_batch_size");
  ASSERT_NE(sizes, nullptr);
  EXPECT_DOUBLE_EQ(sizes->histogram.sample_sum, kRecords);
  // 20 batches when every one is full; one record per batch would be 20,000.
  EXPECT_LE(sizes->histogram.sample_count, kRecords / 100u);
  EXPECT_GE(sizes->histogram.sample_count, kRecords / 1000u);
  const auto* durations = find_metric(families, "vigil_writer_batch_duration_seconds");
  ASSERT_NE(durations, nullptr);
  EXPECT_EQ(durations->histogram.sample_count, sizes->histogram.sample_count);
}

TEST_P(StorageWriterOnBackend, StopAndDestructionCommitWhatIsQueued) {
  Fixture fx(1, GetParam());
  prometheus::Registry registry;
  // Neither the interval nor the batch size would ever trigger a commit during the test.
  const WriterOptions lazy{.flush_interval = 60s, .max_batch = 1'000'000};
  {
    Writer writer(*fx.store, registry, lazy);
    for (int n = 0; n < 500; ++n) writer.submit(record(fx.ids[0], n));
    EXPECT_EQ(fx.count("SELECT COUNT(*) FROM service_ticks"), 0);
    writer.stop();
    EXPECT_EQ(fx.count("SELECT COUNT(*) FROM service_ticks"), 500);
    writer.stop();  // idempotent

    writer.submit(record(fx.ids[0], 500));  // refused: nothing would write it
    EXPECT_EQ(writer.dropped_records(), 1u);
    writer.flush();  // returns at once on a stopped writer
  }
  prometheus::Registry other;
  {
    Writer writer(*fx.store, other, lazy);
    for (int n = 1000; n < 1100; ++n) writer.submit(record(fx.ids[0], n));
  }  // the destructor stops, so it drains
  EXPECT_EQ(fx.count("SELECT COUNT(*) FROM service_ticks"), 600);
}

TEST_P(StorageWriterOnBackend, KeepsAFailedBatchAndCommitsItOnceStorageRecovers) {
  Fixture fx(1, GetParam());
  prometheus::Registry registry;
  Writer writer(*fx.store, registry,
                {.flush_interval = 20ms,
                 .max_batch = 1000,
                 .first_retry_delay = 50ms,
                 .max_retry_delay = 200ms});
  fx.break_tick_inserts();
  for (int n = 0; n < 50; ++n) writer.submit(record(fx.ids[0], n));
  writer.flush();  // returns once the batch has failed

  EXPECT_GE(writer.failed_batches(), 1u);
  EXPECT_GE(counter(registry, "vigil_storage_errors_total"), 1.0);
  EXPECT_EQ(writer.committed_records(), 0u);
  EXPECT_EQ(writer.queue_depth(), 50u);
  EXPECT_EQ(fx.count("SELECT COUNT(*) FROM service_ticks"), 0);
  EXPECT_EQ(fx.count("SELECT COUNT(*) FROM service_events"), 0);
  EXPECT_NE(writer.failure().find("storage: apply: "), std::string::npos) << writer.failure();

  // Retried, still failing, still kept.
  ASSERT_TRUE(eventually([&] { return writer.failed_batches() >= 4; }))
      << writer.failed_batches() << " failed";
  EXPECT_EQ(fx.count("SELECT COUNT(*) FROM service_ticks"), 0);
  EXPECT_EQ(writer.queue_depth(), 50u);

  fx.repair_tick_inserts();
  ASSERT_TRUE(eventually([&] { return writer.committed_records() == 50; }))
      << writer.committed_records() << " committed";
  writer.flush();
  EXPECT_EQ(writer.committed_records(), 50u);
  EXPECT_EQ(writer.queue_depth(), 0u);
  EXPECT_EQ(writer.dropped_records(), 0u);
  EXPECT_EQ(writer.failure(), "");  // /healthz is 200 again
  EXPECT_EQ(fx.count("SELECT COUNT(*) FROM service_ticks"), 50);
  EXPECT_EQ(fx.count("SELECT COUNT(*) FROM service_events WHERE date_ended IS NULL"), 1);
  EXPECT_EQ(fx.store->get_service(fx.ids[0])->metric.tick_count, 50);
}

TEST_P(StorageWriterOnBackend, AFullQueueDropsTheOldestRecordsAndCountsThem) {
  Fixture fx(1, GetParam());
  prometheus::Registry registry;
  // A long interval, so batches are taken only when max_batch records wait: deterministic.
  Writer writer(*fx.store, registry, {.flush_interval = 60s, .max_batch = 5, .max_queue = 10});
  fx.break_tick_inserts();
  for (int n = 0; n < 5; ++n) writer.submit(record(fx.ids[0], n));
  writer.flush();  // records 0-4 are now the failed batch the writer keeps
  ASSERT_GE(writer.failed_batches(), 1u);

  for (int n = 5; n < 30; ++n) writer.submit(record(fx.ids[0], n));
  EXPECT_EQ(writer.dropped_records(), 15u);  // 5-19: the queue keeps the newest 10
  EXPECT_EQ(writer.queue_depth(), 15u);      // the kept batch and the queue
  EXPECT_EQ(counter(registry, "vigil_writer_dropped_ticks_total"), 15.0);

  fx.repair_tick_inserts();
  ASSERT_TRUE(eventually([&] { return writer.committed_records() == 15; }))
      << writer.committed_records() << " committed";
  writer.flush();
  // Exactly 0-4 and 20-29.
  EXPECT_EQ(fx.count("SELECT COUNT(*) FROM service_ticks"), 15);
  EXPECT_EQ(fx.count("SELECT COUNT(*) FROM service_ticks WHERE ts BETWEEN 0 AND 4"
                     " OR ts BETWEEN 20 AND 29"),
            15);
  EXPECT_EQ(writer.committed_records(), 15u);
}

TEST_P(StorageWriterOnBackend, StopGivesUpOnStorageThatNeverRecovers) {
  Fixture fx(1, GetParam());
  prometheus::Registry registry;
  Writer writer(*fx.store, registry, {.flush_interval = 20ms, .max_batch = 10});
  fx.break_tick_inserts();
  for (int n = 0; n < 25; ++n) writer.submit(record(fx.ids[0], n));
  const auto started = std::chrono::steady_clock::now();
  writer.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 10s);
  EXPECT_EQ(writer.dropped_records(), 25u);
  EXPECT_EQ(writer.committed_records(), 0u);
  EXPECT_EQ(writer.queue_depth(), 0u);
  EXPECT_EQ(counter(registry, "vigil_writer_dropped_ticks_total"), 25.0);
}

// A record someone waits on (a pushed beat's tick) is reported committed only once the
// transaction carrying it has committed: while storage fails the wait times out, and the record
// is reported the moment its retried batch commits. It does not wait out the flush interval.
TEST_P(StorageWriterOnBackend, AnAwaitedRecordIsReportedCommittedOnlyOnceItsBatchCommits) {
  Fixture fx(1, GetParam());
  prometheus::Registry registry;
  // A flush interval no test waits out: only the awaited record makes the writer commit.
  Writer writer(*fx.store, registry,
                {.flush_interval = 60s, .first_retry_delay = 50ms, .max_retry_delay = 100ms});
  auto [first, first_stored] = make_commit_pair();
  TickRecord awaited = record(fx.ids[0], 0);
  awaited.stored = std::move(first);
  writer.submit(std::move(awaited));
  ASSERT_EQ(first_stored.wait_for(10s), CommitOutcome::committed);
  // Committed means readable by anyone, at once.
  EXPECT_EQ(fx.count("SELECT COUNT(*) FROM service_ticks"), 1);

  fx.break_tick_inserts();
  writer.submit(record(fx.ids[0], 1));
  auto [second, second_stored] = make_commit_pair();
  TickRecord held = record(fx.ids[0], 2);
  held.stored = std::move(second);
  writer.submit(std::move(held));
  ASSERT_TRUE(eventually([&] { return writer.failed_batches() >= 2; }));
  EXPECT_EQ(second_stored.wait_for(300ms), CommitOutcome::timed_out);
  EXPECT_EQ(fx.count("SELECT COUNT(*) FROM service_ticks"), 1);

  fx.repair_tick_inserts();
  ASSERT_EQ(second_stored.wait_for(10s), CommitOutcome::committed);
  EXPECT_EQ(fx.count("SELECT COUNT(*) FROM service_ticks"), 3);
  EXPECT_EQ(writer.dropped_records(), 0u);
}

// An awaited record the writer drops is reported dropped, never committed: shed by a full queue,
// given up at shutdown on storage that never recovers, or submitted after stop().
TEST_P(StorageWriterOnBackend, AnAwaitedRecordThatIsDroppedIsReportedDropped) {
  Fixture fx(1, GetParam());
  prometheus::Registry registry;
  Writer writer(*fx.store, registry,
                {.flush_interval = 60s, .max_batch = 2, .max_queue = 2, .first_retry_delay = 50ms});
  fx.break_tick_inserts();
  const auto awaited = [&](std::int64_t n) {
    auto [stored, future] = make_commit_pair();
    TickRecord r = record(fx.ids[0], n);
    r.stored = std::move(stored);
    writer.submit(std::move(r));
    return future;
  };
  const CommitFuture in_batch = awaited(0);
  writer.submit(record(fx.ids[0], 1));
  ASSERT_TRUE(eventually([&] { return writer.failed_batches() >= 1; }));
  // Records 0 and 1 are the failing batch; the queue holds 2 and sheds its oldest plain tick.
  const CommitFuture shed = awaited(2);
  writer.submit(record(fx.ids[0], 3));
  EXPECT_EQ(shed.wait_for(0ms), CommitOutcome::timed_out);
  writer.submit(record(fx.ids[0], 4));
  EXPECT_EQ(shed.wait_for(5s), CommitOutcome::dropped);
  const CommitFuture queued = awaited(5);

  writer.stop();
  EXPECT_EQ(in_batch.wait_for(5s), CommitOutcome::dropped);
  EXPECT_EQ(queued.wait_for(5s), CommitOutcome::dropped);
  EXPECT_EQ(awaited(6).wait_for(5s), CommitOutcome::dropped);
  EXPECT_EQ(fx.count("SELECT COUNT(*) FROM service_ticks"), 0);
}

// A batch that keeps failing is tried again 1 s after its failure, then 2, 4 and at most 5 s
// later, so a storage outage is not met with a retry every second by every writer; once stopping,
// a second apart, so shutdown stays bounded.
TEST(StorageWriter, RetriesBackOffFromTheFirstDelayToTheLongestAndNotWhileStopping) {
  const WriterOptions options;
  EXPECT_EQ(writer_retry_delay(options, 1, false), 1s);
  EXPECT_EQ(writer_retry_delay(options, 2, false), 2s);
  EXPECT_EQ(writer_retry_delay(options, 3, false), 4s);
  EXPECT_EQ(writer_retry_delay(options, 4, false), 5s);
  EXPECT_EQ(writer_retry_delay(options, 1'000'000, false), 5s);
  EXPECT_EQ(writer_retry_delay(options, std::numeric_limits<std::uint64_t>::max(), false), 5s);
  EXPECT_EQ(writer_retry_delay(options, 4, true), 1s);
  // A longest delay below the first one is the first one.
  EXPECT_EQ(writer_retry_delay({.first_retry_delay = 2s, .max_retry_delay = 1s}, 3, false), 2s);
}

TEST(StorageWriter, LastAliveAdvancesWhileIdle) {
  Fixture fx(0);
  prometheus::Registry registry;
  Writer writer(*fx.store, registry, {.flush_interval = 20ms});
  std::this_thread::sleep_for(50ms);
  const auto first = writer.last_alive();
  std::this_thread::sleep_for(400ms);
  const auto second = writer.last_alive();
  EXPECT_GT(second, first);             // it kept looping with nothing to write...
  EXPECT_LT(now_ms() - second, 300ms);  // ...and recently, not just once after `first`
}

// /healthz's writer signal: progress is a commit or an empty queue, not a loop that goes round
// retrying a failing commit.
TEST_P(StorageWriterOnBackend, LastProgressStandsStillWhileCommitsFailAndMovesOnceOneSucceeds) {
  Fixture fx(1, GetParam());
  prometheus::Registry registry;
  Writer writer(*fx.store, registry, {.flush_interval = 20ms, .max_batch = 1000});
  const TimePoint idle = writer.last_progress();
  ASSERT_TRUE(eventually([&] { return writer.last_progress() > idle; }));  // nothing to commit

  fx.break_tick_inserts();
  for (int n = 0; n < 5; ++n) writer.submit(record(fx.ids[0], n));
  writer.flush();  // returns once the batch has failed
  ASSERT_GE(writer.failed_batches(), 1u);
  const TimePoint stuck = writer.last_progress();
  ASSERT_TRUE(eventually([&] { return writer.last_alive() - stuck >= 500ms; }));
  EXPECT_EQ(writer.last_progress(), stuck);  // the loop went round, the writer did not progress

  fx.repair_tick_inserts();
  ASSERT_TRUE(eventually([&] { return writer.committed_records() == 5; }));
  EXPECT_GT(writer.last_progress(), stuck);
}

TEST(StorageWriter, ExposesMetricsThatPassPromtool) {
  Fixture fx(1);
  prometheus::Registry registry;
  Writer writer(*fx.store, registry);
  for (int n = 0; n < 10; ++n) writer.submit(record(fx.ids[0], n));
  writer.flush();
  EXPECT_EQ(writer.queue_depth(), 0u);

  const auto text = prometheus::TextSerializer().Serialize(registry.Collect());
  for (const char* name : {"vigil_writer_batch_size", "vigil_writer_batch_duration_seconds",
                           "vigil_writer_queue_depth", "vigil_writer_committed_ticks_total",
                           "vigil_storage_errors_total", "vigil_writer_dropped_ticks_total",
                           "vigil_storage_corrupt_rows_total"}) {
    EXPECT_NE(text.find(std::string("# HELP ") + name + " "), std::string::npos) << name;
  }

  const char* promtool = "/usr/bin/promtool";
  if (!std::filesystem::exists(promtool)) GTEST_SKIP() << "promtool not installed";
  const auto file = fx.dir.file("metrics.txt");
  std::ofstream(file) << text;
  const auto out = fx.dir.file("promtool.out");
  const int status = std::system(
      (std::string(promtool) + " check metrics < " + file + " > " + out + " 2>&1").c_str());
  std::ifstream report(out);
  const std::string findings((std::istreambuf_iterator<char>(report)), {});
  EXPECT_EQ(status, 0) << findings;
  EXPECT_EQ(findings, "") << findings;
}

// The events of service `id` as "kind@start-end" ("-" while open), oldest first.
std::vector<std::string> events_of(const Fixture& fx, ServiceId id) {
  SQLite::Database db(fx.path, SQLite::OPEN_READONLY);
  SQLite::Statement select(db,
                           "SELECT event, date_started, date_ended FROM service_events"
                           " WHERE service_id = ? ORDER BY date_started, id");
  select.bind(1, id);
  std::vector<std::string> out;
  while (select.executeStep()) {
    out.push_back(select.getColumn(0).getString() + "@" + select.getColumn(1).getString() + "-" +
                  (select.isColumnNull(2) ? "" : select.getColumn(2).getString()));
  }
  return out;
}

// A tick of `id` at `ts`, up or down, opening an event when `opens`; `n` ticks of it so far.
TickRecord status_tick(ServiceId id, std::int64_t ts, bool up, bool opens, std::int64_t n) {
  TickRecord r;
  r.tick.service_id = id;
  r.tick.ts = at(ts);
  r.tick.up = up;
  r.tick.response_ms = 5;
  r.metric_after = {n + 1, up ? n + 1 : 0, up ? 0 : n + 1, 5, up ? 100.0 : 0.0};
  if (opens) r.opens_event = up ? EventKind::uptime : EventKind::downtime;
  return r;
}

// Another connection holds the write lock (as another process could): every commit waits out
// the busy timeout and fails with "database is locked" until release().
struct HeldLock {
  explicit HeldLock(const std::string& path) : db(path, SQLite::OPEN_READWRITE) {
    db.exec("BEGIN EXCLUSIVE");
  }
  void release() { db.exec("COMMIT"); }
  SQLite::Database db;
};

TEST(StorageWriter, AFullQueueDropsPlainTicksFirstAndKeepsEveryStatusChange) {
  Fixture fx(2);
  const ServiceId a = fx.ids[0], b = fx.ids[1];
  prometheus::Registry registry;
  // A batch is taken only when two records wait.
  Writer writer(*fx.store, registry, {.flush_interval = 60s, .max_batch = 2, .max_queue = 6});
  HeldLock lock(fx.path);
  writer.submit(status_tick(a, 1000, true, true, 0));
  writer.submit(status_tick(b, 1000, true, true, 0));
  // Once the first attempt has failed (the busy timeout), these two are the batch in flight.
  ASSERT_TRUE(eventually([&] { return writer.failed_batches() >= 1; }, 20s));
  EXPECT_NE(writer.failure().find("locked"), std::string::npos) << writer.failure();
  // While storage is down, `a` goes down at step 7 and up again at step 14; `b` stays up.
  const auto a_up = [](int step) { return step < 7 || step >= 14; };
  for (int step = 1; step <= 20; ++step) {
    const std::int64_t ts = 1000 + step * 1000;
    writer.submit(status_tick(a, ts, a_up(step), a_up(step) != a_up(step - 1), step));
    writer.submit(status_tick(b, ts, true, false, step));
  }
  // 42 submitted: 2 in flight, 6 queued (both status changes and the 4 newest plain ticks).
  EXPECT_EQ(writer.queue_depth(), 8u);
  EXPECT_EQ(writer.dropped_records(), 34u);
  EXPECT_EQ(writer.folded_records(), 0u);

  lock.release();
  ASSERT_TRUE(eventually([&] { return writer.committed_records() == 8; }, 20s))
      << writer.committed_records() << " committed";
  writer.flush();

  EXPECT_EQ(events_of(fx, a),
            (std::vector<std::string>{"uptime@1000-8000", "downtime@8000-15000", "uptime@15000-"}));
  EXPECT_EQ(events_of(fx, b), std::vector<std::string>{"uptime@1000-"});
  EXPECT_EQ(counter(registry, "vigil_writer_dropped_ticks_total"), 34.0);
  EXPECT_EQ(counter(registry, "vigil_writer_folded_transitions_total"), 0.0);
  EXPECT_EQ(fx.count("SELECT COUNT(*) FROM service_ticks"), 8);
  EXPECT_EQ(fx.count("SELECT COUNT(*) FROM service_ticks WHERE ts IN (8000, 15000)"), 2);
  // The metric is the newest record's, which counts the dropped ticks too.
  const auto view = fx.store->get_service(a);
  ASSERT_TRUE(view && view->open_event);
  EXPECT_EQ(view->metric.tick_count, 21);
  EXPECT_EQ(view->open_event->date_started, at(15000));
}

TEST(StorageWriter, AQueueOfStatusChangesOnlyFoldsTheirEventsIntoTheNextRecord) {
  Fixture fx(2);
  const ServiceId a = fx.ids[0], b = fx.ids[1];
  prometheus::Registry registry;
  Writer writer(*fx.store, registry, {.flush_interval = 60s, .max_batch = 2, .max_queue = 4});
  HeldLock lock(fx.path);
  writer.submit(status_tick(a, 1000, true, true, 0));
  writer.submit(status_tick(b, 1000, true, true, 0));
  ASSERT_TRUE(eventually([&] { return writer.failed_batches() >= 1; }, 20s));
  // `a` flaps at every tick: every queued record is a status change.
  for (int step = 1; step <= 10; ++step)
    writer.submit(status_tick(a, 1000 + step * 1000, step % 2 == 0, true, step));
  EXPECT_EQ(writer.queue_depth(), 6u);
  EXPECT_EQ(writer.dropped_records(), 0u);
  EXPECT_EQ(writer.folded_records(), 6u);
  lock.release();
  ASSERT_TRUE(eventually([&] { return writer.committed_records() == 6; }, 20s))
      << writer.committed_records() << " committed";
  writer.flush();

  std::vector<std::string> expected;
  for (int step = 0; step <= 10; ++step) {
    const std::string end = step < 10 ? std::to_string(2000 + step * 1000) : "";
    expected.push_back(std::string(step % 2 == 0 ? "uptime" : "downtime") + "@" +
                       std::to_string(1000 + step * 1000) + "-" + end);
  }
  EXPECT_EQ(events_of(fx, a), expected);
  EXPECT_EQ(events_of(fx, b), std::vector<std::string>{"uptime@1000-"});
  EXPECT_EQ(counter(registry, "vigil_writer_folded_transitions_total"), 6.0);
  EXPECT_EQ(counter(registry, "vigil_writer_dropped_ticks_total"), 0.0);
  EXPECT_EQ(fx.count("SELECT COUNT(*) FROM service_ticks"), 6);
  EXPECT_EQ(fx.store->get_service(a)->metric.tick_count, 11);
}

TEST(WriteQueue, ShedsAStatusChangeOnlyWhenNoneCanBeFolded) {
  WriteQueue queue(2);
  // Three services, one status change each: nothing to fold into, the oldest goes.
  for (ServiceId id = 1; id <= 3; ++id) {
    const auto shed = queue.push(status_tick(id, 1000, true, true, 0), id);
    EXPECT_EQ(shed, id < 3 ? WriteQueue::Shed::none : WriteQueue::Shed::transition);
  }
  EXPECT_EQ(queue.front_seq(), 2u);
  // A plain tick is shed before any status change, even when it is the newest record.
  EXPECT_EQ(queue.push(status_tick(2, 2000, true, false, 1), 4), WriteQueue::Shed::plain_tick);
  EXPECT_EQ(queue.size(), 2u);
  // A status change of a queued service folds the older one into it.
  EXPECT_EQ(queue.push(status_tick(2, 3000, false, true, 2), 5), WriteQueue::Shed::folded);
  EXPECT_EQ(queue.pop_front().tick.service_id, 3);
  const TickRecord kept = queue.pop_front();
  EXPECT_EQ(kept.tick.ts, at(3000));
  EXPECT_EQ(kept.folded_events, (std::vector<EventStart>{{EventKind::uptime, at(1000)}}));
  EXPECT_TRUE(queue.empty());
  EXPECT_EQ(queue.front_seq(), std::nullopt);
}

// A tick of service `id` at `ts` whose response time varies with `n`.
TickRecord varied(ServiceId id, std::int64_t ts, int n) {
  TickRecord r;
  r.tick.service_id = id;
  r.tick.ts = at(ts);
  r.tick.up = n % 5 != 0;
  r.tick.response_ms = 3.5 + 17.25 * (n % 7);
  r.metric_after = {n + 1, n + 1, 0, 5, 100};
  if (n == 0) r.opens_event = r.tick.up ? EventKind::uptime : EventKind::downtime;
  return r;
}

// Expects the stored `resolution` row of `id` starting at `bucket` to equal the summary of the
// stored ticks of its period, field by field (the histogram included).
void expect_row_matches_ticks(Store& store, ServiceId id, RollupResolution resolution,
                              std::int64_t bucket, std::int64_t period) {
  SCOPED_TRACE("service " + std::to_string(id) +
               (resolution == RollupResolution::hour ? " hour" : " day"));
  const auto rows = store.rollups(id, resolution, at(bucket), at(bucket + period));
  ASSERT_EQ(rows.size(), 1u);
  RollupSummary expected;
  for (const auto& tick :
       store.ticks(id, {.from = at(bucket), .to = at(bucket + period - 1), .limit = 100'000}))
    expected.add(tick);
  const RollupSummary& row = rows[0].second;
  EXPECT_GT(expected.count, 0);
  EXPECT_EQ(row.count, expected.count);
  EXPECT_EQ(row.up, expected.up);
  EXPECT_EQ(row.down, expected.down);
  EXPECT_NEAR(row.sum_ms, expected.sum_ms, 1e-9);
  EXPECT_DOUBLE_EQ(row.min_ms, expected.min_ms);
  EXPECT_DOUBLE_EQ(row.max_ms, expected.max_ms);
  EXPECT_TRUE(row.histogram == expected.histogram);
}

TEST_P(StorageWriterOnBackend, ACorruptRollupRowIsRebuiltFromItsTicksAndTheBatchIsWritten) {
  Fixture fx(3, GetParam());
  prometheus::Registry registry;
  Writer writer(*fx.store, registry, {.flush_interval = 20ms});
  constexpr std::int64_t kHour = 3'600'000;
  constexpr std::int64_t kDay = 24 * kHour;
  constexpr std::int64_t kStart = 19'700 * kDay + 5 * kHour;  // a UTC hour, and its day
  int n = 0;
  // Ten ticks per service, 10 s apart, from `from`: one batch of all three services.
  const auto submit_round = [&](std::int64_t from) {
    for (int i = 0; i < 10; ++i, ++n)
      for (const ServiceId id : fx.ids) writer.submit(varied(id, from + i * 10'000, n));
    writer.flush();
  };
  const auto corrupt = [&](const char* table) {
    // A histogram blob that does not decode, written straight into the database.
    const std::string where = " WHERE service_id = " + std::to_string(fx.ids[0]);
    ASSERT_EQ(fx.count(std::string("SELECT COUNT(*) FROM ") + table + where), 1);
    fx.db.exec(std::string("UPDATE ") + table + " SET histogram = " +
               (GetParam() == test::StoreBackend::sqlite ? "x'ff01'" : "'\\xff01'::bytea") + where);
  };

  submit_round(kStart);
  ASSERT_EQ(writer.committed_records(), 30u);

  corrupt("service_rollups_hour");
  submit_round(kStart + 200'000);
  EXPECT_EQ(writer.failed_batches(), 0u) << writer.failure();
  EXPECT_EQ(writer.committed_records(), 60u);
  EXPECT_EQ(fx.count("SELECT COUNT(*) FROM service_ticks"), 60);
  EXPECT_EQ(counter(registry, "vigil_storage_corrupt_rows_total"), 1.0);
  for (const ServiceId id : fx.ids) {
    expect_row_matches_ticks(*fx.store, id, RollupResolution::hour, kStart, kHour);
    expect_row_matches_ticks(*fx.store, id, RollupResolution::day, kStart - 5 * kHour, kDay);
  }

  corrupt("service_rollups_day");
  submit_round(kStart + 400'000);
  EXPECT_EQ(writer.failed_batches(), 0u) << writer.failure();
  EXPECT_EQ(writer.committed_records(), 90u);
  EXPECT_EQ(counter(registry, "vigil_storage_corrupt_rows_total"), 2.0);
  for (const ServiceId id : fx.ids) {
    expect_row_matches_ticks(*fx.store, id, RollupResolution::hour, kStart, kHour);
    expect_row_matches_ticks(*fx.store, id, RollupResolution::day, kStart - 5 * kHour, kDay);
  }
  // The summaries that read the rows work again.
  EXPECT_EQ(fx.store->summarize(fx.ids[0], at(kStart - 5 * kHour), at(kStart + kDay)).count, 30);
}

}  // namespace
}  // namespace vigil

// The latency histogram, and the minute/hour rollups apply() writes, checked against the
// raw ticks they summarise in a real database of every backend.
#include <SQLiteCpp/SQLiteCpp.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "storage/retention.h"
#include "storage/rollups.h"
#include "storage/sqlite/rollup_sql.h"
#include "storage/sqlite/sqlite_database.h"
#include "storage/store.h"
#include "support/store_backends.h"
#include "support/target_server.h"

namespace vigil {
namespace {

using test::TempDir;

constexpr double kBound = 0.0955;  // sqrt(1.2) - 1, rounded up: the documented error bound
constexpr std::int64_t kBase = 1'699'999'200'000;  // a whole UTC hour

double exact_percentile(std::vector<double> values, double q) {
  std::sort(values.begin(), values.end());
  const auto rank =
      std::max<std::size_t>(1, static_cast<std::size_t>(std::ceil(q * values.size())));
  return values[rank - 1];
}

void expect_within_bound(double got, double exact) {
  EXPECT_LE(std::abs(got - exact), kBound * exact) << "got " << got << ", exact " << exact;
}

TEST(LatencyHistogram, PercentilesStayWithinTheStatedErrorOverTheWholeRange) {
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> exponent(std::log(0.1), std::log(120'000.0));
  std::vector<double> values;
  LatencyHistogram histogram;
  for (int i = 0; i < 20'000; ++i) {
    values.push_back(std::exp(exponent(rng)));
    histogram.add(values.back());
  }
  const double lo = *std::min_element(values.begin(), values.end());
  const double hi = *std::max_element(values.begin(), values.end());
  for (double q : {0.001, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0})
    expect_within_bound(*histogram.percentile(q, lo, hi), exact_percentile(values, q));
}

TEST(LatencyHistogram, ASingleValueIsReportedExactlyThanksToMinMaxClamping) {
  LatencyHistogram histogram;
  histogram.add(123.4, 5);
  EXPECT_DOUBLE_EQ(*histogram.percentile(0.5, 123.4, 123.4), 123.4);
  EXPECT_FALSE(LatencyHistogram().percentile(0.5, 0, 0).has_value());
}

TEST(LatencyHistogram, MergeEqualsAddingEverythingAndTheBlobRoundTrips) {
  LatencyHistogram a, b, all;
  for (int i = 0; i < 1000; ++i) {
    const double ms = 0.05 + i * 37.3;
    (i % 3 ? a : b).add(ms);
    all.add(ms);
  }
  all.add(500'000);  // past the last finite bucket
  b.add(500'000);
  a.merge(b);
  EXPECT_EQ(a, all);
  EXPECT_EQ(all.total(), 1001u);
  const std::string blob = all.encode();
  EXPECT_LT(blob.size(), 2u * LatencyHistogram::kBuckets + 8);  // compact: a few bytes a bucket
  EXPECT_EQ(LatencyHistogram::decode(blob.data(), blob.size()), all);
}

TEST(LatencyHistogram, DecodeRejectsMalformedBlobs) {
  const unsigned char bad_index[] = {200, 1};
  const unsigned char truncated[] = {3, 0x80};
  EXPECT_THROW(LatencyHistogram::decode(bad_index, sizeof bad_index), std::invalid_argument);
  EXPECT_THROW(LatencyHistogram::decode(truncated, sizeof truncated), std::invalid_argument);
}

// ---- rollups in the store ----

struct Generated {
  std::vector<Tick> ticks;  // as applied
};

// Each test on every backend, on a database of its own.
class RollupStore : public ::testing::TestWithParam<test::StoreBackend> {
 protected:
  void SetUp() override {
    if (auto reason = test::unavailable(GetParam())) GTEST_SKIP() << *reason;
    db = std::make_unique<test::TestDatabase>(GetParam());
    store = db->open();
    ServiceSpec a, b;
    a.name = "a";
    a.url = "http://a.test/";
    b.name = "b";
    b.url = "http://b.test/";
    store->sync_services({a, b}, from_unix_ms(kBase));
    for (const auto& s : store->active_services()) ids.push_back(s.id);
  }

  // About three hours of ticks at irregular times for both services, applied in batches of
  // irregular size, so minute and hour rows are upserted across batches. Service by service, or
  // with `interleaved` in time order across services, as the runner submits them; an event opens
  // at each change of status.
  void generate(bool interleaved = false) {
    std::mt19937_64 rng(7);
    // Mostly several ticks a minute, sometimes a minute with one tick or none.
    std::uniform_int_distribution<std::int64_t> short_gap(1, 20'000), long_gap(40'000, 150'000);
    const auto gap = [&](std::mt19937_64& r) { return r() % 6 == 0 ? long_gap(r) : short_gap(r); };
    std::uniform_real_distribution<double> exponent(std::log(1.0), std::log(5'000.0));
    std::uniform_int_distribution<int> batch_size(1, 60);
    std::vector<TickRecord> records;
    for (ServiceId id : ids) {
      Metric metric;
      std::optional<bool> was_up;
      for (std::int64_t t = kBase - 30 * 60'000 + gap(rng); t < kBase + 3 * 3'600'000;
           t += gap(rng)) {
        TickRecord record;
        record.tick.service_id = id;
        record.tick.ts = from_unix_ms(t);
        record.tick.up = rng() % 10 != 0;
        record.tick.response_ms = std::exp(exponent(rng));
        if (rng() % 2) record.tick.phases = PhaseTimings{1, 2, 3, record.tick.response_ms - 7, 1};
        metric.add(record.tick.up, record.tick.response_ms);
        record.metric_after = metric;
        if (was_up != record.tick.up)
          record.opens_event = record.tick.up ? EventKind::uptime : EventKind::downtime;
        was_up = record.tick.up;
        ticks.push_back(record.tick);
        records.push_back(record);
      }
    }
    if (interleaved) {
      std::stable_sort(records.begin(), records.end(),
                       [](const auto& a, const auto& b) { return a.tick.ts < b.tick.ts; });
    }
    std::vector<TickRecord> batch;
    int want = batch_size(rng);
    for (const auto& record : records) {
      batch.push_back(record);
      if (static_cast<int>(batch.size()) == want) {
        store->apply(batch);
        batch.clear();
        want = batch_size(rng);
      }
    }
    store->apply(batch);
  }

  // Every minute, hour and day row counts exactly the stored ticks of its period.
  void expect_rows_agree_with_ticks() {
    for (const auto& [table, period] :
         {std::pair{"service_rollups_minute", std::int64_t{60'000}},
          std::pair{"service_rollups_hour", std::int64_t{3'600'000}},
          std::pair{"service_rollups_day", std::int64_t{86'400'000}}}) {
      const std::string p = std::to_string(period);
      EXPECT_EQ(db->count(std::string("SELECT COUNT(*) FROM ") + table +
                          " r WHERE r.count != (SELECT COUNT(*) FROM service_ticks t WHERE"
                          " t.service_id = r.service_id AND t.ts >= r.bucket AND t.ts < r.bucket"
                          " + " +
                          p +
                          ") OR r.up != (SELECT COUNT(*) FROM service_ticks t WHERE"
                          " t.service_id = r.service_id AND t.up AND t.ts >= r.bucket AND t.ts <"
                          " r.bucket + " +
                          p + ") OR r.bucket % " + p + " != 0"),
                0)
          << table;
      // A minute with one tick has no row: that tick is the minute's rollup.
      const std::int64_t lone = period != 60'000
                                    ? 0
                                    : db->count(
                                          "SELECT COUNT(*) FROM service_ticks t WHERE NOT EXISTS"
                                          " (SELECT 1 FROM service_rollups_minute m WHERE"
                                          " m.service_id = t.service_id AND m.bucket = t.ts -"
                                          " t.ts % 60000)");
      EXPECT_EQ(db->count(std::string("SELECT SUM(count) FROM ") + table) + lone,
                static_cast<std::int64_t>(ticks.size()))
          << table;
    }
    EXPECT_EQ(db->count("SELECT COUNT(*) FROM service_rollups_minute WHERE count < 2"), 0);
    // Both kinds of minute occur in the generated ticks.
    EXPECT_GT(db->count("SELECT COUNT(*) FROM service_rollups_minute"), 10);
    EXPECT_GT(db->count("SELECT COUNT(*) FROM service_ticks t WHERE NOT EXISTS (SELECT 1 FROM"
                        " service_rollups_minute m WHERE m.service_id = t.service_id AND"
                        " m.bucket = t.ts - t.ts % 60000)"),
              10);
  }

  void expect_matches_raw(ServiceId id, std::int64_t from, std::int64_t to) {
    SCOPED_TRACE("window [" + std::to_string(from - kBase) + ", " + std::to_string(to - kBase) +
                 ") ms from base, service " + std::to_string(id));
    std::vector<double> values;
    std::int64_t up = 0;
    double sum = 0, phase_processing = 0;
    std::int64_t phases = 0;
    for (const auto& t : ticks) {
      const auto ts = to_unix_ms(t.ts);
      if (t.service_id != id || ts < from || ts >= to) continue;
      values.push_back(t.response_ms);
      up += t.up ? 1 : 0;
      sum += t.response_ms;
      if (t.phases) {
        ++phases;
        phase_processing += t.phases->processing_ms;
      }
    }
    const RollupSummary got = store->summarize(id, from_unix_ms(from), from_unix_ms(to));
    ASSERT_EQ(got.count, static_cast<std::int64_t>(values.size()));
    EXPECT_EQ(got.up, up);
    EXPECT_EQ(got.down, got.count - up);
    EXPECT_NEAR(got.sum_ms, sum, 1e-6 * std::max(1.0, sum));
    EXPECT_EQ(got.phase_count, phases);
    EXPECT_NEAR(got.phase_sums.processing_ms, phase_processing, 1e-6 * std::max(1.0, sum));
    if (values.empty()) return;
    // Ticks keep response times to the microsecond.
    EXPECT_NEAR(got.min_ms, *std::min_element(values.begin(), values.end()), 0.0005);
    EXPECT_NEAR(got.max_ms, *std::max_element(values.begin(), values.end()), 0.0005);
    for (double q : {0.5, 0.9, 0.95, 0.99})
      expect_within_bound(*got.percentile(q), exact_percentile(values, q));
  }

  std::unique_ptr<test::TestDatabase> db;
  std::unique_ptr<Store> store;
  std::vector<ServiceId> ids;
  std::vector<Tick> ticks;
};
INSTANTIATE_TEST_SUITE_P(Backends, RollupStore, test::kStoreBackends, test::backend_name);

TEST_P(RollupStore, SummariesOfWindowsCuttingThroughMinutesAndHoursMatchTheRawTicks) {
  generate();
  std::mt19937_64 rng(99);
  std::uniform_int_distribution<std::int64_t> instant(kBase - 40 * 60'000,
                                                      kBase + 3 * 3'600'000 + 600'000);
  // Fixed windows: exact hours, an hour plus partial minutes either side, within one minute,
  // and random ones.
  std::vector<std::pair<std::int64_t, std::int64_t>> windows = {
      {kBase, kBase + 3'600'000},
      {kBase - 1'234'567, kBase + 2 * 3'600'000 + 61'001},
      {kBase + 90'500, kBase + 110'000},
      {kBase - 3'600'000, kBase + 4 * 3'600'000}};
  for (int i = 0; i < 20; ++i) {
    auto a = instant(rng), b = instant(rng);
    windows.emplace_back(std::min(a, b), std::max(a, b));
  }
  for (const auto& [from, to] : windows)
    for (ServiceId id : ids) expect_matches_raw(id, from, to);
}

TEST_P(RollupStore, SummarizeAllEqualsEachServiceOnItsOwn) {
  generate();
  const auto from = from_unix_ms(kBase - 777'777), to = from_unix_ms(kBase + 2 * 3'600'000 + 5'555);
  const auto all = store->summarize_all(from, to);
  ASSERT_EQ(all.size(), ids.size());
  for (ServiceId id : ids) {
    const auto one = store->summarize(id, from, to);
    EXPECT_EQ(all.at(id).count, one.count);
    EXPECT_EQ(all.at(id).up, one.up);
    EXPECT_EQ(all.at(id).histogram, one.histogram);
  }
}

TEST_P(RollupStore, RollupRowsAgreeWithTheTicksTableFromOutside) {
  generate();
  expect_rows_agree_with_ticks();
}

// The writer applies a batch service by service: batches that mix services in time order must
// give the same rows, metrics and events as if each service had its own.
TEST_P(RollupStore, BatchesMixingServicesGiveEachServiceItsOwnRowsMetricAndEvents) {
  generate(/*interleaved=*/true);
  expect_rows_agree_with_ticks();
  for (const auto& [from, to] : {std::pair{kBase, kBase + 3'600'000},
                                 std::pair{kBase - 1'234'567, kBase + 2 * 3'600'000 + 61'001}})
    for (ServiceId id : ids) expect_matches_raw(id, from, to);
  for (ServiceId id : ids) {
    SCOPED_TRACE("service " + std::to_string(id));
    std::vector<Tick> own;
    std::copy_if(ticks.begin(), ticks.end(), std::back_inserter(own),
                 [&](const Tick& t) { return t.service_id == id; });
    const auto view = store->get_service(id);
    ASSERT_TRUE(view.has_value());
    EXPECT_EQ(view->metric.tick_count, static_cast<std::int64_t>(own.size()));
    EXPECT_EQ(view->metric.up_count,
              std::count_if(own.begin(), own.end(), [](const Tick& t) { return t.up; }));
    // One event per run of equal status, each ended where the next one starts.
    std::vector<std::int64_t> flips;
    for (std::size_t i = 0; i < own.size(); ++i)
      if (i == 0 || own[i].up != own[i - 1].up) flips.push_back(to_unix_ms(own[i].ts));
    auto events = store->events(id, 10'000, std::nullopt);
    std::reverse(events.begin(), events.end());  // oldest first
    ASSERT_EQ(events.size(), flips.size());
    for (std::size_t i = 0; i < events.size(); ++i) {
      EXPECT_EQ(to_unix_ms(events[i].date_started), flips[i]);
      if (i + 1 < events.size()) {
        ASSERT_TRUE(events[i].date_ended.has_value());
        EXPECT_EQ(to_unix_ms(*events[i].date_ended), flips[i + 1]);
      } else {
        EXPECT_FALSE(events[i].date_ended.has_value());
      }
    }
  }
}

TEST_P(RollupStore, RollupRowsAreListedOldestFirst) {
  generate();
  const auto hours = store->rollups(ids[0], RollupResolution::hour, from_unix_ms(kBase - 3'600'000),
                                    from_unix_ms(kBase + 10 * 3'600'000));
  ASSERT_EQ(hours.size(), 4u);  // the half hour before kBase, then three whole hours
  for (std::size_t i = 0; i < hours.size(); ++i)
    EXPECT_EQ(to_unix_ms(hours[i].first), kBase + (std::int64_t(i) - 1) * 3'600'000);
}

TEST_P(RollupStore, RetentionDeletesEachResolutionOnItsOwnInBatches) {
  generate();
  const auto rows = [&](const char* table, std::int64_t before) {
    return db->count(std::string("SELECT COUNT(*) FROM ") + table + " WHERE bucket < " +
                     std::to_string(before));
  };
  const std::int64_t cutoff = kBase + 3'600'000;
  const std::int64_t old_minutes = rows("service_rollups_minute", cutoff);
  const std::int64_t hours_before = rows("service_rollups_hour", kBase + 100 * 3'600'000);
  ASSERT_GT(old_minutes, 10);
  std::size_t deleted = 0, calls = 0;
  for (std::size_t n; (n = store->delete_rollups_older_than(RollupResolution::minute,
                                                            from_unix_ms(cutoff), 7)) > 0;
       ++calls) {
    EXPECT_LE(n, 7u);
    deleted += n;
    ASSERT_LT(calls, 10'000u);
  }
  EXPECT_EQ(static_cast<std::int64_t>(deleted), old_minutes);
  EXPECT_EQ(rows("service_rollups_minute", cutoff), 0);
  EXPECT_GT(rows("service_rollups_minute", kBase + 100 * 3'600'000), 0);  // newer ones stay
  EXPECT_EQ(rows("service_rollups_hour", kBase + 100 * 3'600'000), hours_before);  // untouched
  EXPECT_EQ(store->delete_rollups_older_than(RollupResolution::hour, from_unix_ms(cutoff), 100),
            4u);
}

TEST_P(RollupStore, PurgingAServiceDeletesItsRollups) {
  generate();
  ASSERT_TRUE(store->purge_service(ids[0]));
  for (const char* table :
       {"service_rollups_minute", "service_rollups_hour", "service_rollups_day", "service_ticks"})
    EXPECT_EQ(db->count(std::string("SELECT COUNT(*) FROM ") + table +
                        " WHERE service_id = " + std::to_string(ids[0])),
              0);
  EXPECT_EQ(store->summarize(ids[0], from_unix_ms(0), from_unix_ms(kBase * 2)).count, 0);
}

TEST_P(RollupStore, EventsOverlappingIncludeThoseStraddlingTheEdges) {
  // up at 0, down at 10 min, up at 20 min (open).
  std::vector<TickRecord> batch;
  Metric metric;
  const auto add = [&](std::int64_t t, bool up, std::optional<EventKind> opens) {
    TickRecord r;
    r.tick.service_id = ids[0];
    r.tick.ts = from_unix_ms(kBase + t);
    r.tick.up = up;
    metric.add(up, 5);
    r.metric_after = metric;
    r.opens_event = opens;
    batch.push_back(r);
  };
  add(0, true, EventKind::uptime);
  add(600'000, false, EventKind::downtime);
  add(1'200'000, true, EventKind::uptime);
  store->apply(batch);
  const auto events = [&](std::int64_t from, std::int64_t to) {
    std::vector<std::string> kinds;
    for (const auto& e :
         store->events_overlapping(ids[0], from_unix_ms(kBase + from), from_unix_ms(kBase + to)))
      kinds.emplace_back(to_string(e.kind));
    return kinds;
  };
  EXPECT_EQ(events(300'000, 900'000), (std::vector<std::string>{"uptime", "downtime"}));
  EXPECT_EQ(events(700'000, 800'000), (std::vector<std::string>{"downtime"}));
  EXPECT_EQ(events(600'000, 1'200'000), (std::vector<std::string>{"downtime"}));  // [from, to)
  EXPECT_EQ(events(5'000'000, 6'000'000), (std::vector<std::string>{"uptime"}));  // the open one
  EXPECT_TRUE(events(-900'000, -1).empty());
}

TEST_P(RollupStore, RetentionCleanerKeepsEachResolutionForItsOwnPeriod) {
  const std::int64_t now = to_unix_ms(now_ms());
  const std::int64_t day = 86'400'000;
  std::vector<TickRecord> batch;
  Metric metric;
  // Two ticks in one minute at each age, so each has a minute row (a minute's only tick is its
  // own rollup: see RetentionKeepsAMinutesOnlyTickAsLongAsMinuteRows).
  for (std::int64_t age_days : {500, 40, 1}) {
    for (std::int64_t offset : {0, 1}) {
      TickRecord r;
      r.tick.service_id = ids[0];
      r.tick.ts = from_unix_ms((now - age_days * day) / 60'000 * 60'000 + offset);
      r.tick.up = true;
      r.tick.response_ms = 3;
      metric.add(true, 3);
      r.metric_after = metric;
      batch.push_back(r);
    }
  }
  store->apply(batch);
  const auto rows = [&](const char* table) {
    return db->count(std::string("SELECT COUNT(*) FROM ") + table);
  };
  ASSERT_EQ(rows("service_rollups_minute"), 3);
  RetentionCleaner cleaner(*store, RetentionOptions{.retention = Millis(0),
                                                    .batch_size = 1,
                                                    .pause = Millis(1),
                                                    .minute_retention = Millis(30 * day),
                                                    .hour_retention = Millis(400 * day)});
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while ((rows("service_rollups_minute") > 1 || rows("service_rollups_hour") > 2 ||
          rows("service_rollups_day") > 2) &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  cleaner.stop();
  EXPECT_EQ(rows("service_rollups_minute"), 1);  // the day-old one
  EXPECT_EQ(rows("service_rollups_hour"), 2);    // 40 days and 1 day
  EXPECT_EQ(rows("service_rollups_day"), 2);     // as long as hour rows
  EXPECT_EQ(rows("service_ticks"), 6);           // RETENTION_DAYS 0: ticks stay
}

TEST_P(RollupStore, ACorruptHistogramIsAStorageErrorNotACrash) {
  generate();
  db->exec(GetParam() == test::StoreBackend::sqlite
               ? "UPDATE service_rollups_hour SET histogram = x'ff01'"
               : "UPDATE service_rollups_hour SET histogram = '\\xff01'::bytea");
  EXPECT_THROW(store->summarize(ids[0], from_unix_ms(kBase), from_unix_ms(kBase + 3'600'000)),
               StorageError);
}

TickRecord record_at(ServiceId id, std::int64_t ts, double ms, Metric& metric) {
  TickRecord r;
  r.tick.service_id = id;
  r.tick.ts = from_unix_ms(ts);
  r.tick.up = true;
  r.tick.response_ms = ms;
  metric.add(true, ms);
  r.metric_after = metric;
  return r;
}

TEST_P(RollupStore, AMinuteWithOneTickHasNoRowYetCountsLikeOne) {
  Metric metric;
  const ServiceId id = ids[0];
  store->apply({record_at(id, kBase + 10'000, 5, metric)});    // minute 0: alone
  store->apply({record_at(id, kBase + 70'000, 7, metric)});    // minute 1: two ticks, in two
  store->apply({record_at(id, kBase + 80'000, 9, metric),      // batches
                record_at(id, kBase + 130'000, 11, metric)});  // minute 2: alone
  ASSERT_EQ(db->count("SELECT COUNT(*) FROM service_rollups_minute"), 1);
  EXPECT_EQ(db->count("SELECT bucket FROM service_rollups_minute"), kBase + 60'000);
  // The first tick of the minute is in it too.
  EXPECT_EQ(db->count("SELECT count FROM service_rollups_minute"), 2);
  EXPECT_EQ(db->count("SELECT COUNT(*) FROM service_rollups_minute WHERE min_ms = 7"), 1);
  EXPECT_EQ(db->count("SELECT COUNT(*) FROM service_rollups_minute WHERE max_ms = 9"), 1);

  const auto minutes = store->rollups(id, RollupResolution::minute, from_unix_ms(kBase),
                                      from_unix_ms(kBase + 3'600'000));
  ASSERT_EQ(minutes.size(), 3u);
  EXPECT_EQ(to_unix_ms(minutes[0].first), kBase);
  EXPECT_EQ(minutes[0].second.count, 1);
  EXPECT_DOUBLE_EQ(minutes[0].second.max_ms, 5);
  EXPECT_EQ(minutes[1].second.count, 2);
  EXPECT_EQ(to_unix_ms(minutes[2].first), kBase + 120'000);
  EXPECT_EQ(minutes[2].second.count, 1);

  // Whole minutes inside a window, and minutes cut by its edges.
  EXPECT_EQ(store->summarize(id, from_unix_ms(kBase), from_unix_ms(kBase + 180'000)).count, 4);
  EXPECT_EQ(store->summarize(id, from_unix_ms(kBase + 75'000), from_unix_ms(kBase + 180'000)).count,
            2);
  const auto all = store->summarize_all(from_unix_ms(kBase), from_unix_ms(kBase + 180'000));
  EXPECT_DOUBLE_EQ(all.at(id).sum_ms, 5 + 7 + 9 + 11);

  // After a restart the writer knows no newest tick: a second tick in minute 2 still finds the
  // first one there, and the minute gets its row.
  store.reset();
  store = db->open();
  store->apply({record_at(id, kBase + 140'000, 13, metric)});
  const auto after = store->rollups(id, RollupResolution::minute, from_unix_ms(kBase + 120'000),
                                    from_unix_ms(kBase + 180'000));
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(after[0].second.count, 2);
  EXPECT_EQ(db->count("SELECT COUNT(*) FROM service_rollups_minute"), 2);
}

TEST_P(RollupStore, RetentionKeepsAMinutesOnlyTickAsLongAsMinuteRows) {
  Metric metric;
  const ServiceId id = ids[0];
  const std::int64_t day = 86'400'000;
  const std::int64_t old = (to_unix_ms(now_ms()) - 40 * day) / 60'000 * 60'000;
  store->apply({record_at(id, old, 5, metric),           // alone in its minute
                record_at(id, old + 60'000, 6, metric),  // two in the next one
                record_at(id, old + 61'000, 7, metric),
                record_at(id, old + 40 * day - 1, 8, metric)});  // recent
  const auto tick_rows = [&] { return db->count("SELECT COUNT(*) FROM service_ticks"); };
  const TimePoint cutoff = now_ms() - Millis(30 * day);
  // Minute rows kept for 50 days: the lone tick stays, the minute with a row loses its ticks.
  EXPECT_EQ(store->delete_ticks_older_than(cutoff, now_ms() - Millis(50 * day), 100), 2u);
  EXPECT_EQ(tick_rows(), 2);
  EXPECT_EQ(store->delete_ticks_older_than(cutoff, std::nullopt, 100), 0u);  // kept forever
  EXPECT_EQ(store->summarize(id, from_unix_ms(old), from_unix_ms(old + 60'000)).count, 1);
  // Minute rows kept for 35 days only: now it goes.
  EXPECT_EQ(store->delete_ticks_older_than(cutoff, now_ms() - Millis(35 * day), 100), 1u);
  EXPECT_EQ(tick_rows(), 1);
}

TEST_P(RollupStore, RetentionWalksServicesInBatchesAcrossCalls) {
  Metric ma, mb;
  std::vector<TickRecord> batch;
  for (int i = 0; i < 10; ++i) {  // ten ticks each in one minute: all have minute rows
    batch.push_back(record_at(ids[0], kBase + i * 1000, 1, ma));
    batch.push_back(record_at(ids[1], kBase + i * 1000 + 500, 1, mb));
  }
  store->apply(batch);
  std::size_t total = 0;
  for (int call = 0; call < 4; ++call) {
    const std::size_t n =
        store->delete_ticks_older_than(from_unix_ms(kBase + 8'000), std::nullopt, 5);
    EXPECT_LE(n, 5u);
    total += n;
  }
  EXPECT_EQ(total, 16u);  // 0..7 s of both
  EXPECT_EQ(store->delete_ticks_older_than(from_unix_ms(kBase + 8'000), std::nullopt, 5), 0u);
}

TEST_P(RollupStore, RecentWindowsStartAtTheHourAndFollowNewTicks) {
  generate();
  Metric metric;
  const std::int64_t now = kBase + 3 * 3'600'000 + 600'000;  // after every generated tick
  const auto check = [&](Millis window, std::int64_t expected_from) {
    const auto recent = store->summarize_all_recent(window, from_unix_ms(now));
    EXPECT_EQ(to_unix_ms(recent.from), expected_from);
    const auto exact = store->summarize_all(recent.from, from_unix_ms(now + 1));
    ASSERT_EQ(recent.services.size(), exact.size());
    for (const auto& [id, summary] : exact) {
      EXPECT_EQ(recent.services.at(id).count, summary.count);
      EXPECT_EQ(recent.services.at(id).up, summary.up);
      EXPECT_EQ(recent.services.at(id).histogram, summary.histogram);
      EXPECT_DOUBLE_EQ(recent.services.at(id).max_ms, summary.max_ms);
    }
  };
  const auto check_counts = [&](Millis window) {
    const auto summaries = store->summarize_all_recent(window, from_unix_ms(now));
    const auto counts = store->count_all_recent(window, from_unix_ms(now));
    EXPECT_EQ(counts.from, summaries.from);
    ASSERT_EQ(counts.services.size(), summaries.services.size());
    for (const auto& [id, summary] : summaries.services) {
      EXPECT_EQ(counts.services.at(id).count, summary.count);
      EXPECT_EQ(counts.services.at(id).up, summary.up);
    }
  };
  // 2 h 10 min back is 50 min into an hour: a day-long-or-more window starts at that hour.
  check(Millis(86'400'000), kBase + 3 * 3'600'000 - 86'400'000);
  check(Millis(7 * 86'400'000), kBase + 3 * 3'600'000 - 7 * 86'400'000);
  check(Millis(3'600'000), now - 3'600'000);  // shorter windows are exact
  for (const Millis window : {Millis(3'600'000), Millis(86'400'000), Millis(7 * 86'400'000)})
    check_counts(window);
  // New ticks in the current and the previous hour show at once, with the rest cached.
  store->apply({record_at(ids[0], now - 1000, 1234, metric),
                record_at(ids[1], kBase + 3 * 3'600'000 - 1000, 4321, metric)});
  check(Millis(86'400'000), kBase + 3 * 3'600'000 - 86'400'000);
  check_counts(Millis(86'400'000));
}

TEST_P(RollupStore, DayRowsBackfilledFromHourRowsEqualTheOnesWritten) {
  if (GetParam() != test::StoreBackend::sqlite)
    GTEST_SKIP() << "the day rows' backfill is a migration of SQLite files";
  generate();
  SQLite::Database sqlite(db->location(), SQLite::OPEN_READWRITE);
  const auto day_rows = [&] {
    std::vector<std::string> out;
    SQLite::Statement select(sqlite,
                             "SELECT service_id, bucket, count, up, down, min_ms, max_ms,"
                             " hex(histogram), phase_count FROM service_rollups_day"
                             " ORDER BY service_id, bucket");
    while (select.executeStep()) {
      std::string row;
      for (int i = 0; i < select.getColumnCount(); ++i)
        row += select.getColumn(i).getString() + "|";
      out.push_back(row);
    }
    return out;
  };
  const auto written = day_rows();
  ASSERT_GE(written.size(), 2u);
  sqlite.exec("DELETE FROM service_rollups_day");
  SQLite::Transaction txn(sqlite);
  rollup_sql::RollupWriter(sqlite).backfill_days_from_hours();
  txn.commit();
  EXPECT_EQ(day_rows(), written);
}

}  // namespace
}  // namespace vigil

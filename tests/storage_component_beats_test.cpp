// Liveness beats (storage/component_beats.h) on each backend (a real SQLite file, a real
// PostgreSQL server): the table's rows, and the recorder that writes them every period from
// sampled progress and removes them at a clean stop.
#include <SQLiteCpp/SQLiteCpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>

#include "storage/component_beats.h"
#include "storage/store.h"
#include "support/store_backends.h"
#include "support/target_server.h"
#include "support/vigil_process.h"

namespace vigil {
namespace {

using namespace std::chrono_literals;
using test::eventually;

class BeatsFixture : public ::testing::TestWithParam<test::StoreBackend> {
 protected:
  void SetUp() override {
    if (auto reason = test::unavailable(GetParam())) GTEST_SKIP() << *reason;
    db.emplace(GetParam());
    store = db->open();  // creates and migrates the database
    beats_store = db->database()->open_component_beats();
  }

  std::optional<test::TestDatabase> db;
  std::unique_ptr<Store> store;
  std::unique_ptr<ComponentBeatStore> beats_store;
};

INSTANTIATE_TEST_SUITE_P(Backends, BeatsFixture, test::kStoreBackends, test::backend_name);

TEST_P(BeatsFixture, RowsAreReplacedPerComponentAndInstanceAndRemovedByInstance) {
  ComponentBeatStore& beats = *beats_store;
  EXPECT_TRUE(beats.read().empty());
  const ComponentBeat runner{"runner", "eu", from_unix_ms(1000), from_unix_ms(1500), 7};
  const ComponentBeat writer{"writer", "eu", from_unix_ms(900), from_unix_ms(1500), 7};
  const ComponentBeat other{"runner", "us", from_unix_ms(800), from_unix_ms(1400), 8};
  beats.write({runner, writer, other});
  EXPECT_EQ(beats.read(), (std::vector<ComponentBeat>{runner, other, writer}));

  ComponentBeat later = runner;
  later.beat_at = from_unix_ms(2000);
  later.written_at = from_unix_ms(2100);
  beats.write({later});
  EXPECT_EQ(beats.read(), (std::vector<ComponentBeat>{later, other, writer}));

  beats.remove("eu");
  EXPECT_EQ(beats.read(), std::vector<ComponentBeat>{other});
}

TEST_P(BeatsFixture, AWriteFailsWithAStorageErrorWhileTheTableIsLocked) {
  ComponentBeatStore& beats = *beats_store;
  if (GetParam() == test::StoreBackend::sqlite) {
    SQLite::Database other(db->location(), SQLite::OPEN_READWRITE);
    other.exec("BEGIN EXCLUSIVE");
    EXPECT_THROW(beats.write({{"runner", "eu", from_unix_ms(1), from_unix_ms(1), 1}}),
                 StorageError);
    other.exec("COMMIT");
  } else {
    // Held by the test's own connection until COMMIT: the write waits out its statement
    // timeout and fails rather than blocking /healthz.
    db->exec("BEGIN; LOCK TABLE component_beats IN ACCESS EXCLUSIVE MODE");
    const auto started = std::chrono::steady_clock::now();
    EXPECT_THROW(beats.write({{"runner", "eu", from_unix_ms(1), from_unix_ms(1), 1}}),
                 StorageError);
    EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
    db->exec("COMMIT");
  }
  // The next write, the lock gone, succeeds on the same store.
  beats.write({{"runner", "eu", from_unix_ms(2), from_unix_ms(2), 1}});
  EXPECT_EQ(beats.read().size(), 1u);
}

TEST_P(BeatsFixture, TheRecorderWritesTheSampledProgressEveryPeriodAndRemovesItAtStop) {
  ComponentBeatStore& beats = *beats_store;
  std::atomic<std::int64_t> runner_ms{1'000};
  const TimePoint written = from_unix_ms(5'000);
  BeatRecorder recorder(beats,
                        [&] {
                          return std::vector<PartSample>{{"runner", from_unix_ms(runner_ms.load())},
                                                         {"alerter", from_unix_ms(900)}};
                        },
                        {.instance = "eu", .period = 20ms, .clock = [written] { return written; }});
  const auto runner_row = [&]() -> std::optional<ComponentBeat> {
    for (const auto& beat : beats.read())
      if (beat.component == "runner") return beat;
    return std::nullopt;
  };
  ASSERT_TRUE(eventually([&] { return runner_row().has_value(); }, 5s));
  EXPECT_EQ(*runner_row(),
            (ComponentBeat{"runner", "eu", from_unix_ms(1'000), written, ::getpid()}));
  EXPECT_EQ(beats.read().size(), 2u);

  // A part that progresses is seen at a later period; one that does not keeps its old beat_at.
  runner_ms = 2'000;
  ASSERT_TRUE(eventually([&] { return runner_row()->beat_at == from_unix_ms(2'000); }, 5s));
  // The row is visible as soon as the write commits, a moment before writes() counts it.
  EXPECT_TRUE(eventually([&] { return recorder.writes() >= 2u; }, 5s));
  EXPECT_EQ(beats.read().at(0).beat_at, from_unix_ms(900));  // the alerter

  recorder.stop();
  EXPECT_TRUE(beats.read().empty());
}

}  // namespace
}  // namespace vigil

// Liveness beats (storage/component_beats.h) on a real SQLite file: the table's rows, and the
// recorder that writes them every period from sampled progress and removes them at a clean stop.
#include <SQLiteCpp/SQLiteCpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>

#include "storage/component_beats.h"
#include "storage/sqlite/sqlite_database.h"
#include "storage/store.h"
#include "support/target_server.h"
#include "support/vigil_process.h"

namespace vigil {
namespace {

using namespace std::chrono_literals;
using test::eventually;

struct BeatsFixture : ::testing::Test {
  test::TempDir dir;
  std::string path = dir.file("vigil.db");
  std::unique_ptr<Store> store = open_sqlite_store(path);  // creates and migrates the file
  std::unique_ptr<ComponentBeatStore> beats_store = open_sqlite_component_beats(path);
  ComponentBeatStore& beats = *beats_store;
};

TEST_F(BeatsFixture, RowsAreReplacedPerComponentAndInstanceAndRemovedByInstance) {
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

TEST_F(BeatsFixture, AWriteFailsWithAStorageErrorWhileTheDatabaseIsLocked) {
  SQLite::Database other(path, SQLite::OPEN_READWRITE);
  other.exec("BEGIN EXCLUSIVE");
  EXPECT_THROW(beats.write({{"runner", "eu", from_unix_ms(1), from_unix_ms(1), 1}}), StorageError);
  other.exec("COMMIT");
}

TEST_F(BeatsFixture, TheRecorderWritesTheSampledProgressEveryPeriodAndRemovesItAtStop) {
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

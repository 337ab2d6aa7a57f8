// The SQLite write connection's checkpoints, run by a thread of their own: on a real file, with
// commits the size of a busy writer's, the WAL is copied back by the thread, starts over, and
// stays bounded, also while a reader holds an old snapshot.
#include <SQLiteCpp/SQLiteCpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "storage/sqlite/sqlite_checkpointer.h"
#include "storage/sqlite/sqlite_connection.h"
#include "support/eventually.h"
#include "support/target_server.h"

namespace vigil::sqlite {
namespace {

using namespace std::chrono_literals;
using test::TempDir;

constexpr std::int64_t kPageSize = 4096;
constexpr int kPagesPerCommit = 16;  // one row of 15 pages of blob, and its b-tree page

// The length of a WAL file of `pages` frames: a 32-byte header, and 24 bytes before each page.
constexpr std::uintmax_t wal_file_bytes(int pages) { return 32 + pages * (kPageSize + 24); }

std::uintmax_t wal_bytes(const std::string& path) {
  std::error_code error;
  const auto size = std::filesystem::file_size(path + "-wal", error);
  return error ? 0 : size;
}

class SqliteCheckpointer : public ::testing::Test {
 protected:
  void SetUp() override {
    writer_ = connect_for_writing(path_);
    ASSERT_EQ(writer_->execAndGet("PRAGMA page_size").getInt64(), kPageSize);
    writer_->exec("CREATE TABLE filler(id INTEGER PRIMARY KEY, data BLOB)");
  }
  // One commit of about kPagesPerCommit pages, as one of the writer's batches.
  void commit_one() {
    writer_->exec("INSERT INTO filler(data) VALUES(randomblob(" +
                  std::to_string((kPagesPerCommit - 1) * kPageSize - 100) + "))");
  }

  TempDir dir_;
  const std::string path_ = dir_.file("vigil.db");
  std::unique_ptr<SQLite::Database> writer_;
};

TEST_F(SqliteCheckpointer, TheThreadCopiesTheWalAndStartsItOver) {
  Checkpointer checkpointer(path_, *writer_);
  // Commits go on, as a busy writer's do, until the thread has passed twice and restarted the
  // WAL after each (at most ten cycles' worth).
  int commits = 0;
  const auto copied_twice = [&] { return checkpointer.restarts() >= 2; };
  while (!copied_twice() && commits < 10 * Checkpointer::kCheckpointPages / kPagesPerCommit) {
    commit_one();
    ++commits;
  }
  EXPECT_TRUE(copied_twice());
  EXPECT_GE(checkpointer.passes(), 2U);
  // (SQLite's own autocheckpoint copies on the committing thread: passes() would stay 0.) The WAL
  // started over or was bounded: this writer is faster than any disk.
  EXPECT_LE(wal_bytes(path_), wal_file_bytes(Checkpointer::kMaxWalPages + 2 * kPagesPerCommit));
  // Everything committed is in the file, for a connection of its own.
  SQLite::Database reader(path_, SQLite::OPEN_READONLY);
  EXPECT_EQ(reader.execAndGet("SELECT count(*) FROM filler").getInt(), commits);
}

TEST_F(SqliteCheckpointer, AReaderOnAnOldSnapshotDoesNotLetTheWalGrowPastItsBound) {
  Checkpointer checkpointer(path_, *writer_);
  commit_one();
  {
    // A reader in the middle of a long read: the WAL cannot start over while it lasts.
    SQLite::Database reader(path_, SQLite::OPEN_READONLY);
    SQLite::Transaction snapshot(reader);
    EXPECT_EQ(reader.execAndGet("SELECT count(*) FROM filler").getInt(), 1);
    for (int i = 0; i < Checkpointer::kCheckpointPages / kPagesPerCommit + 10; ++i) commit_one();
    EXPECT_TRUE(test::eventually([&] { return checkpointer.passes() >= 1; }));
  }
  // Once it is gone, the writer's RESTART at kMaxWalPages starts the WAL over however readers
  // come and go: the WAL file never grows much past the bound.
  for (int i = 0;
       i < (Checkpointer::kMaxWalPages + Checkpointer::kCheckpointPages) / kPagesPerCommit; ++i) {
    commit_one();
  }
  EXPECT_LE(wal_bytes(path_), wal_file_bytes(Checkpointer::kMaxWalPages + 2 * kPagesPerCommit));
}

}  // namespace
}  // namespace vigil::sqlite

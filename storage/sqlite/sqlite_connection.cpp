#include "storage/sqlite/sqlite_connection.h"

#include <sqlite3.h>

#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "storage/sqlite/sqlite_checkpointer.h"
#include "storage/sqlite/sqlite_schema.h"

namespace vigil::sqlite {
namespace {

// Idle read connections kept open; more are opened on demand and closed when returned.
constexpr std::size_t kMaxIdleReaders = 8;

// SQLite's memory statistics take a global mutex on every allocation, which every connection
// of the process then contends on; vigil never reads them. Must run before SQLite initialises,
// hence at static initialisation.
[[maybe_unused]] const int kMemoryStatisticsOff = sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);

}  // namespace

std::unique_ptr<SQLite::Database> connect_for_writing(const std::string& path) {
  auto db = std::make_unique<SQLite::Database>(
      path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE | SQLite::OPEN_NOMUTEX, kBusyTimeoutMs);
  const auto mode = db->execAndGet("PRAGMA journal_mode = WAL").getString();
  if (mode != "wal")
    throw StorageError("cannot enable WAL on " + path + " (journal_mode is " + mode + ")");
  // With WAL, NORMAL still survives a process crash with every committed transaction (the
  // WAL is written before COMMIT returns); only an OS crash or power loss may lose the last
  // transactions, never corrupt the file. It saves an fsync per commit.
  db->exec("PRAGMA synchronous = NORMAL");
  // Each batch dirties pages all over the per-service indexes and rollup tables; letting the
  // WAL grow to 64 MB (16,384 pages, not 1,000) before a checkpoint copies them back writes a
  // hot page once per many commits: measured +30 % ticks/s at 1,000-10,000 services.
  // (The store's writer hands its checkpoints to a thread of its own: sqlite_checkpointer.h.)
  db->exec("PRAGMA wal_autocheckpoint = " + std::to_string(Checkpointer::kCheckpointPages));
  db->exec("PRAGMA foreign_keys = ON");
  sqlite_schema::migrate(*db, path);
  return db;
}

void leave_checkpoints_to_the_store(SQLite::Database& db) {
  db.exec("PRAGMA wal_autocheckpoint = 0");
}

ReadPool::Lease ReadPool::acquire() {
  {
    std::lock_guard lock(mutex_);
    if (!idle_.empty()) {
      auto db = std::move(idle_.back());
      idle_.pop_back();
      return Lease(*this, std::move(db));
    }
  }
  // Opened outside the lock: opening touches the file and must not stall other readers.
  // NOMUTEX: a connection is only ever used by the thread holding its lease.
  return Lease(*this, std::make_unique<SQLite::Database>(
                          path_, SQLite::OPEN_READONLY | SQLite::OPEN_NOMUTEX, kBusyTimeoutMs));
}

void ReadPool::give_back(std::unique_ptr<SQLite::Database> db) {
  std::lock_guard lock(mutex_);
  if (idle_.size() < kMaxIdleReaders) idle_.push_back(std::move(db));
}

}  // namespace vigil::sqlite

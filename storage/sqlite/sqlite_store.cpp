#include "storage/sqlite/sqlite_store.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "core/logging.h"

namespace vigil::sqlite {

SqliteStore::SqliteStore(const std::string& path) : path_(path), readers_(path) {
  // Two processes (`vigil runner` and `vigil api`) may open a new file at the same moment.
  // Switching to WAL and migrating take locks for which SQLite may answer SQLITE_BUSY without
  // calling the busy handler, so the whole opening is retried until kBusyTimeoutMs.
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(kBusyTimeoutMs);
  for (int attempt = 0;; ++attempt) {
    try {
      open_write_connection();
      return;
    } catch (const StorageError&) {
      throw;
    } catch (const SQLite::Exception& e) {
      const bool busy =
          (e.getErrorCode() & 0xff) == SQLITE_BUSY || (e.getErrorCode() & 0xff) == SQLITE_LOCKED;
      if (!busy || std::chrono::steady_clock::now() >= deadline)
        throw StorageError("storage: cannot open database " + path + ": " + e.what());
      checkpointer_.reset();
      rollup_writer_.reset();
      apply_statements_.reset();
      db_.reset();
      std::this_thread::sleep_for(std::chrono::milliseconds(5 + 5 * std::min(attempt, 9)));
    }
  }
}

std::optional<std::string> SqliteStore::ping_failure() {
  try {
    auto db = readers_.acquire();
    // Reads a real table, so a missing or unreadable file fails, unlike "SELECT 1".
    (*db).execAndGet("SELECT COUNT(*) FROM schema_version");
    return std::nullopt;
  } catch (const std::exception& e) {
    const std::string failure = "database " + path_ + ": " + e.what();
    log_warn("storage: ping failed: " + failure);
    return failure;
  }
}

void SqliteStore::open_write_connection() {
  db_ = connect_for_writing(path_);
  apply_statements_ = std::make_unique<ApplyStatements>(*db_);
  rollup_writer_ = std::make_unique<rollup_sql::RollupWriter>(*db_);
  checkpointer_ = std::make_unique<Checkpointer>(path_, *db_);
}

}  // namespace vigil::sqlite

namespace vigil {

std::unique_ptr<Store> open_sqlite_store(const std::string& path) {
  // Read connections open the path again; a private in-memory database cannot be shared.
  if (path.empty() || path == ":memory:")
    throw StorageError("storage: '" + path + "' is not a database file path");
  return std::make_unique<sqlite::SqliteStore>(path);
}

}  // namespace vigil

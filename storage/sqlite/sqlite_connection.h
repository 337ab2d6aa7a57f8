// Connections to the SQLite file: the one way a write connection is opened (its pragmas and the
// schema migration), the pool of read connections, and the translation of the library's
// exceptions into StorageError. Internal to the SQLite backend.
#pragma once

#include <SQLiteCpp/SQLiteCpp.h>

#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "storage/store.h"

namespace vigil::sqlite {

// Long enough to ride out the other process's write transaction (vigil runner and vigil api
// share the file), short enough that a wedged lock surfaces as an error.
inline constexpr int kBusyTimeoutMs = 5000;

// Opens (creating if needed) the database at `path` for writing: WAL, synchronous NORMAL, a
// 64 MB WAL between checkpoints, foreign keys on, then migrates it to the current schema
// (sqlite_schema::migrate). The connection has no mutex of its own (NOMUTEX): its owner
// serialises every use. Throws SQLite::Exception (a busy or unreadable file) or StorageError
// (WAL refused, a schema from a newer vigil).
std::unique_ptr<SQLite::Database> connect_for_writing(const std::string& path);

// For a write connection beside the process's SqliteStore on the same file (alerts, liveness
// beats): its commits never checkpoint, since a connection's autocheckpoint copies the whole WAL
// inside its commit, holding the checkpoint lock the store's Checkpointer needs
// (sqlite_checkpointer.h), which checkpoints the file for every connection of the process.
void leave_checkpoints_to_the_store(SQLite::Database& db);

// Runs `body`, turning the library's exceptions into StorageError naming the operation, so
// callers only ever see the one documented exception type.
template <typename Body>
auto guarded(const char* operation, Body&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const ConflictError&) {
    throw;  // its message is for the API client as it is
  } catch (const StorageError& e) {
    throw StorageError(std::string("storage: ") + operation + ": " + e.what());
  } catch (const SQLite::Exception& e) {
    throw StorageError(std::string("storage: ") + operation + ": " + e.what());
  } catch (const nlohmann::json::exception& e) {
    throw StorageError(std::string("storage: ") + operation + ": bad JSON: " + e.what());
  }
}

// Read-only connections, opened on demand and handed out one per caller.
class ReadPool {
 public:
  explicit ReadPool(std::string path) : path_(std::move(path)) {}

  class Lease {
   public:
    Lease(ReadPool& pool, std::unique_ptr<SQLite::Database> db) : pool_(pool), db_(std::move(db)) {}
    ~Lease() { pool_.give_back(std::move(db_)); }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    SQLite::Database& operator*() const { return *db_; }

   private:
    ReadPool& pool_;
    std::unique_ptr<SQLite::Database> db_;
  };

  // A connection of its own to the caller, opened when none is idle. Throws SQLite::Exception.
  Lease acquire();

 private:
  void give_back(std::unique_ptr<SQLite::Database> db);

  const std::string path_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<SQLite::Database>> idle_;
};

}  // namespace vigil::sqlite

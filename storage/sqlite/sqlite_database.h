// The SQLite backend: one database file, shared by the processes of one machine (`vigil runner`
// and `vigil api`). Only main.cpp (which chooses the backend), tests, benchmarks and fuzz targets
// include this header; the rest of vigil sees the contracts of storage/.
#pragma once

#include <memory>
#include <string>

#include "storage/alert_store.h"
#include "storage/component_beats.h"
#include "storage/database.h"
#include "storage/store.h"

namespace vigil {

// The database file at `path`. Opens nothing yet: each of its open_* calls the function below
// of the same name. Throws StorageError when `path` is empty or ":memory:" (every connection
// opens the path again, and a private in-memory database cannot be shared).
std::unique_ptr<Database> open_sqlite_database(const std::string& path);

// Opens (creating if needed) the SQLite database at `path` in WAL mode and migrates it to the
// current schema: one write connection, and read connections opened on demand that read
// snapshots without waiting for a write in progress. Throws StorageError when `path` is empty or
// ":memory:", the file cannot be opened, or was written by a newer vigil (its schema_version is
// above the one this build knows).
std::unique_ptr<Store> open_sqlite_store(const std::string& path);

// The alerts tables of the database at `path`, on a write connection of its own (creating and
// migrating the file like open_sqlite_store). Throws StorageError.
std::unique_ptr<AlertStore> open_sqlite_alert_store(const std::string& path);

// The component_beats table of the database at `path`, which open_sqlite_store has created and
// migrated, on a connection of its own that waits at most a second for a lock. Throws
// StorageError when the file cannot be opened.
std::unique_ptr<ComponentBeatStore> open_sqlite_component_beats(const std::string& path);

}  // namespace vigil

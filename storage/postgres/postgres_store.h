// The PostgreSQL Store: several vigil processes (and machines) on one database.
#pragma once

#include <memory>
#include <string>

#include "storage/store.h"

namespace vigil {

// Connects to `conninfo` (a postgresql:// or postgres:// URI or libpq key=value pairs; libpq's
// PG* variables fill what it leaves out), migrates the database to the current schema and
// creates the tick partitions of the days ahead. The Store keeps one write connection
// (serialised by a mutex) and a pool of read connections, so a read never waits behind a write
// batch. Throws StorageError when the server cannot be reached (the message names host, port,
// database and user, never the password) or the database was migrated by a newer vigil.
std::unique_ptr<Store> open_postgres_store(const std::string& conninfo);

// The schema version this build migrates PostgreSQL databases to.
int postgres_schema_version();

}  // namespace vigil

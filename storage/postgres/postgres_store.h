// The PostgreSQL backend: several vigil processes (and machines) on one database. Only main.cpp
// (which chooses the backend), tests, benchmarks and fuzz targets include this header; the rest
// of vigil sees the contracts of storage/.
//
// `conninfo` is a postgresql:// or postgres:// URI or libpq key=value pairs; libpq's PG*
// variables fill what it leaves out. Every error names the server by host, port, database and
// user, never by its password.
#pragma once

#include <memory>
#include <string>

#include "storage/alert_store.h"
#include "storage/component_beats.h"
#include "storage/database.h"
#include "storage/store.h"

namespace vigil {

// The database `conninfo` names. Connects to nothing yet: each of its open_* calls the function
// below of the same name.
std::unique_ptr<Database> open_postgres_database(const std::string& conninfo);

// Connects to `conninfo`, migrates the database to the current schema and creates the tick
// partitions of the days ahead. The Store keeps one write connection (serialised by a mutex) and
// a pool of read connections, so a read never waits behind a write batch. Throws StorageError
// when the server cannot be reached or the database was migrated by a newer vigil.
std::unique_ptr<Store> open_postgres_store(const std::string& conninfo);

// The alerts, notifications and maintenance windows of the database, on a connection of its own
// (reconnected by the next call after it is lost) whose statements are cancelled after 5 s (a
// lock held elsewhere or a stuck server fails the call with StorageError rather than hanging). The
// schema must have been migrated by open_postgres_store. Throws StorageError when the server cannot
// be reached.
std::unique_ptr<AlertStore> open_postgres_alert_store(const std::string& conninfo);

// The component_beats table of the database, on a connection of its own whose statements are
// cancelled after a second (so /healthz answers promptly), reconnected by the next call after it
// is lost. The schema must have been migrated by open_postgres_store. Throws StorageError when
// the server cannot be reached.
std::unique_ptr<ComponentBeatStore> open_postgres_component_beats(const std::string& conninfo);

// The cluster_members and cluster_shards tables (storage/cluster.h), on a connection of its own
// whose statements are bounded by a fifth of `lease` (at least 0.5 s), reconnected by the next
// call after it is lost. The schema must have been migrated by open_postgres_store. Throws
// StorageError when the server cannot be reached.
std::unique_ptr<ClusterStore> open_postgres_cluster_store(const std::string& conninfo,
                                                          Millis lease);

// The schema version this build migrates PostgreSQL databases to.
int postgres_schema_version();

}  // namespace vigil

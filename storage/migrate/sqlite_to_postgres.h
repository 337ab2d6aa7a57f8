// `vigil migrate`: copies a SQLite database (storage/sqlite/) into an empty PostgreSQL one
// (storage/postgres/), every row of user data with its ids, so that vigil on the copy answers as
// it did on the file. A library above both backends: it reads the SQLite schema and writes the
// PostgreSQL schema directly, with one explicit column mapping per table (kCopiedTables in the
// .cpp), rather than through the runtime Store contract, which has no bulk export.
//
// What is copied: regions, services (every column: ids, push tokens, revisions), the tombstones
// of purged services (so their ids are never given again), metrics, events, raw ticks, minute,
// hour and day rollups, beats pushed and not yet taken, alerts, notifications with their delivery
// state, and the maintenance windows created through the API. Not copied: component_beats (the
// liveness of the processes that wrote the file: the processes on the new database write their
// own) and schema_version (the target keeps its own).
//
// Threads: one call at a time per target; the call is the calling thread's alone.
#pragma once

#include <cstdint>
#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

namespace vigil {

// The copy was refused before anything was written: the source's schema version is not this
// vigil's, or the target already holds vigil data. The message says why and what to do.
class MigrateRefused : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The copy failed: the source could not be read, the target could not be reached, or a row was
// refused. Nothing was committed. The message never contains the target's password.
class MigrateFailed : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct MigrateOptions {
  // Rows sent in one COPY, and the rows between two progress lines of a table that has more.
  std::size_t chunk_rows = 50'000;
};

struct TableCopied {
  std::string table;
  std::int64_t rows = 0;
};

struct MigrateSummary {
  std::string target;               // host, port, database and user; never the password
  std::vector<TableCopied> tables;  // in the order they were copied, empty tables included
};

// Copies the SQLite database at `sqlite_path` into the PostgreSQL database `conninfo` (a
// postgresql:// or postgres:// URI or libpq key=value pairs; libpq's PG* variables fill what it
// leaves out), all or nothing:
// - The source is opened read-only and read in one read transaction (a consistent snapshot,
//   even while a vigil process writes to it). Its schema version must be this vigil's
//   (MigrateRefused otherwise: open it once with this vigil, which migrates it).
// - The target is first migrated to the current PostgreSQL schema (its own transaction, as
//   `vigil run` would), then everything is copied in one transaction, with COPY, which first
//   locks the tables and checks they hold no vigil data (MigrateRefused naming the tables that
//   do). Tick partitions are created for the days the ticks need, identity sequences are moved
//   past the copied ids, and the rows copied are checked against the rows counted in the source.
// - On any failure the transaction is rolled back: the target holds no more than its empty
//   schema. MigrateFailed says why.
// Progress goes to `progress` as lines "migrate: <table> <copied>/<total>" after every
// options.chunk_rows rows of a table that has more than that. Returns the rows copied per table.
MigrateSummary migrate_sqlite_to_postgres(const std::string& sqlite_path,
                                          const std::string& conninfo, std::ostream& progress,
                                          const MigrateOptions& options = {});

// The tables migrate_sqlite_to_postgres copies, in order, and those of the SQLite schema it
// leaves out on purpose. Every table of the current SQLite schema is in one of the two lists.
std::vector<std::string> migrated_tables();
std::vector<std::string> tables_not_migrated();

}  // namespace vigil

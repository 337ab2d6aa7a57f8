// The Store backends the storage suites run against, each test on a database of its own: a
// SQLite file in a temp dir, or a fresh PostgreSQL database.
//
// PostgreSQL: one server serves a whole ctest run (the postgres_fixture setup test starts it and
// names it in the file VIGIL_TEST_POSTGRES_INFO points to); a test binary run by hand without
// that variable starts its own. Each TestDatabase is a schema of its own in one database of that
// server (the store's connections name it in search_path): creating a schema costs a
// millisecond where CREATE DATABASE copies the system catalogs (about 0.6 s on a loaded CI
// machine). Tests of a backend that cannot run here skip with the reason (unavailable()).
//
// Use: a fixture derived from StoreBackendTest (below), instantiated over kStoreBackends with
// backend_name. Not thread-safe; the stores it opens are.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>

#include "storage/database.h"
#include "storage/postgres/connection.h"
#include "storage/store.h"
#include "support/target_server.h"

namespace vigil::test {

enum class StoreBackend { sqlite, postgres };

inline const auto kStoreBackends = ::testing::Values(StoreBackend::sqlite, StoreBackend::postgres);
// For the tests of a suite where the store is incidental (HTTP parsing, routing, process
// handling): SQLite only, which keeps the suite's cost down. Say so where it is used.
inline const auto kSqliteOnly = ::testing::Values(StoreBackend::sqlite);
// "sqlite" or "postgres": the suffix of a parameterized test's name.
std::string backend_name(const ::testing::TestParamInfo<StoreBackend>& info);

// Why `backend` cannot run on this machine (PostgreSQL 15 not installed, the shared server did
// not start), or nothing when it can.
std::optional<std::string> unavailable(StoreBackend backend);

// The database of the server whose schemas the PostgreSQL TestDatabases are.
inline constexpr const char* kPostgresTestDatabase = "vigil_tests";
// Creates kPostgresTestDatabase on the server `server_conninfo` (no dbname).
void create_postgres_test_database(const std::string& server_conninfo);

// Runs `sql` on the SQLite file `path`, opened read-only: the integer in its first row and column.
std::int64_t sqlite_count(const std::string& path, const std::string& sql);

// Prints a backend as its name in test names and failure messages.
void PrintTo(StoreBackend backend, std::ostream* out);

class TestDatabase {
 public:
  // A new, empty database of `backend`. Throws std::runtime_error when the backend is
  // unavailable.
  explicit TestDatabase(StoreBackend backend);
  // Drops the PostgreSQL schema with everything in it; removes the SQLite file.
  ~TestDatabase();
  TestDatabase(const TestDatabase&) = delete;
  TestDatabase& operator=(const TestDatabase&) = delete;

  StoreBackend backend() const { return backend_; }
  // Opens a Store on it (again: a reopening sees what the last one wrote).
  std::unique_ptr<Store> open() const;
  // The backend's Database on it, for its AlertStore and ComponentBeatStore (open() or
  // open_store() first: it migrates).
  std::unique_ptr<Database> database() const;
  // Runs `sql` on a connection of its own, the way an operator's shell would: the integer in
  // its first row and column.
  std::int64_t count(const std::string& sql) const;
  // The same, for a text: the first row's first column; empty when there is no row or it is NULL.
  std::string text(const std::string& sql) const;
  // Runs `sql` (statements without results) on a connection of its own.
  void exec(const std::string& sql) const;
  // The SQLite file, or the PostgreSQL conninfo (with its password: for tests only), whose
  // sessions have the schema's name as application_name.
  const std::string& location() const { return location_; }
  // The environment that points a vigil process at it (VigilProcess's extra_env): `more` with
  // DB_FILE, or DATABASE_URL, added.
  std::map<std::string, std::string> vigil_environment(
      std::map<std::string, std::string> more = {}) const {
    more[backend_ == StoreBackend::sqlite ? "DB_FILE" : "DATABASE_URL"] = location_;
    return more;
  }

 private:
  StoreBackend backend_;
  TempDir dir_;
  std::string location_;
  std::string schema_;  // PostgreSQL only
  // The connection count() and exec() use on PostgreSQL, opened on first use.
  mutable std::unique_ptr<postgres::Connection> outside_;
};

// A value-parameterized fixture over kStoreBackends: each test has a new database of its
// backend (database()), or is skipped with the reason that backend cannot run here. A derived
// SetUp calls this one first and returns at once when IsSkipped().
class StoreBackendTest : public ::testing::TestWithParam<StoreBackend> {
 protected:
  void SetUp() override {
    if (auto reason = unavailable(GetParam())) GTEST_SKIP() << *reason;
    database_.emplace(GetParam());
  }
  // The test's database; only after a SetUp that was not skipped.
  TestDatabase& database() { return *database_; }
  StoreBackend backend() const { return GetParam(); }

 private:
  std::optional<TestDatabase> database_;
};

}  // namespace vigil::test

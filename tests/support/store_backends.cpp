#include "support/store_backends.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <stdexcept>

#include "storage/postgres/postgres_store.h"
#include "storage/sqlite/sqlite_database.h"
#include "support/postgres_server.h"

namespace vigil::test {
namespace {

// The PostgreSQL server of this process's tests: the ctest run's, or one of its own.
struct SharedServer {
  std::string conninfo;  // without dbname
  std::optional<std::string> unavailable;
  std::unique_ptr<PostgresServer> own;
};

SharedServer load_shared_server() {
  SharedServer shared;
  if (const char* info = std::getenv("VIGIL_TEST_POSTGRES_INFO"); info && *info) {
    std::ifstream in(info);
    std::string key;
    if (!(in >> key)) {
      shared.unavailable = std::string("no PostgreSQL server for this test: cannot read ") + info +
                           " (written by the postgres_fixture setup test)";
      return shared;
    }
    std::string rest;
    std::getline(in, rest);
    if (!rest.empty() && rest[0] == ' ') rest.erase(0, 1);
    if (key == "conninfo")
      shared.conninfo = rest;
    else
      shared.unavailable = "no PostgreSQL server for this test: " + rest;
    return shared;
  }
  if (auto reason = PostgresServer::unavailable_reason()) {
    shared.unavailable = "no PostgreSQL server for this test: " + *reason;
    return shared;
  }
  try {
    shared.own = std::make_unique<PostgresServer>(kPostgresTestDatabase);
    shared.conninfo = shared.own->server_conninfo();
  } catch (const std::exception& e) {
    shared.unavailable =
        std::string("no PostgreSQL server for this test: it did not start: ") + e.what();
  }
  return shared;
}

SharedServer& shared_server() {
  static SharedServer shared = load_shared_server();
  return shared;
}

// Runs `sql` on one connection to kPostgresTestDatabase shared by the process's tests.
void administer(const std::string& sql) {
  static std::mutex mutex;
  static std::unique_ptr<postgres::Connection> admin;
  std::lock_guard lock(mutex);
  if (!admin || !admin->ok())
    admin = std::make_unique<postgres::Connection>(shared_server().conninfo +
                                                   " dbname=" + kPostgresTestDatabase);
  admin->exec(sql);
}

}  // namespace

std::int64_t sqlite_count(const std::string& path, const std::string& sql) {
  SQLite::Database db(path, SQLite::OPEN_READONLY);
  return db.execAndGet(sql).getInt64();
}

std::string backend_name(const ::testing::TestParamInfo<StoreBackend>& info) {
  return info.param == StoreBackend::sqlite ? "sqlite" : "postgres";
}

std::optional<std::string> unavailable(StoreBackend backend) {
  if (backend == StoreBackend::sqlite) return std::nullopt;
  return shared_server().unavailable;
}

void create_postgres_test_database(const std::string& server_conninfo) {
  postgres::Connection admin(server_conninfo + " dbname=postgres");
  admin.exec(std::string("CREATE DATABASE ") + kPostgresTestDatabase);
}

void PrintTo(StoreBackend backend, std::ostream* out) {
  *out << (backend == StoreBackend::sqlite ? "sqlite" : "postgres");
}

TestDatabase::TestDatabase(StoreBackend backend) : backend_(backend) {
  if (backend == StoreBackend::sqlite) {
    location_ = dir_.file("vigil.db");
    return;
  }
  if (auto reason = unavailable(backend)) throw std::runtime_error(*reason);
  static std::atomic<int> counter{0};
  schema_ = "test_" + std::to_string(::getpid()) + "_" + std::to_string(++counter);
  administer("CREATE SCHEMA " + schema_);
  // application_name: how a test finds its store's sessions in pg_stat_activity.
  location_ = shared_server().conninfo + " dbname=" + kPostgresTestDatabase +
              " options='-c search_path=" + schema_ + "' application_name=" + schema_;
}

TestDatabase::~TestDatabase() {
  if (schema_.empty()) return;
  outside_.reset();
  try {
    administer("DROP SCHEMA " + schema_ + " CASCADE");
  } catch (const std::exception& e) {
    ADD_FAILURE() << "cannot drop the test schema " << schema_ << ": " << e.what();
  }
}

std::unique_ptr<Store> TestDatabase::open() const {
  return backend_ == StoreBackend::sqlite ? open_sqlite_store(location_)
                                          : open_postgres_store(location_);
}

std::unique_ptr<Database> TestDatabase::database() const {
  return backend_ == StoreBackend::sqlite ? open_sqlite_database(location_)
                                          : open_postgres_database(location_);
}

std::int64_t TestDatabase::count(const std::string& sql) const {
  if (backend_ == StoreBackend::sqlite) {
    SQLite::Database db(location_, SQLite::OPEN_READONLY);
    return db.execAndGet(sql).getInt64();
  }
  if (!outside_) outside_ = std::make_unique<postgres::Connection>(location_);
  const auto value = outside_->exec(sql).get(0, 0);
  return value ? std::stoll(*value) : 0;
}

std::string TestDatabase::text(const std::string& sql) const {
  if (backend_ == StoreBackend::sqlite) {
    SQLite::Database db(location_, SQLite::OPEN_READONLY);
    SQLite::Statement query(db, sql);
    return query.executeStep() && !query.getColumn(0).isNull() ? query.getColumn(0).getString()
                                                               : std::string();
  }
  if (!outside_) outside_ = std::make_unique<postgres::Connection>(location_);
  const auto rows = outside_->exec(sql);
  if (rows.rows() == 0) return {};
  return rows.get(0, 0).value_or("");
}

void TestDatabase::exec(const std::string& sql) const {
  if (backend_ == StoreBackend::sqlite) {
    SQLite::Database db(location_, SQLite::OPEN_READWRITE);
    db.exec(sql);
    return;
  }
  if (!outside_) outside_ = std::make_unique<postgres::Connection>(location_);
  outside_->exec(sql);
}

}  // namespace vigil::test

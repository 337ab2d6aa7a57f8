#include "support/store_backends.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <stdexcept>

#include "storage/postgres/connection.h"
#include "storage/postgres/postgres_store.h"
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
    shared.own = std::make_unique<PostgresServer>("vigil_test");
    shared.conninfo = shared.own->server_conninfo();
    create_postgres_template(shared.conninfo);
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

}  // namespace

std::string backend_name(const ::testing::TestParamInfo<StoreBackend>& info) {
  return info.param == StoreBackend::sqlite ? "sqlite" : "postgres";
}

std::optional<std::string> unavailable(StoreBackend backend) {
  if (backend == StoreBackend::sqlite) return std::nullopt;
  return shared_server().unavailable;
}

void create_postgres_template(const std::string& server_conninfo) {
  {
    postgres::Connection admin(server_conninfo + " dbname=postgres");
    admin.exec(std::string("CREATE DATABASE ") + kPostgresTemplate);
  }
  // Opening migrates it and creates the partitions of the days around today.
  open_postgres_store(server_conninfo + " dbname=" + kPostgresTemplate).reset();
}

TestDatabase::TestDatabase(StoreBackend backend) : backend_(backend) {
  if (backend == StoreBackend::sqlite) {
    location_ = dir_.file("vigil.db");
    return;
  }
  if (auto reason = unavailable(backend)) throw std::runtime_error(*reason);
  static std::atomic<int> counter{0};
  database_ = "vigil_t" + std::to_string(::getpid()) + "_" + std::to_string(++counter);
  postgres::Connection admin(shared_server().conninfo + " dbname=postgres");
  admin.exec("CREATE DATABASE " + database_ + " TEMPLATE " + kPostgresTemplate);
  location_ = shared_server().conninfo + " dbname=" + database_;
}

TestDatabase::~TestDatabase() {
  if (database_.empty()) return;
  try {
    postgres::Connection admin(shared_server().conninfo + " dbname=postgres");
    admin.exec("DROP DATABASE IF EXISTS " + database_ + " WITH (FORCE)");
  } catch (const std::exception& e) {
    ADD_FAILURE() << "cannot drop the test database " << database_ << ": " << e.what();
  }
}

std::unique_ptr<Store> TestDatabase::open() const {
  return backend_ == StoreBackend::sqlite ? open_sqlite_store(location_)
                                          : open_postgres_store(location_);
}

std::int64_t TestDatabase::count(const std::string& sql) const {
  if (backend_ == StoreBackend::sqlite) {
    SQLite::Database db(location_, SQLite::OPEN_READONLY);
    return db.execAndGet(sql).getInt64();
  }
  postgres::Connection connection(location_);
  const auto value = connection.exec(sql).get(0, 0);
  return value ? std::stoll(*value) : 0;
}

void TestDatabase::exec(const std::string& sql) const {
  if (backend_ == StoreBackend::sqlite) {
    SQLite::Database db(location_, SQLite::OPEN_READWRITE);
    db.exec(sql);
    return;
  }
  postgres::Connection connection(location_);
  connection.exec(sql);
}

}  // namespace vigil::test

#include "storage/sqlite/sqlite_database.h"

#include <memory>
#include <string>

namespace vigil {
namespace {

class SqliteDatabase final : public Database {
 public:
  explicit SqliteDatabase(std::string path) : path_(std::move(path)) {}

  std::unique_ptr<Store> open_store() override { return open_sqlite_store(path_); }
  std::unique_ptr<AlertStore> open_alert_store() override { return open_sqlite_alert_store(path_); }
  std::unique_ptr<ComponentBeatStore> open_component_beats() override {
    return open_sqlite_component_beats(path_);
  }
  // One file is one machine's data: a single process probes everything.
  std::unique_ptr<ClusterStore> open_cluster_store(Millis) override { return nullptr; }

 private:
  const std::string path_;
};

}  // namespace

std::unique_ptr<Database> open_sqlite_database(const std::string& path) {
  if (path.empty() || path == ":memory:")
    throw StorageError("storage: '" + path + "' is not a database file path");
  return std::make_unique<SqliteDatabase>(path);
}

}  // namespace vigil

#include <memory>
#include <string>

#include "storage/postgres/postgres_store.h"

namespace vigil {
namespace {

class PostgresDatabase final : public Database {
 public:
  explicit PostgresDatabase(std::string conninfo) : conninfo_(std::move(conninfo)) {}

  std::unique_ptr<Store> open_store() override { return open_postgres_store(conninfo_); }
  std::unique_ptr<AlertStore> open_alert_store() override {
    return open_postgres_alert_store(conninfo_);
  }
  std::unique_ptr<ComponentBeatStore> open_component_beats() override {
    return open_postgres_component_beats(conninfo_);
  }
  std::unique_ptr<ClusterStore> open_cluster_store(Millis lease) override {
    return open_postgres_cluster_store(conninfo_, lease);
  }

 private:
  const std::string conninfo_;
};

}  // namespace

std::unique_ptr<Database> open_postgres_database(const std::string& conninfo) {
  return std::make_unique<PostgresDatabase>(conninfo);
}

}  // namespace vigil

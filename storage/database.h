// Database: one backend's way to open the storage contracts on one database. main.cpp chooses
// the backend (storage/sqlite/sqlite_database.h, storage/postgres/) and hands the rest of vigil
// only these contracts, so runner/, alerting/ and api/ never name a backend.
//
// Thread-safety: the opening methods may be called from any thread. What they return is owned
// by the caller and may outlive the Database.
#pragma once

#include <memory>

#include "storage/alert_store.h"
#include "storage/cluster.h"
#include "storage/component_beats.h"
#include "storage/store.h"

namespace vigil {

class Database {
 public:
  virtual ~Database() = default;

  // Each call opens a new connection (or pool) of its own; none is shared with another call.
  // open_store() creates the schema or migrates it to the current version, which the others
  // rely on: call it first. Each throws StorageError when the database cannot be reached or
  // opened, or was migrated by a newer vigil.
  virtual std::unique_ptr<Store> open_store() = 0;
  virtual std::unique_ptr<AlertStore> open_alert_store() = 0;
  virtual std::unique_ptr<ComponentBeatStore> open_component_beats() = 0;
  // The members and shard leases of a cluster (storage/cluster.h), with statements bounded for
  // a `lease`. nullptr for a backend that holds one machine's data (SQLite): no cluster there.
  virtual std::unique_ptr<ClusterStore> open_cluster_store(Millis lease) = 0;
};

}  // namespace vigil

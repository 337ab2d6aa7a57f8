// Store: every operation the runner and the API need from the database, and nothing about SQL.
// The SQLite implementation is the embedded default; another backend (PostgreSQL, for several
// vigil instances) implements the same interface without touching runner/ or api/.
//
// Thread-safety: every method may be called from any thread. Writes (sync_services, apply) are
// serialised on one write connection; reads use their own connections and never block on a
// write in progress (WAL). Errors are reported by throwing StorageError.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "storage/model.h"

namespace vigil {

class StorageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What sync_services did, by service name.
struct SyncResult {
  std::vector<std::string> inserted;
  std::vector<std::string> updated;
  std::vector<std::string> deactivated;
};

// A service with what the API shows next to it.
struct ServiceView {
  Service service;
  Metric metric;                    // zeros before the first tick
  std::optional<Event> open_event;  // current_status; empty before the first tick
};

struct TickQuery {
  std::optional<TimePoint> from;  // inclusive
  std::optional<TimePoint> to;    // inclusive
  int limit = 100;
};

class Store {
 public:
  virtual ~Store() = default;

  // Makes the active set of services equal to `specs`, matched by name: new names are inserted,
  // changed specs updated, stored services whose name is absent are marked inactive (their
  // history is kept). A previously inactive service that reappears is reactivated.
  virtual SyncResult sync_services(const std::vector<ServiceSpec>& specs, TimePoint now) = 0;

  // Active services, ordered by id.
  virtual std::vector<Service> active_services() = 0;

  // The runner's starting state for each service that has ticks, keyed by id: its metric and
  // its open event. Services never probed are absent.
  virtual std::unordered_map<ServiceId, ServiceRuntime> load_runtime() = 0;

  // Writes a batch in one transaction: the ticks, each service's metric after its last tick in
  // the batch, and the event changes (for a record with opens_event: the open event of that
  // service gets date_ended = tick.ts, and a new open event of that kind starts at tick.ts).
  // Either all of it is committed or none of it (StorageError).
  virtual void apply(const std::vector<TickRecord>& batch) = 0;

  // API reads. Active services only for lists; get_service also finds inactive ones.
  virtual std::vector<ServiceView> list_services() = 0;
  virtual std::optional<ServiceView> get_service(ServiceId id) = 0;

  // Events of a service, newest first; with `before`, only events whose id is smaller.
  virtual std::vector<Event> events(ServiceId id, int limit,
                                    std::optional<std::int64_t> before) = 0;

  // Ticks of a service within [from, to], newest first.
  virtual std::vector<Tick> ticks(ServiceId id, const TickQuery& query) = 0;

  // True when a trivial read succeeds (used by /healthz).
  virtual bool ping() = 0;
};

// Opens (creating if needed) the SQLite database at `path` in WAL mode and migrates it to the
// current schema. Throws StorageError when the file cannot be opened, or was written by a newer
// vigil (its schema_version is above the one this build knows).
std::unique_ptr<Store> open_sqlite_store(const std::string& path);

}  // namespace vigil

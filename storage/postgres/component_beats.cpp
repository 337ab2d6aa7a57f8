// PostgresComponentBeatStore: the beats in the component_beats table, on a connection of its own.
#include "storage/component_beats.h"

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "storage/postgres/postgres_store.h"
#include "storage/postgres/store_impl.h"

namespace vigil::postgres {
namespace {

// Short: /healthz of `vigil api` reads through this connection and must answer promptly (a
// stuck server fails the read instead of holding the request), and a beat that cannot be
// written within it is simply written at the next period.
constexpr std::chrono::milliseconds kBeatsStatementTimeout{1000};

class PostgresComponentBeatStore final : public ComponentBeatStore {
 public:
  // Connects to `conninfo`, whose schema open_postgres_store has migrated. Throws StorageError.
  explicit PostgresComponentBeatStore(std::string conninfo);

  void write(const std::vector<ComponentBeat>& beats) override;
  void remove(const std::string& instance) override;
  std::vector<ComponentBeat> read() override;

 private:
  // The session (SessionHolder::get). Needs mutex_.
  Session& session() { return session_.get(); }

  std::mutex mutex_;
  SessionHolder session_;  // guarded by mutex_
};

PostgresComponentBeatStore::PostgresComponentBeatStore(std::string conninfo)
    : session_(std::move(conninfo), SessionLimits::answering_within(kBeatsStatementTimeout)) {
  try {
    session_.get();
  } catch (const PgError& e) {
    throw StorageError(std::string("storage: cannot open beats in the PostgreSQL database: ") +
                       e.what());
  }
}

void PostgresComponentBeatStore::write(const std::vector<ComponentBeat>& beats) {
  if (beats.empty()) return;
  ArrayText components, instances, beat_at, written_at, pids;
  for (const auto& beat : beats) {
    components.add(std::optional<std::string>(beat.component));
    instances.add(std::optional<std::string>(beat.instance));
    beat_at.add(ms(beat.beat_at));
    written_at.add(ms(beat.written_at));
    pids.add(beat.pid);
  }
  std::lock_guard lock(mutex_);
  // One statement: one transaction. DISTINCT ON keeps the last of a (component, instance) given
  // twice, as SQLite's INSERT OR REPLACE row by row does.
  guarded("writing beats", [&] {
    session().run(
        "INSERT INTO component_beats(component, instance, beat_at, written_at, pid) "
        "SELECT DISTINCT ON (c, i) c, i, b, w, p FROM unnest($1::text[], $2::text[], "
        "$3::bigint[], $4::bigint[], $5::bigint[]) WITH ORDINALITY AS u(c, i, b, w, p, n) "
        "ORDER BY c, i, n DESC "
        "ON CONFLICT (component, instance) DO UPDATE SET beat_at = EXCLUDED.beat_at, "
        "written_at = EXCLUDED.written_at, pid = EXCLUDED.pid",
        {components.str(), instances.str(), beat_at.str(), written_at.str(), pids.str()});
  });
}

void PostgresComponentBeatStore::remove(const std::string& instance) {
  std::lock_guard lock(mutex_);
  guarded("removing beats", [&] {
    session().run("DELETE FROM component_beats WHERE instance = $1", {without_nul(instance)});
  });
}

std::vector<ComponentBeat> PostgresComponentBeatStore::read() {
  std::lock_guard lock(mutex_);
  return guarded("reading beats", [&] {
    // COLLATE "C": byte order, as SQLite's BINARY comparison sorts text.
    const auto rows = session().run(
        "SELECT component, instance, beat_at, written_at, pid FROM component_beats "
        "ORDER BY component COLLATE \"C\", instance COLLATE \"C\"");
    std::vector<ComponentBeat> beats;
    for (int row = 0; row < rows.rows(); ++row) {
      beats.push_back(ComponentBeat{text_at(rows, row, 0), text_at(rows, row, 1),
                                    from_unix_ms(int_at(rows, row, 2)),
                                    from_unix_ms(int_at(rows, row, 3)), int_at(rows, row, 4)});
    }
    return beats;
  });
}

}  // namespace
}  // namespace vigil::postgres

namespace vigil {

std::unique_ptr<ComponentBeatStore> open_postgres_component_beats(const std::string& conninfo) {
  return std::make_unique<postgres::PostgresComponentBeatStore>(conninfo);
}

}  // namespace vigil

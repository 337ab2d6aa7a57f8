// SqliteComponentBeatStore: the beats in the component_beats table, on a connection of its own.
#include <SQLiteCpp/SQLiteCpp.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "storage/component_beats.h"
#include "storage/sqlite/sqlite_connection.h"
#include "storage/sqlite/sqlite_database.h"

namespace vigil::sqlite {
namespace {

// Short: /healthz of `vigil api` reads through this connection and must answer promptly, and a
// beat that cannot be written within it is simply written at the next period.
constexpr int kBeatsBusyTimeoutMs = 1000;

class SqliteComponentBeatStore final : public ComponentBeatStore {
 public:
  // Opens the existing database at `path` (open_sqlite_store creates and migrates it).
  explicit SqliteComponentBeatStore(const std::string& path);

  void write(const std::vector<ComponentBeat>& beats) override;
  void remove(const std::string& instance) override;
  std::vector<ComponentBeat> read() override;

 private:
  std::mutex mutex_;
  std::unique_ptr<SQLite::Database> db_;  // guarded by mutex_
};

SqliteComponentBeatStore::SqliteComponentBeatStore(const std::string& path) {
  guarded(("cannot open " + path + " for beats").c_str(), [&] {
    db_ = std::make_unique<SQLite::Database>(path, SQLite::OPEN_READWRITE, kBeatsBusyTimeoutMs);
    leave_checkpoints_to_the_store(*db_);
    return 0;
  });
}

void SqliteComponentBeatStore::write(const std::vector<ComponentBeat>& beats) {
  std::lock_guard lock(mutex_);
  guarded("writing beats", [&] {
    SQLite::Transaction transaction(*db_);
    SQLite::Statement upsert(*db_,
                             "INSERT OR REPLACE INTO component_beats(component, instance, beat_at, "
                             "written_at, pid) VALUES(?, ?, ?, ?, ?)");
    for (const auto& beat : beats) {
      upsert.bind(1, beat.component);
      upsert.bind(2, beat.instance);
      upsert.bind(3, static_cast<std::int64_t>(to_unix_ms(beat.beat_at)));
      upsert.bind(4, static_cast<std::int64_t>(to_unix_ms(beat.written_at)));
      upsert.bind(5, beat.pid);
      upsert.exec();
      upsert.reset();
    }
    transaction.commit();
    return 0;
  });
}

void SqliteComponentBeatStore::remove(const std::string& instance) {
  std::lock_guard lock(mutex_);
  guarded("removing beats", [&] {
    SQLite::Statement remove(*db_, "DELETE FROM component_beats WHERE instance = ?");
    remove.bind(1, instance);
    return remove.exec();
  });
}

std::vector<ComponentBeat> SqliteComponentBeatStore::read() {
  std::lock_guard lock(mutex_);
  return guarded("reading beats", [&] {
    std::vector<ComponentBeat> beats;
    SQLite::Statement rows(*db_,
                           "SELECT component, instance, beat_at, written_at, pid FROM "
                           "component_beats ORDER BY component, instance");
    while (rows.executeStep()) {
      beats.push_back(ComponentBeat{rows.getColumn(0).getString(), rows.getColumn(1).getString(),
                                    from_unix_ms(rows.getColumn(2).getInt64()),
                                    from_unix_ms(rows.getColumn(3).getInt64()),
                                    rows.getColumn(4).getInt64()});
    }
    return beats;
  });
}

}  // namespace
}  // namespace vigil::sqlite

namespace vigil {

std::unique_ptr<ComponentBeatStore> open_sqlite_component_beats(const std::string& path) {
  return std::make_unique<sqlite::SqliteComponentBeatStore>(path);
}

}  // namespace vigil

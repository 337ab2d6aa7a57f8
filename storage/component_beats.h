// Liveness beats: the process that runs the runner records, every few seconds, when each of its
// parts (runner loop, writer, alerter) last made progress, in the component_beats table. Another
// process on the same database (`vigil api`) reads them to tell a dead or hung runner process
// from a live one: a beat that stops advancing is the sign, whatever killed or froze it.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/model.h"

namespace SQLite {
class Database;
}

namespace vigil {

// One row of component_beats.
struct ComponentBeat {
  std::string component;  // "runner", "writer", "alerter"
  std::string instance;   // PROBER_REGION of the process that runs it
  TimePoint beat_at;      // when the part last made progress
  TimePoint written_at;   // when the row was written
  std::int64_t pid = 0;   // the process that wrote it
  friend bool operator==(const ComponentBeat&, const ComponentBeat&) = default;
};

// The component_beats table, on a connection of its own (so neither a writer batch nor an API
// read waits behind it in this process). Thread-safe: calls are serialised on that connection.
class ComponentBeatStore {
 public:
  // Opens the database at `path`, which open_sqlite_store has created and migrated. Throws
  // StorageError when it cannot be opened.
  explicit ComponentBeatStore(const std::string& path);
  ~ComponentBeatStore();
  ComponentBeatStore(const ComponentBeatStore&) = delete;
  ComponentBeatStore& operator=(const ComponentBeatStore&) = delete;

  // Inserts or replaces each (component, instance) row, all in one transaction. Throws
  // StorageError (a locked or full database: nothing is written).
  void write(const std::vector<ComponentBeat>& beats);
  // Deletes every row of `instance`: its parts stopped on purpose and are not silent. Throws
  // StorageError.
  void remove(const std::string& instance);
  // Every row, by component then instance. Throws StorageError.
  std::vector<ComponentBeat> read();

 private:
  std::mutex mutex_;
  std::unique_ptr<SQLite::Database> db_;  // guarded by mutex_
};

// A part's name and when it last progressed, as the process's own signals say (for example
// Runner::last_alive, Writer::last_progress, Alerter::last_progress).
struct PartSample {
  std::string part;
  TimePoint progressed_at;
};
using BeatSampler = std::function<std::vector<PartSample>()>;

struct BeatRecorderOptions {
  std::string instance = "local";             // PROBER_REGION
  Millis period{2'000};                       // one write of every part's beat per period
  std::function<TimePoint()> clock = now_ms;  // for written_at
};

// The thread that samples the parts and writes their beats: one write at construction's first
// turn, then one per period, whatever the parts do (a part that stops progressing keeps its old
// beat_at, which is the point). A failing write (database locked, disk full) is logged once per
// outage and tried again next period; it never stops the thread.
class BeatRecorder {
 public:
  // `store` must outlive the recorder. `sample` is called on the recorder's thread.
  BeatRecorder(ComponentBeatStore& store, BeatSampler sample, BeatRecorderOptions options = {});
  // stop(): the rows of this instance are removed.
  ~BeatRecorder();
  BeatRecorder(const BeatRecorder&) = delete;
  BeatRecorder& operator=(const BeatRecorder&) = delete;

  // Joins the thread and removes this instance's rows (a clean stop is not a silence; a failed
  // removal is logged). Idempotent.
  void stop();
  // Beats written so far (each write of every part counts once). Any thread.
  std::uint64_t writes() const;

 private:
  void run();

  ComponentBeatStore& store_;
  BeatSampler sample_;
  BeatRecorderOptions options_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;     // guarded by mutex_
  std::uint64_t writes_ = 0;  // guarded by mutex_
  std::once_flag stop_once_;
  std::thread thread_;
};

}  // namespace vigil

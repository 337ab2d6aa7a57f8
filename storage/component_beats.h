// Liveness beats: the process that runs the runner records, every few seconds, when each of its
// parts (runner loop, writer, alerter) last made progress, in the database. Another process on
// the same database (`vigil api`) reads them to tell a dead or hung runner process from a live
// one: a beat that stops advancing is the sign, whatever killed or froze it.
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

namespace vigil {

// One part's beat: one per (component, instance).
struct ComponentBeat {
  std::string component;  // "runner", "writer", "alerter"
  std::string instance;   // PROBER_REGION of the process that runs it
  TimePoint beat_at;      // when the part last made progress
  TimePoint written_at;   // when the row was written
  std::int64_t pid = 0;   // the process that wrote it
  friend bool operator==(const ComponentBeat&, const ComponentBeat&) = default;
};

// Where beats are kept. A backend opens one (storage/database.h) on a connection of its own, so
// neither a writer batch nor an API read waits behind it in this process, and a short wait for
// locks, so /healthz answers promptly. Every method may be called from any thread; calls are
// serialised. Errors (the database locked, full or unreachable) are reported by throwing
// StorageError, and nothing of the failed call is written.
class ComponentBeatStore {
 public:
  virtual ~ComponentBeatStore() = default;

  // Inserts or replaces each (component, instance) beat, all in one transaction.
  virtual void write(const std::vector<ComponentBeat>& beats) = 0;
  // Deletes every beat of `instance` (none: not an error): its parts stopped on purpose and
  // are not silent.
  virtual void remove(const std::string& instance) = 0;
  // Every beat, by component then instance.
  virtual std::vector<ComponentBeat> read() = 0;
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

#include "storage/component_beats.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

#include "core/logging.h"
#include "storage/store.h"

namespace vigil {
namespace {

// Short: /healthz of `vigil api` reads through this connection and must answer promptly, and a
// beat that cannot be written within it is simply written at the next period.
constexpr int kBusyTimeoutMs = 1000;

template <typename F>
auto guarded(const std::string& what, F&& body) {
  try {
    return body();
  } catch (const SQLite::Exception& e) {
    throw StorageError("storage: " + what + ": " + e.what());
  }
}

}  // namespace

ComponentBeatStore::ComponentBeatStore(const std::string& path) {
  guarded("cannot open " + path + " for beats", [&] {
    db_ = std::make_unique<SQLite::Database>(path, SQLite::OPEN_READWRITE, kBusyTimeoutMs);
    return 0;
  });
}

ComponentBeatStore::~ComponentBeatStore() = default;

void ComponentBeatStore::write(const std::vector<ComponentBeat>& beats) {
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

void ComponentBeatStore::remove(const std::string& instance) {
  std::lock_guard lock(mutex_);
  guarded("removing beats", [&] {
    SQLite::Statement remove(*db_, "DELETE FROM component_beats WHERE instance = ?");
    remove.bind(1, instance);
    return remove.exec();
  });
}

std::vector<ComponentBeat> ComponentBeatStore::read() {
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

BeatRecorder::BeatRecorder(ComponentBeatStore& store, BeatSampler sample,
                           BeatRecorderOptions options)
    : store_(store), sample_(std::move(sample)), options_(std::move(options)) {
  options_.period = std::max(options_.period, Millis(1));
  thread_ = std::thread([this] { run(); });
}

BeatRecorder::~BeatRecorder() { stop(); }

void BeatRecorder::stop() {
  std::call_once(stop_once_, [this] {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_one();
    if (thread_.joinable()) thread_.join();
    try {
      store_.remove(options_.instance);
    } catch (const std::exception& e) {
      log_warn(std::string("health: cannot remove this process's beats: ") + e.what());
    }
  });
}

std::uint64_t BeatRecorder::writes() const {
  std::lock_guard lock(mutex_);
  return writes_;
}

void BeatRecorder::run() {
  const std::int64_t pid = ::getpid();
  bool failing = false;
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    lock.unlock();
    try {
      const TimePoint now = options_.clock();
      std::vector<ComponentBeat> beats;
      for (auto& sample : sample_())
        beats.push_back(ComponentBeat{std::move(sample.part), options_.instance,
                                      sample.progressed_at, now, pid});
      store_.write(beats);
      if (failing) log_info("health: beats are written again");
      failing = false;
      lock.lock();
      ++writes_;
    } catch (const std::exception& e) {
      // Logged once per outage: the writer reports the storage fault itself.
      if (!failing) log_warn(std::string("health: cannot write beats: ") + e.what());
      failing = true;
      lock.lock();
    }
    wake_.wait_for(lock, options_.period, [this] { return stopping_; });
  }
}

}  // namespace vigil

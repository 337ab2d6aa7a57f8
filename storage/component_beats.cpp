#include "storage/component_beats.h"

#include <unistd.h>

#include <algorithm>
#include <utility>

#include "core/logging.h"
#include "storage/store.h"

namespace vigil {

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

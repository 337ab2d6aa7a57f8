// ChangeFeed: how a process that runs the runner follows writes made by another process on the
// same database (`vigil api` beside `vigil runner`): every `interval` it takes the beats a
// `vigil api` process queued and reads the services changed since the revision it last saw, and
// hands them to its handlers, on its own thread: purges, then changes, then beats (so a beat
// follows the creation of its heartbeat, and a service that takes a purged one's name follows
// the purge). In `vigil run` the API also hands changes straight to the runner; seeing them again
// here is harmless (an unchanged upsert is a no-op).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "core/model.h"
#include "storage/store.h"

namespace vigil {

struct ChangeFeedHandlers {
  std::function<void(const Service&)> changed;  // created, updated, (de/re)activated
  std::function<void(ServiceId)> purged;
  std::function<void(ServiceId, const BeatReport&)> beat;
  // In a cluster: the shards whose heartbeats this process watches now (Runner::shards); only
  // their queued beats are taken, the others are left for their watchers. Empty: every beat.
  std::function<std::vector<int>()> shards = {};
};

class ChangeFeed {
 public:
  // Starts the thread; the first poll is one interval away. `from_revision` is what the caller
  // already has (Store::services_revision() read before it loaded the services). `store` must
  // outlive the feed.
  ChangeFeed(Store& store, std::int64_t from_revision, ChangeFeedHandlers handlers,
             std::chrono::milliseconds interval = std::chrono::milliseconds(500));
  ~ChangeFeed();  // stop()
  ChangeFeed(const ChangeFeed&) = delete;
  ChangeFeed& operator=(const ChangeFeed&) = delete;

  void stop();  // joins the thread; idempotent

 private:
  void run();
  void poll();

  Store& store_;
  std::int64_t revision_;
  ChangeFeedHandlers handlers_;
  const std::chrono::milliseconds interval_;
  int failures_ = 0;  // consecutive failed polls, for one log line per outage
  std::vector<std::pair<ServiceId, BeatReport>> beats_;  // taken, not yet handed over
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_requested_ = false;  // guarded by mutex_
  std::thread thread_;
};

}  // namespace vigil

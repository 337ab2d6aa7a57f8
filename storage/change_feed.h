// ChangeFeed: how a process that runs the runner follows writes made by another process on the
// same database (`vigil api` beside `vigil runner`): every `interval` it claims the beats a
// `vigil api` process queued and reads the services changed since the revision it last saw, and
// hands them to its handlers, on its own thread: purges, then changes, then beats (so a beat
// follows the creation of its heartbeat, and a service that takes a purged one's name follows
// the purge). In `vigil run` the API also hands changes straight to the runner; seeing them again
// here is harmless (an unchanged upsert is a no-op).
//
// A queued beat was answered 200 by `vigil api`: it leaves the database only with its stored
// tick (TickRecord::queued_beat, removed by the same transaction), never before. So the feed
// claims beats (Store::claim_beats) instead of taking them, hands each with its queued id, and
// follows what became of its tick: committed, nothing more to do; ignored (no longer a
// heartbeat), the beat is discarded; dropped (the writer shed it), it is handed over again. At
// its start the feed gives back the beats its claimant claimed before (Store::release_beats): a
// runner process that died with beats claimed loses none.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/commit.h"
#include "core/model.h"
#include "storage/store.h"

namespace vigil {

struct ChangeFeedHandlers {
  std::function<void(const Service&)> changed;  // created, updated, (de/re)activated
  std::function<void(ServiceId)> purged;
  // A queued beat, with its id for the tick's TickRecord::queued_beat; returns the future of
  // its tick (Runner::record_beat).
  std::function<CommitFuture(ServiceId, const BeatReport&, std::int64_t queued_beat)> beat;
  // In a cluster: the shards whose heartbeats this process watches now (Runner::shards); only
  // their queued beats are claimed, and a claimed beat whose shard went elsewhere before its
  // tick was stored is given back for its new watcher. Empty: every beat.
  std::function<std::vector<int>()> shards = {};
};

class ChangeFeed {
 public:
  // Starts the thread; the first poll is one interval away. `from_revision` is what the caller
  // already has (Store::services_revision() read before it loaded the services); `claimant`
  // names this runner process among those on the database (its cluster member name, config's
  // instance_name: a restart under the same name gives back what it claimed). `store` must outlive
  // the feed.
  ChangeFeed(Store& store, std::int64_t from_revision, std::string claimant,
             ChangeFeedHandlers handlers,
             std::chrono::milliseconds interval = std::chrono::milliseconds(500));
  ~ChangeFeed();  // stop()
  ChangeFeed(const ChangeFeed&) = delete;
  ChangeFeed& operator=(const ChangeFeed&) = delete;

  void stop();  // joins the thread; idempotent

 private:
  void run();
  void poll();
  // Follows the beats handed over: forgets the committed, discards the ignored, queues the
  // dropped to be handed again.
  void settle_handed();

  Store& store_;
  std::int64_t revision_;
  ChangeFeedHandlers handlers_;
  const std::chrono::milliseconds interval_;
  int failures_ = 0;  // consecutive failed polls, for one log line per outage
  const std::string claimant_;
  bool released_ = false;                 // release_beats has run
  std::vector<Store::QueuedBeat> beats_;  // claimed, not yet handed over
  struct Handed {
    Store::QueuedBeat queued;
    CommitFuture tick;
  };
  std::vector<Handed> handed_;            // handed over, their tick not yet committed
  std::vector<std::int64_t> to_discard_;  // ignored beats not yet discarded
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_requested_ = false;  // guarded by mutex_
  std::thread thread_;
};

}  // namespace vigil

#include "storage/change_feed.h"

#include <algorithm>
#include <exception>
#include <string>
#include <utility>

#include "core/logging.h"
#include "core/shards.h"

namespace vigil {
namespace {

// Beats taken per poll at most; more wait for the next poll rather than make one long one.
constexpr std::size_t kBeatsPerPoll = 10'000;

}  // namespace

ChangeFeed::ChangeFeed(Store& store, std::int64_t from_revision, std::string claimant,
                       ChangeFeedHandlers handlers, std::chrono::milliseconds interval)
    : store_(store),
      revision_(from_revision),
      handlers_(std::move(handlers)),
      interval_(interval),
      claimant_(std::move(claimant)) {
  thread_ = std::thread([this] { run(); });
}

ChangeFeed::~ChangeFeed() { stop(); }

void ChangeFeed::stop() {
  {
    std::lock_guard lock(mutex_);
    stop_requested_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void ChangeFeed::run() {
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      if (wake_.wait_for(lock, interval_, [this] { return stop_requested_; })) return;
    }
    try {
      poll();
      if (failures_ > 0) log_info("change feed: database readable again");
      failures_ = 0;
    } catch (const std::exception& e) {
      if (failures_++ == 0)
        log_warn(std::string("change feed: cannot read changes, retrying: ") + e.what());
    }
  }
}

void ChangeFeed::settle_handed() {
  std::erase_if(handed_, [this](const Handed& handed) {
    switch (handed.tick.wait_for(std::chrono::milliseconds(0))) {
      case CommitOutcome::committed:  // removed with its tick
        return true;
      case CommitOutcome::ignored:
        to_discard_.push_back(handed.queued.id);
        return true;
      case CommitOutcome::dropped:  // still queued, and still ours
        beats_.push_back(handed.queued);
        return true;
      case CommitOutcome::timed_out:
        return false;
    }
    return false;
  });
  std::ranges::sort(beats_, {}, &Store::QueuedBeat::id);
  if (handlers_.shards && !beats_.empty()) {
    // The runner drops a beat of a heartbeat it no longer watches: its shard moved to another
    // member, which claims it once it is given back.
    const std::vector<int> owned = handlers_.shards();
    std::vector<std::int64_t> elsewhere;
    std::erase_if(beats_, [&](const Store::QueuedBeat& queued) {
      if (std::ranges::binary_search(owned, shard_of(queued.service_id))) return false;
      elsewhere.push_back(queued.id);
      return true;
    });
    if (!elsewhere.empty()) store_.unclaim_beats(elsewhere);
  }
  if (!to_discard_.empty()) {
    store_.discard_beats(to_discard_);
    to_discard_.clear();
  }
}

void ChangeFeed::poll() {
  if (!released_) {
    store_.release_beats(claimant_);
    released_ = true;
  }
  settle_handed();
  // Beats are claimed before changes are read: a beat claimed here was pushed to a heartbeat
  // that already existed, so the changes read next (or an earlier poll) hand it over before its
  // beat. Claimed beats wait in beats_ when the read of changes fails. While as many as one
  // poll's worth wait for their ticks, none more are claimed.
  if (beats_.empty() && handed_.size() < kBeatsPerPoll)
    beats_ =
        store_.claim_beats(claimant_, kBeatsPerPoll - handed_.size(),
                           handlers_.shards ? std::optional(handlers_.shards()) : std::nullopt);
  const ServiceChanges changes = store_.service_changes(revision_);
  // Purges first: a service created after a purge may take the purged one's name (the label of
  // its series in the runner).
  for (const ServiceId id : changes.purged)
    if (handlers_.purged) handlers_.purged(id);
  for (const auto& service : changes.changed)
    if (handlers_.changed) handlers_.changed(service);
  revision_ = std::max(revision_, changes.revision);
  for (auto& queued : std::exchange(beats_, {})) {
    if (!handlers_.beat) continue;
    CommitFuture tick = handlers_.beat(queued.service_id, queued.beat, queued.id);
    handed_.push_back(Handed{std::move(queued), std::move(tick)});
  }
}

}  // namespace vigil

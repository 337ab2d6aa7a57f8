#include "storage/change_feed.h"

#include <exception>
#include <string>
#include <utility>

#include "core/logging.h"

namespace vigil {
namespace {

// Beats taken per poll at most; more wait for the next poll rather than make one long one.
constexpr std::size_t kBeatsPerPoll = 10'000;

}  // namespace

ChangeFeed::ChangeFeed(Store& store, std::int64_t from_revision, ChangeFeedHandlers handlers,
                       std::chrono::milliseconds interval)
    : store_(store), revision_(from_revision), handlers_(std::move(handlers)), interval_(interval) {
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

void ChangeFeed::poll() {
  // Beats are taken before changes are read: a beat taken here was pushed to a heartbeat that
  // already existed, so the changes read next (or an earlier poll) hand it over before its beat.
  // Taken beats are gone from the database: they wait in beats_ when the read of changes fails.
  if (beats_.empty()) {
    beats_ = handlers_.shards ? store_.take_beats(kBeatsPerPoll, handlers_.shards())
                              : store_.take_beats(kBeatsPerPoll);
  }
  const ServiceChanges changes = store_.service_changes(revision_);
  // Purges first: a service created after a purge may take the purged one's name (the label of
  // its series in the runner).
  for (const ServiceId id : changes.purged)
    if (handlers_.purged) handlers_.purged(id);
  for (const auto& service : changes.changed)
    if (handlers_.changed) handlers_.changed(service);
  revision_ = std::max(revision_, changes.revision);
  const auto beats = std::exchange(beats_, {});
  for (const auto& [id, beat] : beats)
    if (handlers_.beat) handlers_.beat(id, beat);
}

}  // namespace vigil

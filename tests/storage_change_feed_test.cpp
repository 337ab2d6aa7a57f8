// The order in which a ChangeFeed hands over what another process wrote, against a real SQLite
// file: purges before changes (a new service may take a purged one's name), and a beat never before
// the change that created its heartbeat, even when the heartbeat is created and pushed to while
// the feed is between its reads.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/model.h"
#include "storage/change_feed.h"
#include "storage/sqlite/sqlite_database.h"
#include "storage/store.h"
#include "support/target_server.h"

namespace vigil {
namespace {

using namespace std::chrono_literals;

ServiceSpec heartbeat_spec(const std::string& name) {
  ServiceSpec spec;
  spec.name = name;
  spec.kind = ServiceKind::heartbeat;
  spec.interval = Millis(60'000);
  return spec;
}

// Every handler call, in order, as "purged 1", "changed 2", "beat 2".
class CallLog {
 public:
  void add(const std::string& call) {
    std::lock_guard lock(mutex_);
    calls_.push_back(call);
    added_.notify_all();
  }
  bool wait_for(const std::string& call) {
    std::unique_lock lock(mutex_);
    return added_.wait_for(lock, 5s, [&] { return std::ranges::count(calls_, call) > 0; });
  }
  std::vector<std::string> calls() {
    std::lock_guard lock(mutex_);
    return calls_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable added_;
  std::vector<std::string> calls_;
};

TEST(ChangeFeedOrder, PurgesComeFirstAndABeatNeverBeforeItsHeartbeat) {
  test::TempDir dir;
  auto store = open_sqlite_store(dir.file("vigil.db"));
  auto api = open_sqlite_store(dir.file("vigil.db"));  // another process: its own connection
  const ServiceId old_id = store->create_service(heartbeat_spec("job"), now_ms()).id;
  // Written after it: a purge of the service written last gets a tombstone revision the feed
  // has already seen (a storage bug, reported), and this test is about order.
  store->create_service(heartbeat_spec("bystander"), now_ms());
  const std::int64_t revision = store->services_revision();

  // Before the first poll: a purge, a heartbeat that takes the purged one's name, and a beat.
  ASSERT_TRUE(api->purge_service(old_id));
  const Service renewed = api->create_service(heartbeat_spec("job"), now_ms());
  ASSERT_EQ(api->enqueue_beat(renewed.id, BeatReport{now_ms(), true, "renewed", std::nullopt}),
            Store::BeatQueued::queued);

  CallLog log;
  ServiceId late_id = 0;
  ChangeFeedHandlers handlers{
      [&](const Service& service) {
        // The API process creates a heartbeat and pushes to it while this poll is under way.
        if (late_id == 0) {
          late_id = api->create_service(heartbeat_spec("late"), now_ms()).id;
          api->enqueue_beat(late_id, BeatReport{now_ms(), true, "late", std::nullopt});
        }
        log.add("changed " + std::to_string(service.id));
      },
      [&](ServiceId id) { log.add("purged " + std::to_string(id)); },
      [&](ServiceId id, const BeatReport&, std::int64_t) {
        log.add("beat " + std::to_string(id));
        auto [promise, future] = make_commit_pair();
        promise.committed();
        return future;
      }};
  ChangeFeed feed(*store, revision, "east", std::move(handlers), 50ms);
  ASSERT_TRUE(log.wait_for("changed " + std::to_string(renewed.id)));
  ASSERT_NE(late_id, 0);
  ASSERT_TRUE(log.wait_for("beat " + std::to_string(late_id)));
  feed.stop();

  const std::string renewed_text = std::to_string(renewed.id);
  const std::string late_text = std::to_string(late_id);
  EXPECT_EQ(log.calls(), (std::vector<std::string>{
                             "purged " + std::to_string(old_id), "changed " + renewed_text,
                             "beat " + renewed_text, "changed " + late_text, "beat " + late_text}));
  EXPECT_TRUE(store->claim_beats("west", 10).empty());  // each beat handed over once
}

}  // namespace
}  // namespace vigil

// The cluster's members and shard leases on a real PostgreSQL server: the store's leases on the
// server's clock, and ClusterMember threads dividing a region's shards, handing them over on a
// clean leave and taking a silent member's over when its lease runs out.
#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "core/process_identity.h"
#include "core/shards.h"
#include "storage/cluster.h"
#include "support/eventually.h"
#include "support/store_backends.h"

namespace vigil {
namespace {

using namespace std::chrono_literals;
using test::StoreBackend;
using test::TestDatabase;

MemberIdentity runner_member(const std::string& name, const std::string& region = "eu") {
  return MemberIdentity{.name = name,
                        .incarnation = name + "-1",
                        .region = region,
                        .role = "runner",
                        .address = "",
                        .version = "test",
                        .takes_shards = true};
}

class ClusterStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto reason = test::unavailable(StoreBackend::postgres)) GTEST_SKIP() << *reason;
    db = std::make_unique<TestDatabase>(StoreBackend::postgres);
    db->open();  // migrates
    database = db->database();
  }
  std::unique_ptr<ClusterStore> open(Millis lease = 10s) {
    return database->open_cluster_store(lease);
  }

  std::unique_ptr<TestDatabase> db;
  std::unique_ptr<Database> database;
};

TEST_F(ClusterStoreTest, ShardLeasesHaveOneHolderUntilFreedOrRunOut) {
  auto store = open();
  const auto a = runner_member("eu-a");
  const auto b = runner_member("eu-b");
  const auto us = runner_member("us-a", "us");
  EXPECT_EQ(store->renew(a, 10s, ""), (std::vector<std::string>{"eu-a"}));
  EXPECT_EQ(store->renew(b, 10s, ""), (std::vector<std::string>{"eu-a", "eu-b"}));
  EXPECT_EQ(store->renew(us, 10s, ""), (std::vector<std::string>{"us-a"}));

  EXPECT_EQ(store->hold_shards(a, {1, 2, 3}, 10s), (std::vector<int>{1, 2, 3}));
  // Held by a: b gets only the free one; the same shard in another region is another lease.
  EXPECT_EQ(store->hold_shards(b, {2, 3, 4}, 10s), (std::vector<int>{4}));
  EXPECT_EQ(store->hold_shards(us, {1, 2}, 10s), (std::vector<int>{1, 2}));
  // Renewing keeps them; freeing one lets b take it.
  EXPECT_EQ(store->hold_shards(a, {1, 2, 3}, 10s), (std::vector<int>{1, 2, 3}));
  store->release_shards(a, {3});
  EXPECT_EQ(store->hold_shards(b, {3, 4}, 10s), (std::vector<int>{3, 4}));

  // A lease that ran out (a member killed): the shard goes to whoever asks.
  EXPECT_EQ(store->hold_shards(a, {1, 2}, 200ms), (std::vector<int>{1, 2}));
  EXPECT_EQ(store->hold_shards(b, {1}, 10s), (std::vector<int>{3, 4}));
  ASSERT_TRUE(test::eventually([&] { return store->hold_shards(b, {1}, 10s).size() == 3; }, 5s));
  EXPECT_EQ(store->hold_shards(b, {}, 10s), (std::vector<int>{1, 3, 4}));

  const auto members = store->members();
  ASSERT_EQ(members.size(), 3u);
  EXPECT_EQ(members[0].name, "eu-a");
  EXPECT_EQ(members[1].name, "eu-b");
  EXPECT_EQ(members[1].shards, (std::vector<int>{1, 3, 4}));
  EXPECT_EQ(members[2].region, "us");
  EXPECT_TRUE(members[2].live);
  EXPECT_LT(members[2].lease_age, 5s);

  // Leaving frees everything at once and removes the row.
  store->leave(b);
  EXPECT_EQ(store->hold_shards(a, {1, 2, 3, 4}, 10s), (std::vector<int>{1, 2, 3, 4}));
  EXPECT_EQ(store->members().size(), 2u);
  EXPECT_EQ(store->renew(a, 10s, ""), (std::vector<std::string>{"eu-a"}));
}

TEST_F(ClusterStoreTest, BeatsClaimedByAMemberWhoseLeaseRanOutAreClaimedAgain) {
  auto store = open();
  auto beats = db->open();
  ServiceSpec spec;
  spec.name = "job";
  spec.kind = ServiceKind::heartbeat;
  spec.interval = 60s;
  const ServiceId id = beats->create_service(spec, now_ms()).id;
  ASSERT_EQ(beats->enqueue_beat(id, BeatReport{now_ms(), true, "", std::nullopt}),
            Store::BeatQueued::queued);
  const auto dying = runner_member("eu-dying");
  store->renew(dying, 300ms, "");
  ASSERT_EQ(beats->claim_beats("eu-dying", 10).size(), 1u);
  EXPECT_TRUE(beats->claim_beats("eu-b", 10).empty());  // its claim holds while it lives
  ASSERT_TRUE(test::eventually([&] { return beats->claim_beats("eu-b", 10).size() == 1; }, 5s));
  // A member that leaves gives back what it claimed.
  const auto b = runner_member("eu-b");
  store->renew(b, 10s, "");
  EXPECT_TRUE(beats->claim_beats("eu-c", 10).empty());
  store->leave(b);
  EXPECT_EQ(beats->claim_beats("eu-c", 10).size(), 1u);
}

TEST_F(ClusterStoreTest, ALiveMembersNameIsNotTakenByAnotherProcess) {
  auto store = open();
  auto first = runner_member("eu-a");
  auto second = first;
  second.incarnation = "eu-a-2";
  store->renew(first, 300ms, "");
  EXPECT_THROW(store->renew(second, 10s, ""), NameTaken);
  // Once the first's lease ran out (it died), the name is free for a new process.
  ASSERT_TRUE(test::eventually(
      [&] {
        try {
          store->renew(second, 10s, "");
          return true;
        } catch (const NameTaken&) {
          return false;
        }
      },
      5s));
  EXPECT_THROW(store->renew(first, 10s, ""), NameTaken);
  // A restart that knows its predecessor is dead takes the name over at once.
  auto third = first;
  third.incarnation = "eu-a-3";
  EXPECT_THROW(store->renew(third, 10s, "", "eu-a-1"), NameTaken);  // not the holder
  try {
    store->renew(third, 10s, "");
    ADD_FAILURE() << "the name was taken from a live member";
  } catch (const NameTaken& e) {
    EXPECT_EQ(e.holder(), "eu-a-2");
  }
  EXPECT_NO_THROW(store->renew(third, 10s, "", "eu-a-2"));
  EXPECT_THROW(store->renew(second, 10s, ""), NameTaken);
  second = third;
  // The errors a member reports are shown.
  store->renew(second, 10s, "the database was unreachable for 3 s");
  EXPECT_EQ(store->members().at(0).last_error, "the database was unreachable for 3 s");
}

TEST(Incarnation, APredecessorIsDeadOnlyWhenItsPidIsGoneFromThisHost) {
  const std::string mine = new_incarnation();
  std::istringstream fields(mine);
  std::string host, pid, random;
  fields >> host >> pid >> random;
  EXPECT_EQ(host, host_name());
  EXPECT_EQ(pid, std::to_string(::getpid()));
  EXPECT_EQ(random.size(), 32u);
  // This process's own pid: a restart in a container that reuses it.
  EXPECT_TRUE(incarnation_is_dead(mine));
  // A child that has exited and been reaped: gone.
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ASSERT_GT(child, 0);
  ASSERT_EQ(::waitpid(child, nullptr, 0), child);
  EXPECT_TRUE(incarnation_is_dead(host + " " + std::to_string(child) + " x"));
  // A live process of this host (the parent of this one), another host's, and nonsense: not
  // known to be dead.
  EXPECT_FALSE(incarnation_is_dead(host + " " + std::to_string(::getppid()) + " x"));
  EXPECT_FALSE(incarnation_is_dead("elsewhere.example " + std::to_string(child) + " x"));
  EXPECT_FALSE(incarnation_is_dead("eu-a-1"));
  EXPECT_FALSE(incarnation_is_dead(""));
}

// What a ClusterMember hands its runner, kept for the test.
struct Assignments {
  std::mutex mutex;
  std::vector<int> shards;
  std::vector<std::vector<int>> gained;
  int flushes = 0;

  ClusterMemberHandlers handlers() {
    return {.assign =
                [this](const std::vector<int>& now, const std::vector<int>& new_here,
                       std::chrono::steady_clock::time_point) {
                  std::lock_guard lock(mutex);
                  shards = now;
                  if (!new_here.empty()) gained.push_back(new_here);
                  std::promise<void> applied;
                  applied.set_value();
                  return applied.get_future();
                },
            .flush =
                [this] {
                  std::lock_guard lock(mutex);
                  ++flushes;
                }};
  }
  std::vector<int> now() {
    std::lock_guard lock(mutex);
    return shards;
  }
};

// The shards of a and b together: every shard exactly once.
bool divided(Assignments& a, Assignments& b) {
  auto sa = a.now();
  auto sb = b.now();
  std::set<int> all(sa.begin(), sa.end());
  all.insert(sb.begin(), sb.end());
  return !sa.empty() && !sb.empty() && all.size() == static_cast<std::size_t>(kShardCount) &&
         sa.size() + sb.size() == static_cast<std::size_t>(kShardCount);
}

TEST_F(ClusterStoreTest, MembersDivideTheShardsAndTakeOverAfterALeaveOrASilence) {
  auto store_a = open(1s);
  auto store_b = open(1s);
  auto store_c = open(1s);
  prometheus::Registry registry_a, registry_b, registry_c;
  Assignments a, b, c;
  const ClusterMemberOptions options{.lease = 1000ms, .period = 100ms};
  auto member_a = std::make_unique<ClusterMember>(*store_a, runner_member("eu-a"), options,
                                                  a.handlers(), registry_a);
  ASSERT_TRUE(test::eventually([&] { return a.now().size() == kShardCount; }, 5s));

  // b joins: the shards are divided as rendezvous hashing says, each exactly once.
  auto member_b = std::make_unique<ClusterMember>(*store_b, runner_member("eu-b"), options,
                                                  b.handlers(), registry_b);
  ASSERT_TRUE(test::eventually([&] { return divided(a, b); }, 5s));
  EXPECT_EQ(a.now(), shards_of_member("eu-a", {"eu-a", "eu-b"}));
  EXPECT_GT(a.flushes, 0);  // the ticks of what it handed over were written first

  // b leaves cleanly: a has every shard back within a few periods, not a lease.
  member_b->leave();
  const auto left = std::chrono::steady_clock::now();
  ASSERT_TRUE(test::eventually([&] { return a.now().size() == kShardCount; }, 5s));
  EXPECT_LT(std::chrono::steady_clock::now() - left, 900ms);

  // c joins, then goes silent (its thread stops without leaving, as a SIGKILL would): a takes
  // its shards once its lease ran out, not before.
  auto member_c = std::make_unique<ClusterMember>(*store_c, runner_member("eu-c"), options,
                                                  c.handlers(), registry_c);
  ASSERT_TRUE(test::eventually([&] { return divided(a, c); }, 5s));
  member_c->stop();
  const auto silent = std::chrono::steady_clock::now();
  ASSERT_TRUE(test::eventually([&] { return a.now().size() == kShardCount; }, 5s));
  const auto took = std::chrono::steady_clock::now() - silent;
  EXPECT_GE(took, 700ms);   // c's lease (1 s, renewed up to a period before it stopped)
  EXPECT_LT(took, 1600ms);  // lease + a few periods
}

TEST_F(ClusterStoreTest, AMemberThatCannotRenewStopsItsRunnerBeforeItsLeaseRunsOut) {
  auto store = open(1s);
  prometheus::Registry registry;
  Assignments a;
  std::chrono::steady_clock::time_point valid_until{};
  auto handlers = a.handlers();
  auto assign = handlers.assign;
  handlers.assign = [&, assign](const std::vector<int>& now, const std::vector<int>& gained,
                                std::chrono::steady_clock::time_point until) {
    if (!now.empty()) valid_until = until;
    return assign(now, gained, until);
  };
  ClusterMember member(*store, runner_member("eu-a"), {.lease = 1000ms, .period = 100ms}, handlers,
                       registry);
  ASSERT_TRUE(test::eventually([&] { return a.now().size() == kShardCount; }, 5s));
  const auto renewed_before = std::chrono::steady_clock::now();
  // The server refuses the member's statements from now on (its role may not touch the table).
  db->exec("ALTER TABLE cluster_members RENAME TO cluster_members_gone");
  ASSERT_TRUE(test::eventually([&] { return a.now().empty(); }, 5s));
  const auto stopped = std::chrono::steady_clock::now();
  // Stopped before the lease it last renewed could run out (lease 1 s from a renewal no later
  // than the rename).
  EXPECT_LT(stopped, renewed_before + 1000ms);
  EXPECT_LE(valid_until, renewed_before + 1000ms);
  EXPECT_FALSE(member.last_error().empty());
}

}  // namespace
}  // namespace vigil

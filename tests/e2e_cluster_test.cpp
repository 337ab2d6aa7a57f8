// Several vigil processes on one PostgreSQL database, end to end: real `vigil run` members, each
// leaving from its own 127.0.0.x (PROBER_SOURCE_IP), probing a real target that records which
// address each request came from and when. They divide the services, take a killed member's
// over once its lease runs out, a stopped member's at once, and what they store stays one
// continuous history per service.
#include <gtest/gtest.h>
#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/shards.h"
#include "support/eventually.h"
#include "support/receiver.h"
#include "support/store_backends.h"
#include "support/target_server.h"
#include "support/vigil_process.h"

namespace vigil::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

constexpr int kServices = 40;
constexpr auto kInterval = 200ms;
constexpr auto kLease = 2s;
constexpr auto kPeriod = kLease / 5;  // ClusterMember's default: a fifth of the lease

double ms(SteadyClock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

class ClusterEndToEnd : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto reason = unavailable(StoreBackend::postgres)) GTEST_SKIP() << *reason;
    db.emplace(StoreBackend::postgres);
    json services = json::array();
    for (int i = 0; i < kServices; ++i)
      services.push_back(
          {{"name", name(i)}, {"url", target.url("/peer/" + name(i))}, {"interval_seconds", 0.2}});
    std::ofstream(shared.file("services.json")) << services;
  }

  static std::string name(int i) { return "c" + std::to_string(i); }

  struct Member {
    std::string address;
    int port = closed_port();
    std::unique_ptr<TempDir> dir = std::make_unique<TempDir>();
    std::unique_ptr<VigilProcess> process = nullptr;
  };

  Member start(const std::string& instance, const std::string& address) {
    Member member{.address = address};
    member.process = std::make_unique<VigilProcess>(
        *member.dir, "run", member.port,
        db->vigil_environment({{"INSTANCE_NAME", instance},
                               {"PROBER_REGION", "eu"},
                               {"PROBER_SOURCE_IP", address},
                               {"CLUSTER_LEASE_SECONDS", "2"},
                               {"SERVICES_FILE", shared.file("services.json")}}));
    return member;
  }

  std::optional<json> cluster(const Member& member) {
    httplib::Client client("127.0.0.1", member.port);
    client.set_connection_timeout(1);
    client.set_read_timeout(5);
    const auto res = client.Get("/v1/cluster");
    if (!res || res->status != 200) return std::nullopt;
    return json::parse(res->body)["data"];
  }

  // The live members' shards as `member` reads them, when the live members are `expected` and
  // every shard is held by the one rendezvous hashing gives it (core/shards.h); empty otherwise
  // (still moving).
  std::map<int, std::string> divided(const Member& member, const std::set<std::string>& expected) {
    const auto data = cluster(member);
    if (!data) return {};
    std::map<int, std::string> owners;
    std::set<std::string> live;
    for (const auto& m : (*data)["members"]) {
      if (!m["live"].get<bool>()) continue;
      live.insert(m["name"].get<std::string>());
      for (const int shard : m["shards"])
        if (!owners.emplace(shard, m["name"].get<std::string>()).second) return {};
    }
    if (live != expected || owners.size() != std::size_t(kShardCount)) return {};
    const std::vector<std::string> names(expected.begin(), expected.end());
    for (const auto& [shard, owner] : owners)
      if (shard_owner(shard, names) != owner) return {};
    return owners;
  }

  // Whether `a` and `b` (eu-a and eu-b) come to hold the shards rendezvous hashing gives them.
  ::testing::AssertionResult both_divided(const Member& a, const Member& b) {
    if (eventually([&] { return !divided(a, {"eu-a", "eu-b"}).empty(); }, 30s))
      return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "the shards were not divided:\n"
                                         << a.process->log() << b.process->log();
  }

  // The service ids, by name, from the database.
  std::map<std::string, ServiceId> ids() {
    std::map<std::string, ServiceId> out;
    for (int i = 0; i < kServices; ++i)
      out[name(i)] = db->count("SELECT id FROM services WHERE name = '" + name(i) + "'");
    return out;
  }

  // Whether every service in `names` was probed from `address` after `since`.
  bool probed_from(const std::vector<std::string>& names, const std::string& address,
                   SteadyClock::time_point since) {
    for (const auto& n : names) {
      const auto hits = target.peer_hits(n);
      if (std::none_of(hits.begin(), hits.end(),
                       [&](const auto& h) { return h.address == address && h.at > since; }))
        return false;
    }
    return true;
  }

  // For each service in `names`, how long after `since` the first probe from `address` came;
  // the largest.
  SteadyClock::duration latest_first_probe(const std::vector<std::string>& names,
                                           const std::string& address,
                                           SteadyClock::time_point since) {
    SteadyClock::duration latest{0};
    for (const auto& n : names)
      for (const auto& hit : target.peer_hits(n))
        if (hit.address == address && hit.at > since) {
          latest = std::max(latest, hit.at - since);
          break;
        }
    return latest;
  }

  std::vector<std::string> all_names() const {
    std::vector<std::string> names;
    for (int i = 0; i < kServices; ++i) names.push_back(name(i));
    return names;
  }

  TargetServer target;
  TempDir shared;
  std::optional<TestDatabase> db;
};

TEST_F(ClusterEndToEnd, MembersDivideTheServicesAndTakeOverAfterAKillAndAStop) {
  Member a = start("eu-a", "127.0.0.2");
  ASSERT_TRUE(eventually([&] { return probed_from(all_names(), a.address, {}); }, 30s))
      << a.process->log();

  // b joins: every shard has one live owner, and each service is probed from its owner's
  // address only.
  Member b = start("eu-b", "127.0.0.3");
  const auto joined = SteadyClock::now();
  std::map<int, std::string> owners;
  ASSERT_TRUE(eventually(
      [&] {
        owners = divided(a, {"eu-a", "eu-b"});
        return !owners.empty();
      },
      30s))
      << a.process->log() << b.process->log();
  // /metrics says how many members each region has, and how many shards this one probes.
  {
    httplib::Client client("127.0.0.1", a.port);
    ASSERT_TRUE(eventually(
        [&] {
          const auto res = client.Get("/metrics");
          return res &&
                 res->body.find("vigil_cluster_members{region=\"eu\"} 2") != std::string::npos;
        },
        10s));
    const auto res = client.Get("/metrics");
    ASSERT_TRUE(res);
    const auto mine = std::count_if(owners.begin(), owners.end(),
                                    [](const auto& owner) { return owner.second == "eu-a"; });
    EXPECT_NE(res->body.find("vigil_cluster_shards_owned " + std::to_string(mine)),
              std::string::npos);
  }
  const auto id = ids();
  std::vector<std::string> of_a, of_b;
  for (const auto& [n, service] : id)
    (owners[shard_of(service)] == "eu-a" ? of_a : of_b).push_back(n);
  ASSERT_FALSE(of_a.empty());
  ASSERT_FALSE(of_b.empty());
  ASSERT_TRUE(eventually([&] { return probed_from(of_b, b.address, joined); }, 30s))
      << b.process->log();
  const auto divided_at = SteadyClock::now();
  // The handover: a's last probe of each of b's services against b's first.
  double overlap_ms = -1e9;
  for (const auto& n : of_b) {
    SteadyClock::time_point last_a{}, first_b = SteadyClock::time_point::max();
    for (const auto& hit : target.peer_hits(n)) {
      if (hit.address == a.address) last_a = std::max(last_a, hit.at);
      if (hit.address == b.address) first_b = std::min(first_b, hit.at);
    }
    overlap_ms = std::max(overlap_ms, ms(last_a - first_b));
  }
  std::cout << "join: both probing one service for at most " << overlap_ms << " ms\n";
  EXPECT_LE(overlap_ms, ms(kInterval)) << "two members probed one service at once";

  // A window of 8 intervals: each service probed by its owner only, at about its rate.
  ASSERT_TRUE(eventually([&] { return SteadyClock::now() > divided_at + 1600ms; }, 5s));
  const auto window_end = SteadyClock::now();
  for (const auto& [n, service] : id) {
    const std::string owner = owners[shard_of(service)] == "eu-a" ? a.address : b.address;
    int from_owner = 0;
    for (const auto& hit : target.peer_hits(n)) {
      if (hit.at <= divided_at || hit.at > window_end) continue;
      EXPECT_EQ(hit.address, owner) << n << " probed by a member whose shard it is not";
      from_owner += hit.address == owner;
    }
    EXPECT_GE(from_owner, 4) << n;  // 8 slots; loose for a loaded machine
  }

  // b is killed: a probes b's services again once b's lease ran out, within lease + period +
  // interval.
  b.process->process().signal(SIGKILL);
  ASSERT_TRUE(b.process->process().wait_for_exit(10s).has_value());
  const auto killed = SteadyClock::now();
  ASSERT_TRUE(eventually([&] { return probed_from(of_b, a.address, killed); }, 30s))
      << a.process->log();
  const double takeover_ms = ms(latest_first_probe(of_b, a.address, killed));
  std::cout << "kill -9: every service probed again within " << takeover_ms << " ms\n";
  EXPECT_LT(takeover_ms, ms(kLease + kPeriod + kInterval + 1s));

  // b restarts under its name and takes its share back; then a stops cleanly: b has every
  // service within a couple of rounds, not a lease.
  Member b2 = start("eu-b", "127.0.0.3");
  const auto restarted = SteadyClock::now();
  ASSERT_TRUE(eventually(
      [&] {
        return !divided(a, {"eu-a", "eu-b"}).empty();
      },
      30s))
      << b2.process->log();
  ASSERT_TRUE(eventually([&] { return probed_from(of_b, b2.address, restarted); }, 30s));
  EXPECT_EQ(a.process->stop(), 0) << a.process->log();
  const auto stopped = SteadyClock::now();
  ASSERT_TRUE(eventually([&] { return probed_from(of_a, b2.address, stopped); }, 30s))
      << b2.process->log();
  const double handover_ms = ms(latest_first_probe(of_a, b2.address, stopped));
  std::cout << "SIGTERM: every service probed again within " << handover_ms << " ms\n";
  EXPECT_LT(handover_ms, ms(kLease));
  EXPECT_EQ(b2.process->stop(), 0) << b2.process->log();

  // One continuous history per service across the handovers: whoever took a service over
  // continued its open event (a fresh start would open a second event of the same kind, as
  // the first tick of a service does) and its stored metric, which counts exactly its stored
  // ticks; every tick is region eu's. (Every probe should be up, but a loaded machine may time
  // one out: a downtime and the uptime after it alternate like any other events.)
  EXPECT_EQ(db->count("SELECT COUNT(*) FROM (SELECT event, lag(event) OVER "
                      "(PARTITION BY service_id ORDER BY id) AS previous FROM service_events) e "
                      "WHERE e.event = e.previous"),
            0);
  EXPECT_EQ(db->count("SELECT COUNT(DISTINCT service_id) FROM service_events WHERE event = "
                      "'uptime'"),
            kServices);
  EXPECT_EQ(db->count("SELECT COUNT(*) FROM service_metrics m WHERE m.tick_count <> "
                      "(SELECT COUNT(*) FROM service_ticks t WHERE t.service_id = m.service_id)"),
            0);
  EXPECT_EQ(db->count("SELECT COUNT(*) FROM service_ticks t JOIN regions r ON r.id = t.region_id "
                      "WHERE r.name <> 'eu'"),
            0);
  EXPECT_EQ(db->count("SELECT COUNT(*) FROM cluster_members"), 0);  // both left
}

TEST_F(ClusterEndToEnd, APushToAnyMemberIsStoredByTheMemberThatWatchesItsHeartbeat) {
  // Heartbeats only: 8 of them, spread over shards (ids 41..48 after the 40 probed services).
  json services = json::array();
  for (int i = 0; i < 8; ++i)
    services.push_back(
        {{"name", "job" + std::to_string(i)}, {"kind", "heartbeat"}, {"interval_seconds", 30}});
  std::ofstream(shared.file("services.json")) << services;
  Member a = start("eu-a", "127.0.0.2");
  Member b = start("eu-b", "127.0.0.3");
  ASSERT_TRUE(both_divided(a, b));
  std::vector<std::string> tokens;
  for (int i = 0; i < 8; ++i)
    tokens.push_back(
        db->text("SELECT push_token FROM services WHERE name = 'job" + std::to_string(i) + "'"));
  // 80 pushes, alternately to each member's API, each with its own msg.
  std::vector<std::string> acknowledged;
  for (int n = 0; n < 80; ++n) {
    const Member& to = n % 2 ? b : a;
    httplib::Client client("127.0.0.1", to.port);
    client.set_read_timeout(10);
    const std::string msg = "push-" + std::to_string(n);
    const auto res =
        client.Get("/v1/push/" + tokens[std::size_t(n) % tokens.size()] + "?msg=" + msg);
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    acknowledged.push_back(msg);
  }
  // Each one becomes a tick of its heartbeat (the member that watches it takes the beats pushed
  // to the other), and no heartbeat is down.
  ASSERT_TRUE(eventually(
      [&] {
        return db->count("SELECT COUNT(*) FROM service_ticks WHERE message LIKE 'push-%'") == 80;
      },
      30s))
      << db->count("SELECT COUNT(*) FROM service_ticks WHERE message LIKE 'push-%'") << " of 80";
  EXPECT_EQ(db->count("SELECT COUNT(DISTINCT message) FROM service_ticks WHERE message LIKE "
                      "'push-%'"),
            80);
  EXPECT_EQ(db->count("SELECT COUNT(*) FROM service_ticks WHERE NOT up"), 0);
  EXPECT_EQ(db->count("SELECT COUNT(*) FROM pending_beats"), 0);
  EXPECT_EQ(a.process->stop(), 0);
  EXPECT_EQ(b.process->stop(), 0);
}

TEST_F(ClusterEndToEnd, EachAlertIsSentOnceByTheMemberThatProbesItsService) {
  // 16 services that are down from their first probe, alerting one webhook.
  Receiver receiver;
  json services = json::array();
  for (int i = 0; i < 16; ++i)
    services.push_back({{"name", "down" + std::to_string(i)},
                        {"url", "http://127.0.0.1:" + std::to_string(closed_port()) + "/"},
                        {"interval_seconds", 0.2}});
  const json file = {
      {"services", services},
      {"alerting",
       {{"channels", {{"hook", {{"type", "webhook"}, {"url", receiver.url("/hook")}}}}},
        {"default", {"hook"}}}}};
  std::ofstream(shared.file("services.json")) << file.dump();
  Member a = start("eu-a", "127.0.0.2");
  Member b = start("eu-b", "127.0.0.3");
  ASSERT_TRUE(both_divided(a, b));
  ASSERT_TRUE(eventually([&] { return receiver.requests("/hook").size() >= 16; }, 30s))
      << receiver.requests("/hook").size() << " of 16";
  // Both members have had many delivery rounds since: still one trigger per service, each
  // with its own idempotency key.
  const auto settled = SteadyClock::now() + 2s;
  ASSERT_TRUE(eventually([&] { return SteadyClock::now() > settled; }, 5s));
  std::map<std::string, int> triggers;
  std::set<std::string> keys;
  for (const auto& request : receiver.requests("/hook")) {
    const json body = json::parse(request.body);
    if (body["kind"] == "trigger") ++triggers[body["service"].get<std::string>()];
    keys.insert(body["idempotency_key"].get<std::string>());
  }
  EXPECT_EQ(triggers.size(), 16u);
  for (const auto& [service, count] : triggers) EXPECT_EQ(count, 1) << service;
  EXPECT_EQ(keys.size(), receiver.requests("/hook").size());
  EXPECT_EQ(a.process->stop(), 0);
  EXPECT_EQ(b.process->stop(), 0);
}

TEST_F(ClusterEndToEnd, ASecondProcessWithALiveMembersNameDoesNotStart) {
  Member a = start("eu-a", "127.0.0.2");
  ASSERT_TRUE(eventually([&] { return cluster(a).has_value(); }, 30s)) << a.process->log();
  Member twin = start("eu-a", "127.0.0.3");
  const auto code = twin.process->process().wait_for_exit(30s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 1);
  EXPECT_NE(twin.process->log().find("INSTANCE_NAME"), std::string::npos) << twin.process->log();
  EXPECT_EQ(a.process->stop(), 0);
}

}  // namespace
}  // namespace vigil::test

// Concurrent writes through the real HTTP API against a real store of each backend: two PATCHes of
// one service that race must both be kept, and a push that starts after a DELETE has answered must
// be refused, however the pushes and the DELETE interleave.
#include <gtest/gtest.h>
#include <httplib.h>
#include <prometheus/registry.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "api/server.h"
#include "storage/store.h"
#include "support/store_backends.h"
#include "support/target_server.h"

namespace vigil {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

class ApiWriteRacesTest : public test::StoreBackendTest {
 protected:
  void SetUp() override {
    StoreBackendTest::SetUp();
    if (IsSkipped()) return;
    store_ = database().open();
    server_ = std::make_unique<ApiServer>(*store_, registry_, HealthCheck{}, ApiOptions{});
    port_ = server_->start("127.0.0.1", 0);
  }
  void TearDown() override {
    if (server_) server_->stop();
  }

  // One client per thread: an httplib::Client is not shared between threads.
  std::unique_ptr<httplib::Client> client() const {
    auto c = std::make_unique<httplib::Client>("127.0.0.1", port_);
    c->set_read_timeout(10s);
    return c;
  }

  json create(httplib::Client& c, const json& body) const {
    const auto result = c.Post("/v1/services", body.dump(), "application/json");
    if (!result || result->status != 201) {
      ADD_FAILURE() << "create failed: " << (result ? result->body : "no answer");
      return json::object();
    }
    return json::parse(result->body)["data"]["service"];
  }

  std::unique_ptr<Store> store_;
  prometheus::Registry registry_;
  std::unique_ptr<ApiServer> server_;
  int port_ = 0;
};

INSTANTIATE_TEST_SUITE_P(Backends, ApiWriteRacesTest, test::kStoreBackends, test::backend_name);

TEST_P(ApiWriteRacesTest, TwoConcurrentPatchesOfDifferentFieldsAreBothKept) {
  auto main = client();
  const json created = create(
      *main,
      {{"name", "pay"}, {"url", "http://pay.test/"}, {"team", "start"}, {"tags", {"start"}}});
  ASSERT_TRUE(created.contains("id"));
  const std::string path = "/v1/services/" + std::to_string(created["id"].get<ServiceId>());

  constexpr int kRounds = 60;
  auto team_client = client();
  auto tags_client = client();
  // Both PATCHes of a round leave the barrier together, so their transactions overlap.
  std::barrier start(2);
  int lost = 0;
  for (int round = 0; round < kRounds; ++round) {
    const std::string value = "r" + std::to_string(round);
    int team_status = 0;
    int tags_status = 0;
    std::thread team([&] {
      start.arrive_and_wait();
      const auto r =
          team_client->Patch(path.c_str(), json{{"team", value}}.dump(), "application/json");
      team_status = r ? r->status : -1;
    });
    std::thread tags([&] {
      start.arrive_and_wait();
      const auto r =
          tags_client->Patch(path.c_str(), json{{"tags", {value}}}.dump(), "application/json");
      tags_status = r ? r->status : -1;
    });
    team.join();
    tags.join();
    ASSERT_EQ(team_status, 200) << "round " << round;
    ASSERT_EQ(tags_status, 200) << "round " << round;
    const auto stored = store_->get_service(created["id"].get<ServiceId>());
    ASSERT_TRUE(stored);
    const bool kept_team = stored->service.spec.team == value;
    const bool kept_tags = stored->service.spec.tags == std::vector<std::string>{value};
    if (!kept_team || !kept_tags) ++lost;
  }
  EXPECT_EQ(lost, 0) << lost << " of " << kRounds << " rounds lost one of the two changes";
}

TEST_P(ApiWriteRacesTest, NoPushStartedAfterADeleteAnsweredIsAccepted) {
  constexpr int kRounds = 15;
  constexpr int kPushers = 3;
  auto main = client();
  for (int round = 0; round < kRounds; ++round) {
    const json beat = create(
        *main,
        {{"name", "job" + std::to_string(round)}, {"kind", "heartbeat"}, {"interval_seconds", 60}});
    ASSERT_TRUE(beat.contains("push_token"));
    const std::string push = "/v1/push/" + beat["push_token"].get<std::string>();
    const std::string path = "/v1/services/" + std::to_string(beat["id"].get<ServiceId>()) +
                             (round % 2 == 0 ? "" : "?purge=true");

    // Steady-clock nanoseconds at which the DELETE's answer arrived; max() until then.
    std::atomic<std::int64_t> deleted_at{std::numeric_limits<std::int64_t>::max()};
    std::atomic<int> late_accepted{0};
    std::atomic<int> late_pushes{0};
    std::atomic<int> early_pushes{0};
    const auto now_ns = [] { return SteadyClock::now().time_since_epoch().count(); };
    std::vector<std::thread> pushers;
    for (int p = 0; p < kPushers; ++p) {
      pushers.emplace_back([&] {
        auto c = client();
        // Until 200 pushes have started after the DELETE answered (bounded in time as well).
        const auto give_up = SteadyClock::now() + 10s;
        while (late_pushes.load() < 200 && SteadyClock::now() < give_up) {
          const std::int64_t started = now_ns();
          const auto r = c->Get(push.c_str());
          if (started > deleted_at.load()) {
            ++late_pushes;
            if (!r || r->status != 404) ++late_accepted;
          } else {
            ++early_pushes;
          }
        }
      });
    }
    // Some pushes fill the cache before the DELETE races them.
    const auto warm_deadline = SteadyClock::now() + 5s;
    while (early_pushes.load() < 20 && SteadyClock::now() < warm_deadline)
      std::this_thread::sleep_for(1ms);
    const auto reply = main->Delete(path.c_str());
    deleted_at = now_ns();
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->status, 200) << reply->body;
    for (auto& t : pushers) t.join();
    EXPECT_GE(late_pushes.load(), 200) << "round " << round;
    EXPECT_EQ(late_accepted.load(), 0)
        << "round " << round << ": " << late_accepted << " of " << late_pushes
        << " pushes started after the DELETE answered were accepted";
  }
}

}  // namespace
}  // namespace vigil

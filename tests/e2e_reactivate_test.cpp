// End to end: a service deactivated (PATCH "active": false, or DELETE without purge) and then
// reactivated continues its history — its counters match its stored ticks and its open event
// goes on while its status stays the same — in `vigil run` and in `vigil api` beside
// `vigil runner` (that one on both backends). The real binary, a real target server, a real
// database (a SQLite file, a PostgreSQL schema).
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "support/process.h"
#include "support/store_backends.h"
#include "support/target_server.h"
#include "support/vigil_process.h"

namespace vigil::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using ServiceId = std::int64_t;

enum class Mode { single, split };
void PrintTo(Mode mode, std::ostream* out) { *out << (mode == Mode::single ? "run" : "split"); }

class ReactivateEndToEnd : public ::testing::TestWithParam<std::tuple<Mode, StoreBackend>> {
 protected:
  void SetUp() override {
    const auto [mode, backend] = GetParam();
    if (auto reason = unavailable(backend)) GTEST_SKIP() << *reason;
    database.emplace(backend);
    std::ofstream(dir.file("services.json")) << "[]";
    const auto env = database->vigil_environment();
    if (mode == Mode::single) {
      processes.push_back(std::make_unique<VigilProcess>(dir, "run", api_port, env));
    } else {
      processes.push_back(std::make_unique<VigilProcess>(dir, "runner", api_port, env));
      processes.push_back(std::make_unique<VigilProcess>(dir, "api", api_port, env));
    }
    ASSERT_TRUE(eventually([&] { return status_of("GET", "/healthz") != 0; }, 10s)) << logs();
  }

  void TearDown() override {
    for (auto& process : processes) EXPECT_EQ(process->stop(), 0) << process->log();
  }

  std::string logs() const {
    std::string text;
    for (const auto& process : processes) text += process->log();
    return text;
  }

  // The response's JSON body (null when there is none), its status in `status`.
  json call(const std::string& method, const std::string& path, const json& body, int& status) {
    httplib::Client client("127.0.0.1", api_port);
    client.set_connection_timeout(1);
    client.set_read_timeout(5);
    httplib::Result result = [&] {
      if (method == "POST") return client.Post(path.c_str(), body.dump(), "application/json");
      if (method == "PATCH") return client.Patch(path.c_str(), body.dump(), "application/json");
      if (method == "DELETE") return client.Delete(path.c_str());
      return client.Get(path.c_str());
    }();
    status = result ? result->status : 0;
    if (!result) return nullptr;
    return json::parse(result->body, nullptr, false);
  }
  int status_of(const std::string& method, const std::string& path, const json& body = nullptr) {
    int status = 0;
    call(method, path, body, status);
    return status;
  }
  json get(const std::string& path) {
    int status = 0;
    json body = call("GET", path, nullptr, status);
    EXPECT_EQ(status, 200) << path << ": " << body.dump();
    return status == 200 ? body["data"] : json::object();
  }

  std::string path_of(ServiceId id) const { return "/v1/services/" + std::to_string(id); }
  json service(ServiceId id) { return get(path_of(id))["service"]; }
  std::int64_t tick_count(ServiceId id) {
    const json metric = service(id)["metric"];
    return metric.is_object() ? metric["data"]["tick_count"].get<std::int64_t>() : 0;
  }
  std::int64_t up_count(ServiceId id) {
    return service(id)["metric"]["data"]["up_count"].get<std::int64_t>();
  }

  // Every stored tick of the service, walked page by page.
  std::vector<json> all_ticks(ServiceId id) {
    std::vector<json> ticks;
    std::string cursor;
    for (int page = 0; page < 100; ++page) {
      const json data = get(path_of(id) + "/ticks?limit=1000" +
                            (cursor.empty() ? "" : "&cursor=" + cursor))["ticks"];
      for (const auto& tick : data["data"]) ticks.push_back(tick);
      if (!data["next"].is_string()) break;
      cursor = data["next"].get<std::string>();
    }
    return ticks;
  }
  json events(ServiceId id) { return get(path_of(id) + "/events?limit=100")["events"]["data"]; }

  bool ticks_reach(ServiceId id, std::int64_t count) {
    return eventually([&] { return tick_count(id) >= count; }, 5s);
  }

  // After a deactivation: waits until the service's counters stop moving (the runner let go
  // and the writer flushed), then checks they match its stored ticks. Returns the tick count.
  std::int64_t settled(ServiceId id) {
    std::int64_t last = -1;
    for (int round = 0; round < 10; ++round) {
      std::this_thread::sleep_for(700ms);  // over one change-feed interval (500 ms)
      const std::int64_t now = tick_count(id);
      if (now == last) break;
      last = now;
    }
    const std::vector<json> ticks = all_ticks(id);
    EXPECT_EQ(last, static_cast<std::int64_t>(ticks.size())) << logs();
    std::int64_t up = 0;
    for (const auto& tick : ticks) up += tick["up"].get<bool>() ? 1 : 0;
    EXPECT_EQ(up_count(id), up);
    return last;
  }

  bool set_active(ServiceId id, bool active) {
    return status_of("PATCH", path_of(id), {{"active", active}}) == 200;
  }

  TargetServer target;
  TempDir dir;
  int api_port = closed_port();
  std::optional<TestDatabase> database;
  std::vector<std::unique_ptr<VigilProcess>> processes;
};

TEST_P(ReactivateEndToEnd, DeactivatedAndReactivatedAServiceContinuesItsCountersAndEvents) {
  target.set_switch_up(true);
  int status = 0;
  const json created =
      call("POST", "/v1/services",
           {{"name", "paused"}, {"url", target.url("/switch")}, {"interval_seconds", 0.2}}, status);
  ASSERT_EQ(status, 201) << created.dump();
  const auto id = created["data"]["service"]["id"].get<ServiceId>();
  ASSERT_TRUE(ticks_reach(id, 3)) << logs();
  const json first_events = events(id);
  ASSERT_EQ(first_events.size(), 1u) << first_events.dump();
  const auto uptime_id = first_events[0]["id"].get<std::int64_t>();

  // Off with PATCH, on again: counters go on, the same uptime event stays open.
  ASSERT_TRUE(set_active(id, false));
  const std::int64_t paused_at = settled(id);
  ASSERT_TRUE(set_active(id, true));
  ASSERT_TRUE(ticks_reach(id, paused_at + 3)) << logs();

  // Off with DELETE (no purge), on again.
  ASSERT_EQ(status_of("DELETE", path_of(id)), 200);
  const std::int64_t deleted_at = settled(id);
  EXPECT_GE(deleted_at, paused_at + 3);
  json now_events = events(id);
  ASSERT_EQ(now_events.size(), 1u) << now_events.dump();
  EXPECT_EQ(now_events[0]["id"], uptime_id);
  EXPECT_TRUE(now_events[0]["date_ended"].is_null());

  // Reactivated while its target went down: one new event, a downtime, at the first new tick.
  target.set_switch_up(false);
  ASSERT_TRUE(set_active(id, true));
  ASSERT_TRUE(eventually([&] { return service(id)["status"] == "down"; }, 5s)) << logs();
  ASSERT_TRUE(ticks_reach(id, deleted_at + 2)) << logs();
  ASSERT_TRUE(set_active(id, false));
  const std::int64_t down_at = settled(id);
  now_events = events(id);
  ASSERT_EQ(now_events.size(), 2u) << now_events.dump();
  EXPECT_EQ(now_events[0]["event"], "downtime");
  EXPECT_GT(now_events[0]["id"].get<std::int64_t>(), uptime_id);
  EXPECT_TRUE(now_events[0]["date_ended"].is_null());
  EXPECT_EQ(now_events[1]["id"], uptime_id);
  EXPECT_EQ(now_events[1]["date_ended"], now_events[0]["date_started"]);
  const auto downtime_id = now_events[0]["id"];

  // And again while it stays down: the same downtime event goes on.
  ASSERT_TRUE(set_active(id, true));
  ASSERT_TRUE(ticks_reach(id, down_at + 2)) << logs();
  ASSERT_TRUE(set_active(id, false));
  settled(id);
  now_events = events(id);
  ASSERT_EQ(now_events.size(), 2u) << now_events.dump();
  EXPECT_EQ(now_events[0]["id"], downtime_id);
  EXPECT_EQ(now_events[1]["id"], uptime_id);
}

TEST_P(ReactivateEndToEnd, ABeatPushedRightAfterItsHeartbeatWasCreatedIsRecorded) {
  std::vector<ServiceId> ids;
  for (int i = 0; i < 5; ++i) {
    int status = 0;
    const json created = call(
        "POST", "/v1/services",
        {{"name", "job-" + std::to_string(i)}, {"kind", "heartbeat"}, {"interval_seconds", 60}},
        status);
    ASSERT_EQ(status, 201) << created.dump();
    const json& service = created["data"]["service"];
    ids.push_back(service["id"].get<ServiceId>());
    // No pause: the runner may not have seen the heartbeat yet.
    ASSERT_EQ(status_of("GET", "/v1/push/" + service["push_token"].get<std::string>()), 200);
  }
  for (const ServiceId id : ids)
    EXPECT_TRUE(eventually([&] { return tick_count(id) == 1; }, 3s)) << id << "\n" << logs();
}

// The name: the mode, then the backend (a function: a lambda's commas would split the macro's
// arguments).
std::string instance_name(const ::testing::TestParamInfo<std::tuple<Mode, StoreBackend>>& info) {
  return std::string(std::get<0>(info.param) == Mode::single ? "Run" : "ApiBesideRunner") + "_" +
         backend_name({std::get<1>(info.param), info.index});
}

// PostgreSQL in the split mode only: there everything the single mode stores goes through the
// database too, and the change feed besides, so a single-mode run (8 s) would add nothing.
INSTANTIATE_TEST_SUITE_P(Modes, ReactivateEndToEnd,
                         ::testing::Values(std::tuple(Mode::single, StoreBackend::sqlite),
                                           std::tuple(Mode::split, StoreBackend::sqlite),
                                           std::tuple(Mode::split, StoreBackend::postgres)),
                         instance_name);

}  // namespace
}  // namespace vigil::test

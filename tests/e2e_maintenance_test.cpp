// Maintenance windows through the API and per-service alert routing, end to end: the
// real vigil binary, its database of each backend (a SQLite file, a PostgreSQL schema), a
// webhook receiver on 127.0.0.1, real HTTP.
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "support/process.h"
#include "support/receiver.h"
#include "support/store_backends.h"
#include "support/target_server.h"
#include "support/vigil_process.h"

namespace vigil::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kToken = "maintenance-test-token";

using test::Receiver;

class MaintenanceEndToEnd : public StoreBackendTest {
 protected:
  using EnvMap = std::map<std::string, std::string>;

  void write_services(const json& services) {
    const json file = {
        {"services", services},
        {"alerting",
         {{"channels", {{"hook", {{"type", "webhook"}, {"url", receiver.url("/hook")}}}}},
          {"default", {"hook"}},
          {"maintenance",
           {{{"every", "sun 03:00"}, {"duration_minutes", 30}, {"timezone", "Europe/Berlin"}}}}}}};
    std::ofstream(dir.file("services.json")) << file.dump(2);
  }

  std::unique_ptr<VigilProcess> start(const std::string& command = "run") {
    auto vigil = std::make_unique<VigilProcess>(
        dir, command, port, database().vigil_environment({{"API_TOKEN", kToken}}));
    const bool up = eventually(
        [&] {
          httplib::Client client("127.0.0.1", port);
          auto res = client.Get("/healthz");
          return res && res->status == 200;
        },
        15s);
    if (!up) ADD_FAILURE() << vigil->log();
    return vigil;
  }

  // A request with the write token (or none); status and parsed body.
  std::pair<int, json> call(const std::string& method, const std::string& path,
                            const std::string& body = "", bool token = true) {
    httplib::Client client("127.0.0.1", port);
    httplib::Headers headers;
    if (token) headers.emplace("Authorization", std::string("Bearer ") + kToken);
    httplib::Result res = method == "GET" ? client.Get(path.c_str(), headers)
                          : method == "DELETE"
                              ? client.Delete(path.c_str(), headers)
                              : client.Post(path.c_str(), headers, body, "application/json");
    if (!res) return {0, json()};
    return {res->status, json::parse(res->body, nullptr, false)};
  }

  TempDir dir;
  Receiver receiver;
  int port = closed_port();
};

INSTANTIATE_TEST_SUITE_P(Backends, MaintenanceEndToEnd, kStoreBackends, backend_name);

TEST_P(MaintenanceEndToEnd, ApiWindowsAreValidatedStoredHonouredLiveAndSurviveARestart) {
  write_services(json::array());
  auto vigil = start();

  // Bad windows: 400 naming the field, nothing stored.
  const std::pair<json, std::string> bad[] = {
      {{{"every", "sun 02:00"}, {"duration_minutes", 60}, {"timezone", "Mars/Olympus_Mons"}},
       "maintenance.timezone: unknown time zone"},
      {{{"every", "someday 02:00"}, {"duration_minutes", 60}}, "maintenance.every"},
      {{{"every", "daily 02:00"}}, "maintenance.duration_minutes"},
      {{{"start", 100}}, "needs both \"start\" and \"end\""},
      {{{"start", 200}, {"end", 100}}, "maintenance.end"},
      {{{"start", 100}, {"end", 200}, {"id", 3}}, "unknown key \"id\""},
      {{{"start", 100}, {"end", 200}, {"services", "db"}}, "maintenance.services"}};
  for (const auto& [body, message] : bad) {
    const auto [status, answer] = call("POST", "/v1/maintenance", body.dump());
    EXPECT_EQ(status, 400) << body;
    EXPECT_NE(answer.value("error", "").find(message), std::string::npos) << answer;
  }
  EXPECT_EQ(call("POST", "/v1/maintenance", "[1]").first, 400);
  EXPECT_EQ(call("POST", "/v1/maintenance", R"({"start":1,"end":2})", false).first, 401);

  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  const json window = {{"services", {"refused"}}, {"start", now - 60}, {"end", now + 3600}};
  const auto [created_status, created] = call("POST", "/v1/maintenance", window.dump());
  ASSERT_EQ(created_status, 201) << created;
  const json& stored = created["data"]["window"];
  EXPECT_EQ(stored["source"], "api");
  EXPECT_EQ(stored["active"], true);
  EXPECT_EQ(stored["services"], json({"refused"}));
  EXPECT_EQ(stored["start"], now - 60);
  EXPECT_TRUE(stored["next_start"].is_null());
  const std::int64_t id = stored["id"].get<std::int64_t>();
  const json recurring = {{"tags", {"batch"}},
                          {"every", "daily 23:30"},
                          {"duration_minutes", 90},
                          {"timezone", "America/New_York"}};
  const auto [recurring_status, recurring_created] =
      call("POST", "/v1/maintenance", recurring.dump());
  ASSERT_EQ(recurring_status, 201) << recurring_created;
  EXPECT_GT(recurring_created["data"]["window"]["next_start"].get<double>(), double(now));
  EXPECT_EQ(vigil->stop(), 0) << vigil->log();

  // Restart with a service that is down from its first probe: the stored window still holds it.
  write_services(json::array({{{"name", "refused"},
                               {"url", "http://127.0.0.1:" + std::to_string(closed_port()) + "/"},
                               {"interval_seconds", 0.2}}}));
  vigil = start();
  const auto [list_status, listed] = call("GET", "/v1/maintenance");
  ASSERT_EQ(list_status, 200);
  const json& windows = listed["data"]["windows"];
  ASSERT_EQ(windows.size(), 3u) << listed;
  EXPECT_TRUE(windows[0]["id"].is_null());  // the services file's
  EXPECT_EQ(windows[0]["source"], "file");
  EXPECT_EQ(windows[0]["timezone"], "Europe/Berlin");
  EXPECT_TRUE(windows[0]["next_start"].is_number());
  EXPECT_EQ(windows[1]["id"], id);
  EXPECT_EQ(windows[1]["active"], true);
  EXPECT_EQ(windows[2]["every"], "daily 23:30");
  EXPECT_EQ(windows[2]["timezone"], "America/New_York");

  json alerts;
  ASSERT_TRUE(eventually(
      [&] {
        alerts = call("GET", "/v1/alerts?active=true").second;
        return alerts["data"]["alerts"].size() == 1;
      },
      10s))
      << alerts << vigil->log();
  std::this_thread::sleep_for(1500ms);  // several down probes and alerter checks
  EXPECT_TRUE(receiver.bodies("/hook").empty());
  const auto alert_id = alerts["data"]["alerts"][0]["alert_id"].get<std::int64_t>();
  const auto detail = call("GET", "/v1/alerts/" + std::to_string(alert_id)).second;
  EXPECT_EQ(detail["data"]["alert"]["notifications"][0]["status"], "suppressed") << detail;
  EXPECT_TRUE(detail["data"]["alert"]["previous_status"].is_null()) << detail;  // first probe

  // Deleting the window ends it while the service is still down: one trigger, without a restart.
  EXPECT_EQ(call("DELETE", "/v1/maintenance/" + std::to_string(id), "", false).first, 401);
  EXPECT_EQ(call("DELETE", "/v1/maintenance/" + std::to_string(id)).first, 200);
  EXPECT_EQ(call("DELETE", "/v1/maintenance/" + std::to_string(id)).first, 404);
  EXPECT_EQ(call("DELETE", "/v1/maintenance/abc").first, 400);
  ASSERT_TRUE(eventually([&] { return !receiver.bodies("/hook").empty(); }, 10s)) << vigil->log();
  const json trigger = json::parse(receiver.bodies("/hook").front());
  EXPECT_EQ(trigger["kind"], "trigger");
  EXPECT_EQ(trigger["service"], "refused");
  EXPECT_TRUE(trigger["previous_status"].is_null());
  std::this_thread::sleep_for(1200ms);
  EXPECT_EQ(receiver.bodies("/hook").size(), 1u);
  EXPECT_EQ(call("GET", "/v1/maintenance").second["data"]["windows"].size(), 2u);
  EXPECT_EQ(vigil->stop(), 0) << vigil->log();
}

// Split mode: a window written through `vigil api` silences the alerts of a separate
// `vigil runner` on the same database, and deleting it there lets the trigger out.
TEST_P(MaintenanceEndToEnd, AWindowCreatedThroughVigilApiHoldsTheRunnerProcess) {
  write_services(json::array({{{"name", "refused"},
                               {"url", "http://127.0.0.1:" + std::to_string(closed_port()) + "/"},
                               {"interval_seconds", 0.2}}}));
  auto api = start("api");
  const auto [created_status, created] = call(
      "POST", "/v1/maintenance", json{{"every", "daily 00:00"}, {"duration_minutes", 1440}}.dump());
  ASSERT_EQ(created_status, 201) << created;
  EXPECT_EQ(created["data"]["window"]["active"], true);  // a whole day, every day: always on
  const auto listed = call("GET", "/v1/maintenance").second;
  ASSERT_EQ(listed["data"]["windows"].size(), 2u) << listed;
  EXPECT_EQ(listed["data"]["windows"][0]["source"], "file");

  VigilProcess runner(dir, "runner", closed_port(),
                      database().vigil_environment({{"API_TOKEN", kToken}}));
  json alerts;
  ASSERT_TRUE(eventually(
      [&] {
        alerts = call("GET", "/v1/alerts?active=true").second;
        return alerts["data"]["alerts"].size() == 1;
      },
      10s))
      << alerts << runner.log();
  std::this_thread::sleep_for(1500ms);
  EXPECT_TRUE(receiver.bodies("/hook").empty()) << runner.log();

  const auto id = created["data"]["window"]["id"].get<std::int64_t>();
  EXPECT_EQ(call("DELETE", "/v1/maintenance/" + std::to_string(id)).first, 200);
  ASSERT_TRUE(eventually([&] { return !receiver.bodies("/hook").empty(); }, 10s)) << runner.log();
  EXPECT_EQ(json::parse(receiver.bodies("/hook").front())["kind"], "trigger");
  EXPECT_EQ(runner.stop(), 0) << runner.log();
  EXPECT_EQ(api->stop(), 0) << api->log();
}

// previous_status of the first transition after a restart comes from the stored events: the
// service was up before the restart, so its first trigger afterwards says "up".
TEST_P(MaintenanceEndToEnd, TheFirstTriggerAfterARestartKnowsTheServiceWasUp) {
  TargetServer target;
  write_services(json::array({{{"name", "switch"},
                               {"url", target.url("/switch")},
                               {"interval_seconds", 0.2},
                               {"alerts", {"hook"}}}}));
  auto vigil = start();
  ASSERT_TRUE(eventually(
      [&] {
        const auto listed = call("GET", "/v1/services").second["data"]["services"]["data"];
        return listed.size() == 1 && listed[0]["status"] == "up";
      },
      10s))
      << vigil->log();
  EXPECT_EQ(vigil->stop(), 0) << vigil->log();

  target.set_switch_up(false);
  vigil = start();
  ASSERT_TRUE(eventually([&] { return !receiver.bodies("/hook").empty(); }, 10s)) << vigil->log();
  const json trigger = json::parse(receiver.bodies("/hook").front());
  EXPECT_EQ(trigger["kind"], "trigger");
  EXPECT_EQ(trigger["previous_status"], "up");
  target.set_switch_up(true);
  ASSERT_TRUE(eventually([&] { return receiver.bodies("/hook").size() >= 2; }, 10s))
      << vigil->log();
  const json resolve = json::parse(receiver.bodies("/hook")[1]);
  EXPECT_EQ(resolve["kind"], "resolve");
  EXPECT_EQ(resolve["previous_status"], "down");
  EXPECT_EQ(vigil->stop(), 0) << vigil->log();
}

TEST_P(MaintenanceEndToEnd, AServiceAlertsListIsCheckedAgainstTheChannels) {
  write_services(json::array(
      {{{"name", "web"}, {"url", "http://127.0.0.1:1/"}, {"alerts", {"hook", "pager"}}}}));
  const CommandResult checked =
      run_command("cd " + dir.path() + " && SERVICES_FILE=services.json " + VIGIL_BINARY +
                  " check-config 2>&1");
  EXPECT_EQ(checked.exit_code, 2) << checked.output;
  EXPECT_NE(checked.output.find("services[0] (\"web\").alerts[1]: unknown channel \"pager\" "
                                "(known: hook)"),
            std::string::npos)
      << checked.output;

  write_services(json::array());
  auto vigil = start();
  const json base = {{"name", "api"}, {"url", "http://127.0.0.1:1/"}};
  json unknown = base;
  unknown["alerts"] = {"pager"};
  const auto [bad_status, bad] = call("POST", "/v1/services", unknown.dump());
  EXPECT_EQ(bad_status, 400);
  EXPECT_NE(
      bad.value("error", "").find(R"(service.alerts[0]: unknown channel "pager" (known: hook))"),
      std::string::npos)
      << bad;
  json good = base;
  good["alerts"] = {"hook"};
  good["repeat_every_seconds"] = 120;
  const auto [created_status, created] = call("POST", "/v1/services", good.dump());
  ASSERT_EQ(created_status, 201) << created;
  EXPECT_EQ(created["data"]["service"]["alerts"], json({"hook"}));
  EXPECT_EQ(created["data"]["service"]["repeat_every_seconds"], 120);
  const auto id = created["data"]["service"]["id"].get<std::int64_t>();
  httplib::Client client("127.0.0.1", port);
  auto patched = client.Patch(("/v1/services/" + std::to_string(id)).c_str(),
                              {{"Authorization", std::string("Bearer ") + kToken}},
                              R"({"alerts": ["nope"]})", "application/json");
  ASSERT_TRUE(patched);
  EXPECT_EQ(patched->status, 400) << patched->body;
  EXPECT_EQ(vigil->stop(), 0) << vigil->log();
}

}  // namespace
}  // namespace vigil::test

// End to end for service management and heartbeats: the real vigil binary, a real
// target server, a real database of each backend (a SQLite file, a PostgreSQL schema), real
// HTTP, and `vigil beat` run as a command.
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <thread>

#include "support/process.h"
#include "support/store_backends.h"
#include "support/target_server.h"
#include "support/vigil_process.h"

namespace vigil::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using ServiceId = std::int64_t;

struct Reply {
  int status = 0;
  json body;
  std::string raw;
};

class ManageEndToEnd : public StoreBackendTest {
 protected:
  void SetUp() override {
    StoreBackendTest::SetUp();
    if (IsSkipped()) return;
    write_services(json::array());
  }

  void write_services(const json& services) {
    std::ofstream(dir.file("services.json")) << services.dump(2);
  }

  Reply request(const std::string& method, const std::string& path, const json& body = nullptr,
                const std::string& token = "") {
    httplib::Client client("127.0.0.1", api_port);
    client.set_connection_timeout(1);
    client.set_read_timeout(5);
    httplib::Headers headers;
    if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
    httplib::Result result = [&] {
      if (method == "POST")
        return client.Post(path.c_str(), headers, body.dump(), "application/json");
      if (method == "PATCH")
        return client.Patch(path.c_str(), headers, body.dump(), "application/json");
      if (method == "DELETE") return client.Delete(path.c_str(), headers);
      return client.Get(path.c_str(), headers);
    }();
    Reply reply;
    if (!result) return reply;
    reply.status = result->status;
    reply.raw = result->body;
    if (result->get_header_value("Content-Type") == "application/json")
      reply.body = json::parse(result->body, nullptr, false);
    return reply;
  }

  bool api_up() { return request("GET", "/healthz").status != 0; }

  json create(const json& service) {
    const Reply reply = request("POST", "/v1/services", service);
    EXPECT_EQ(reply.status, 201) << reply.raw;
    return reply.body["data"]["service"];
  }

  json ticks(ServiceId id, int limit = 1000) {
    const Reply reply = request(
        "GET", "/v1/services/" + std::to_string(id) + "/ticks?limit=" + std::to_string(limit));
    return reply.status == 200 ? reply.body["data"]["ticks"]["data"] : json::array();
  }

  json service(ServiceId id) {
    return request("GET", "/v1/services/" + std::to_string(id)).body["data"]["service"];
  }

  std::string beat_command(const std::string& args) {
    return "cd " + dir.path() + " && API_PORT=" + std::to_string(api_port) + " " + VIGIL_BINARY +
           " beat " + args;
  }

  TargetServer target;
  TempDir dir;
  int api_port = closed_port();
};

INSTANTIATE_TEST_SUITE_P(Backends, ManageEndToEnd, kStoreBackends, backend_name);

// The commands check-config and beat, whose outcome does not depend on the backend: SQLite only.
class ManageCommandEndToEnd : public ManageEndToEnd {};
INSTANTIATE_TEST_SUITE_P(SqliteOnly, ManageCommandEndToEnd, kSqliteOnly, backend_name);

TEST_P(ManageEndToEnd, APostedServiceIsProbedWithinASecondAndADeleteStopsIt) {
  write_services(json::array(
      {{{"name", "steady"}, {"url", target.url("/hits/steady")}, {"interval_seconds", 0.1}}}));
  VigilProcess vigil(dir, "run", api_port, database().vigil_environment());
  ASSERT_TRUE(eventually([&] { return api_up(); }, 10s)) << vigil.log();
  ASSERT_TRUE(eventually([&] { return target.hits("steady") > 0; }, 5s));

  const auto posted_at = std::chrono::steady_clock::now();
  const json created =
      create({{"name", "posted"}, {"url", target.url("/hits/posted")}, {"interval_seconds", 0.2}});
  const auto id = created["id"].get<ServiceId>();
  ASSERT_TRUE(eventually([&] { return !ticks(id).empty(); }, 3s)) << vigil.log();
  EXPECT_LE(std::chrono::steady_clock::now() - posted_at, 1500ms);
  EXPECT_EQ(ticks(id)[0]["up"], true);

  // A changed URL is followed without a restart.
  ASSERT_EQ(
      request("PATCH", "/v1/services/" + std::to_string(id), {{"url", target.url("/status/503")}})
          .status,
      200);
  ASSERT_TRUE(eventually([&] { return ticks(id, 1)[0]["status_code"] == 503; }, 3s));

  // Deleted: probing stops within a second; the other service never missed a beat.
  const int steady_before = target.hits("steady");
  ASSERT_EQ(request("DELETE", "/v1/services/" + std::to_string(id)).status, 200);
  std::this_thread::sleep_for(1s);
  const std::size_t after_delete = ticks(id).size();
  std::this_thread::sleep_for(800ms);
  EXPECT_EQ(ticks(id).size(), after_delete);
  EXPECT_GE(target.hits("steady") - steady_before, 15);  // 1.8 s at 0.1 s
  EXPECT_EQ(vigil.stop(), 0) << vigil.log();
  EXPECT_NE(vigil.log().find("API_TOKEN is not set"), std::string::npos) << vigil.log();
}

TEST_P(ManageEndToEnd, HeartbeatsArePushedGoDownWhenSilentAndFailAtOnce) {
  // Debug logs every request: the push token must still never appear in the log.
  VigilProcess vigil(dir, "run", api_port, database().vigil_environment({{"LOG_LEVEL", "debug"}}));
  ASSERT_TRUE(eventually([&] { return api_up(); }, 10s)) << vigil.log();
  const json beat = create({{"name", "nightly"},
                            {"kind", "heartbeat"},
                            {"interval_seconds", 0.5},
                            {"grace_seconds", 0.1},
                            {"threshold", 1}});
  const auto id = beat["id"].get<ServiceId>();
  const std::string push = "/v1/push/" + beat["push_token"].get<std::string>();

  Reply pushed = request("GET", push + "?msg=started&duration_ms=42");
  ASSERT_EQ(pushed.status, 200);
  EXPECT_EQ(pushed.raw, "OK");
  ASSERT_TRUE(eventually([&] { return service(id)["status"] == "up"; }, 2s)) << vigil.log();
  json last = ticks(id, 1)[0];
  EXPECT_EQ(last["up"], true);
  EXPECT_EQ(last["message"], "started");
  EXPECT_DOUBLE_EQ(last["response_ms"].get<double>(), 42.0);

  // Silent past 0.6 s: down with the reason, and a downtime event.
  ASSERT_TRUE(eventually([&] { return service(id)["status"] == "down"; }, 3s)) << vigil.log();
  last = ticks(id, 1)[0];
  EXPECT_EQ(last["error"], "missed heartbeat");
  const Reply events = request("GET", "/v1/services/" + std::to_string(id) + "/events");
  ASSERT_EQ(events.body["data"]["events"]["data"].size(), 2u) << events.raw;
  EXPECT_EQ(events.body["data"]["events"]["data"][0]["event"], "downtime");

  // Back up on the next beat, then down at once on /fail.
  ASSERT_EQ(request("POST", push, json::object()).status, 200);
  ASSERT_TRUE(eventually([&] { return service(id)["status"] == "up"; }, 2s));
  ASSERT_EQ(request("GET", push + "/fail?msg=disk%20full").status, 200);
  ASSERT_TRUE(eventually([&] { return service(id)["status"] == "down"; }, 1s));
  EXPECT_EQ(ticks(id, 1)[0]["error"], "reported down: disk full");
  EXPECT_EQ(request("GET", "/v1/push/not-a-token").status, 404);

  // Listed and measured like a probed service, plus its last-seen time.
  EXPECT_EQ(
      request("GET", "/v1/services?kind=heartbeat").body["data"]["services"]["data"][0]["name"],
      "nightly");
  const Reply metrics = request("GET", "/metrics");
  EXPECT_NE(metrics.raw.find("vigil_heartbeat_last_seen_timestamp_seconds{service=\"nightly\"}"),
            std::string::npos);
  EXPECT_NE(metrics.raw.find("vigil_service_up{service=\"nightly\"} 0"), std::string::npos);
  EXPECT_NE(metrics.raw.find("probe_success{service=\"nightly\"} 0"), std::string::npos);
  if (std::filesystem::exists("/usr/bin/promtool")) {
    std::ofstream(dir.file("metrics.txt")) << metrics.raw;
    const CommandResult lint =
        run_command("/usr/bin/promtool check metrics < " + dir.file("metrics.txt"));
    EXPECT_EQ(lint.exit_code, 0) << lint.output;
  }
  EXPECT_EQ(vigil.stop(), 0) << vigil.log();
  const std::string log = vigil.log();
  EXPECT_NE(log.find("/v1/push/<token>"), std::string::npos) << log;
  EXPECT_EQ(log.find(beat["push_token"].get<std::string>()), std::string::npos) << log;
}

TEST_P(ManageCommandEndToEnd, CheckConfigListsHeartbeatsFromTheFile) {
  write_services(json::array({{{"name", "nightly-backup"},
                               {"kind", "heartbeat"},
                               {"interval_seconds", 86400},
                               {"grace_seconds", 3600},
                               {"threshold", 2},
                               {"team", "ops"}}}));
  const CommandResult result = run_command("cd " + dir.path() + " && SERVICES_FILE=services.json " +
                                           VIGIL_BINARY + " check-config");
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("nightly-backup  heartbeat  every 86400 s, grace 3600 s, down "
                               "after 2 missed"),
            std::string::npos)
      << result.output;
}

TEST_P(ManageEndToEnd, AHeartbeatThatWentSilentWhileVigilWasDownIsDownRightAfterStart) {
  json beat;
  {
    VigilProcess vigil(dir, "run", api_port, database().vigil_environment());
    ASSERT_TRUE(eventually([&] { return api_up(); }, 10s)) << vigil.log();
    beat = create({{"name", "job"}, {"kind", "heartbeat"}, {"interval_seconds", 2}});
    ASSERT_EQ(request("GET", "/v1/push/" + beat["push_token"].get<std::string>()).status, 200);
    ASSERT_TRUE(eventually([&] { return service(beat["id"])["status"] == "up"; }, 2s));
    ASSERT_EQ(vigil.stop(), 0) << vigil.log();
  }
  std::this_thread::sleep_for(2500ms);  // past 2 s + 0.2 s grace while nothing ran
  VigilProcess vigil(dir, "run", api_port, database().vigil_environment());
  const auto started = std::chrono::steady_clock::now();
  ASSERT_TRUE(eventually([&] { return api_up() && service(beat["id"])["status"] == "down"; }, 5s))
      << vigil.log();
  // Right after start, not one interval + grace (2.2 s) after it.
  EXPECT_LE(std::chrono::steady_clock::now() - started, 1200ms);
  EXPECT_EQ(ticks(beat["id"], 1)[0]["error"], "missed heartbeat");
  EXPECT_EQ(vigil.stop(), 0) << vigil.log();
}

TEST_P(ManageCommandEndToEnd, VigilBeatWrapsACommandAndReportsItsOutcome) {
  VigilProcess vigil(dir, "run", api_port, database().vigil_environment());
  ASSERT_TRUE(eventually([&] { return api_up(); }, 10s)) << vigil.log();
  const json beat = create({{"name", "cron"}, {"kind", "heartbeat"}, {"interval_seconds", 60}});
  const auto id = beat["id"].get<ServiceId>();
  const std::string token = beat["push_token"];
  const std::string url = "http://127.0.0.1:" + std::to_string(api_port) + "/v1/push/" + token;

  CommandResult result = run_command(beat_command(url + " -- true"));
  EXPECT_EQ(result.exit_code, 0) << result.output;
  ASSERT_TRUE(eventually([&] { return ticks(id).size() == 1; }, 2s));
  EXPECT_EQ(ticks(id)[0]["up"], true);
  EXPECT_EQ(ticks(id)[0]["message"], "exit code 0");

  // The bare token goes to this machine's API (API_PORT); the command's exit code comes back.
  result = run_command(beat_command(token + " --msg backup -- false"));
  EXPECT_EQ(result.exit_code, 1) << result.output;
  ASSERT_TRUE(eventually([&] { return ticks(id).size() == 2; }, 2s));
  json last = ticks(id)[0];
  EXPECT_EQ(last["up"], false);
  EXPECT_EQ(last["message"], "backup (exit code 1)");
  EXPECT_EQ(last["error"], "reported down: backup (exit code 1)");

  // The command's time is the tick's response time.
  result = run_command(beat_command(url + " -- sh -c 'sleep 0.3; exit 7'"));
  EXPECT_EQ(result.exit_code, 7) << result.output;
  ASSERT_TRUE(eventually([&] { return ticks(id).size() == 3; }, 2s));
  EXPECT_GE(ticks(id)[0]["response_ms"].get<double>(), 290);
  EXPECT_LT(ticks(id)[0]["response_ms"].get<double>(), 3000);

  // Without a command: a plain report, or a failure with --fail.
  EXPECT_EQ(run_command(beat_command(url)).exit_code, 0);
  EXPECT_EQ(run_command(beat_command(url + " --fail --msg manual")).exit_code, 0);
  ASSERT_TRUE(eventually([&] { return ticks(id).size() == 5; }, 2s));
  EXPECT_EQ(ticks(id)[0]["message"], "manual");
  EXPECT_EQ(ticks(id)[0]["up"], false);

  // A wrong token: exit 1, the token is not printed.
  result = run_command(beat_command("http://127.0.0.1:" + std::to_string(api_port) +
                                    "/v1/push/wrongtoken123 -- true"));
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_NE(result.output.find("unknown push token"), std::string::npos) << result.output;
  EXPECT_EQ(result.output.find("wrongtoken123"), std::string::npos) << result.output;
  // Usage errors exit 2.
  EXPECT_EQ(run_command(beat_command("")).exit_code, 2);
  EXPECT_EQ(run_command(beat_command(url + " --fail -- true")).exit_code, 2);
  EXPECT_EQ(run_command(beat_command(url + " --")).exit_code, 2);
  EXPECT_EQ(vigil.stop(), 0) << vigil.log();
}

TEST_P(ManageEndToEnd, SplitRunnerAndApiFollowWritesAndPushesThroughTheDatabase) {
  const std::string token = "e2e-write-token-0123456789";
  VigilProcess runner(dir, "runner", api_port, database().vigil_environment());
  VigilProcess api(dir, "api", api_port, database().vigil_environment({{"API_TOKEN", token}}));
  ASSERT_TRUE(eventually([&] { return api_up(); }, 10s)) << api.log();
  EXPECT_EQ(request("POST", "/v1/services", {{"name", "x"}, {"url", "http://a/"}}).status, 401);

  const auto posted_at = std::chrono::steady_clock::now();
  const Reply created = request(
      "POST", "/v1/services",
      {{"name", "split"}, {"url", target.url("/hits/split")}, {"interval_seconds", 0.2}}, token);
  ASSERT_EQ(created.status, 201) << created.raw;
  ASSERT_TRUE(eventually([&] { return target.hits("split") > 0; }, 4s)) << runner.log();
  EXPECT_LE(std::chrono::steady_clock::now() - posted_at, 2s);

  const Reply beat =
      request("POST", "/v1/services",
              {{"name", "split-beat"}, {"kind", "heartbeat"}, {"interval_seconds", 60}}, token);
  ASSERT_EQ(beat.status, 201) << beat.raw;
  const auto beat_id = beat.body["data"]["service"]["id"].get<ServiceId>();
  std::this_thread::sleep_for(800ms);  // the runner learns of the heartbeat first
  ASSERT_EQ(
      request("GET", "/v1/push/" + beat.body["data"]["service"]["push_token"].get<std::string>() +
                         "?msg=split")
          .status,
      200);
  ASSERT_TRUE(eventually([&] { return !ticks(beat_id).empty(); }, 3s)) << runner.log();
  EXPECT_EQ(ticks(beat_id)[0]["message"], "split");

  const auto id = created.body["data"]["service"]["id"].get<ServiceId>();
  ASSERT_EQ(request("DELETE", "/v1/services/" + std::to_string(id) + "?purge=true", nullptr, token)
                .status,
            200);
  std::this_thread::sleep_for(1500ms);
  const int after_purge = target.hits("split");
  std::this_thread::sleep_for(600ms);
  EXPECT_EQ(target.hits("split"), after_purge);
  EXPECT_EQ(runner.stop(), 0) << runner.log();
  EXPECT_EQ(api.stop(), 0) << api.log();
  EXPECT_EQ(runner.log().find("storage: committing"), std::string::npos) << runner.log();
}

TEST_P(ManageEndToEnd, RetentionDeletesOldTicksWhileCountersKeepGrowing) {
  write_services(json::array(
      {{{"name", "busy"}, {"url", target.url("/hits/busy")}, {"interval_seconds", 0.1}}}));
  // 0.00001 days is 0.864 s: every cleanup (each second) leaves under a second of ticks.
  VigilProcess vigil(dir, "run", api_port,
                     database().vigil_environment(
                         {{"RETENTION_DAYS", "0.00001"}, {"CLEANUP_INTERVAL_SECONDS", "1"}}));
  ASSERT_TRUE(eventually([&] { return api_up(); }, 10s)) << vigil.log();
  const json listing = request("GET", "/v1/services").body;
  const auto id = listing["data"]["services"]["data"][0]["id"].get<ServiceId>();
  ASSERT_TRUE(eventually([&] { return service(id)["metric"]["data"]["tick_count"] >= 35; }, 8s));
  const std::size_t kept = ticks(id).size();
  EXPECT_LE(kept, 25u);  // under 0.864 s + 1 s between cleanups at 10 ticks a second
  EXPECT_GE(kept, 1u);
  EXPECT_NE(vigil.log().find("retention: deleted"), std::string::npos) << vigil.log();
  EXPECT_EQ(vigil.stop(), 0) << vigil.log();
}

}  // namespace
}  // namespace vigil::test

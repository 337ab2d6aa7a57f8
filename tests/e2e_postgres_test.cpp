// End-to-end on PostgreSQL: the real vigil binary told DATABASE_URL, a real PostgreSQL server
// (the ctest run's shared one, each test a schema of its own; one of its own for the test that
// stops it), a real target, real HTTP. What
// vigil answers is checked through its API, what it stored straight from the database.
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <string>

#include "support/postgres_server.h"
#include "support/receiver.h"
#include "support/store_backends.h"
#include "support/target_server.h"
#include "support/text.h"
#include "support/vigil_process.h"

namespace vigil::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

class PostgresEndToEnd : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto reason = unavailable(StoreBackend::postgres)) GTEST_SKIP() << *reason;
    db.emplace(StoreBackend::postgres);
    std::smatch found;
    ASSERT_TRUE(std::regex_search(db->location(), found, std::regex("password=(\\S+)")));
    password = found[1];
    std::ofstream(dir.file("services.json")) << json::array(
        {{{"name", "healthy"}, {"url", target.url("/ok")}, {"interval_seconds", 0.2}},
         {{"name", "refused"},
          {"url", "http://127.0.0.1:" + std::to_string(closed_port()) + "/"},
          {"interval_seconds", 0.2}}});
  }

  // `vigil run` on the test's schema; with `password_from_environment`, DATABASE_URL leaves the
  // password out and libpq takes it from PGPASSWORD.
  std::unique_ptr<VigilProcess> start(bool password_from_environment = false) {
    std::map<std::string, std::string> env{{"DATABASE_URL", db->location()}};
    if (password_from_environment) {
      env["DATABASE_URL"] = std::regex_replace(db->location(), std::regex(" password=\\S+"), "");
      env["PGPASSWORD"] = password;
    }
    return std::make_unique<VigilProcess>(dir, "run", api_port, env);
  }

  std::optional<json> call(const std::string& method, const std::string& path,
                           const json& body = nullptr, int* status = nullptr) {
    httplib::Client client("127.0.0.1", api_port);
    client.set_connection_timeout(1);
    client.set_read_timeout(10);
    const auto res = method == "POST" ? client.Post(path.c_str(), body.dump(), "application/json")
                                      : client.Get(path.c_str());
    if (!res) return std::nullopt;
    if (status) *status = res->status;
    try {
      return json::parse(res->body);
    } catch (const json::exception&) {
      return std::nullopt;
    }
  }

  // The status of GET `path` (a push answers text, not JSON); 0 when there is no answer.
  int status_of(const std::string& path) {
    httplib::Client client("127.0.0.1", api_port);
    client.set_connection_timeout(1);
    client.set_read_timeout(10);
    const auto res = client.Get(path.c_str());
    return res ? res->status : 0;
  }

  // The service named `name` in /v1/services; null when it is not listed (yet).
  json service(const std::string& name) {
    const auto listing = call("GET", "/v1/services");
    if (!listing) return nullptr;
    for (const auto& s : (*listing)["data"]["services"]["data"])
      if (s["name"] == name) return s;
    return nullptr;
  }

  std::int64_t tick_count(const std::string& name) {
    const json s = service(name);
    if (s.is_null() || s["metric"]["data"].is_null()) return 0;
    return s["metric"]["data"]["tick_count"].get<std::int64_t>();
  }

  TargetServer target;
  TempDir dir;
  int api_port = closed_port();
  std::optional<TestDatabase> db;
  std::string password;
};

TEST_F(PostgresEndToEnd, ProbesServesPushesAndKeepsItsHistoryAcrossARestart) {
  std::int64_t first_ticks = 0;
  int first_event_id = 0;
  std::string token;
  {
    auto vigil = start();
    ASSERT_TRUE(
        eventually([&] { return tick_count("healthy") >= 3 && tick_count("refused") >= 3; }, 30s))
        << vigil->log();
    const json healthy = service("healthy");
    const json refused = service("refused");
    EXPECT_EQ(healthy["current_status"]["event"], "uptime") << healthy.dump();
    EXPECT_EQ(refused["current_status"]["event"], "downtime") << refused.dump();
    EXPECT_EQ(healthy["metric"]["data"]["uptime_percent"], 100.0);
    EXPECT_EQ(refused["metric"]["data"]["uptime_percent"], 0.0);
    first_event_id = healthy["current_status"]["id"].get<int>();

    // A heartbeat created through the API, and a beat pushed to it.
    int status = 0;
    const auto created =
        call("POST", "/v1/services",
             {{"name", "nightly"}, {"kind", "heartbeat"}, {"interval_seconds", 3600}}, &status);
    ASSERT_TRUE(created) << vigil->log();
    ASSERT_EQ(status, 201) << created->dump();
    token = (*created)["data"]["service"]["push_token"].get<std::string>();
    EXPECT_EQ(status_of("/v1/push/" + token), 200);
    ASSERT_TRUE(eventually([&] { return tick_count("nightly") == 1; }, 10s)) << vigil->log();

    // Stored in PostgreSQL, not in a SQLite file beside it.
    EXPECT_GE(db->count("SELECT count(*) FROM service_ticks"), 7);
    EXPECT_EQ(db->count("SELECT count(*) FROM services"), 3);
    EXPECT_TRUE(
        eventually([&] { return db->count("SELECT count(*) FROM component_beats") >= 2; }, 10s));
    EXPECT_FALSE(std::filesystem::exists(dir.file("vigil.db")));
    const auto health = call("GET", "/healthz", nullptr, &status);
    ASSERT_TRUE(health);
    EXPECT_EQ(status, 200) << health->dump();

    first_ticks = tick_count("healthy");
    EXPECT_EQ(vigil->stop(), 0) << vigil->log();
    const std::string log = vigil->log();
    EXPECT_TRUE(contains(log, "stopped cleanly")) << log;
    EXPECT_FALSE(contains(log, password)) << log;
    // A clean stop removes its beats.
    EXPECT_EQ(db->count("SELECT count(*) FROM component_beats"), 0);
  }

  // Restarted with the password in libpq's PGPASSWORD instead of the URL.
  auto vigil = start(/*password_from_environment=*/true);
  ASSERT_TRUE(eventually([&] { return tick_count("healthy") >= first_ticks + 3; }, 30s))
      << vigil->log();
  const json healthy = service("healthy");
  EXPECT_EQ(healthy["current_status"]["id"].get<int>(), first_event_id) << healthy.dump();
  const json nightly = service("nightly");
  ASSERT_FALSE(nightly.is_null());
  EXPECT_EQ(nightly["metric"]["data"]["tick_count"], 1) << nightly.dump();
  const auto events =
      call("GET", "/v1/services/" + std::to_string(healthy["id"].get<int>()) + "/events");
  ASSERT_TRUE(events);
  EXPECT_EQ((*events)["data"]["events"]["data"].size(), 1u) << events->dump();
  EXPECT_EQ(status_of("/v1/push/" + token), 200);  // the token survived the restart
  EXPECT_TRUE(eventually([&] { return tick_count("nightly") == 2; }, 10s)) << vigil->log();
  EXPECT_EQ(vigil->stop(), 0) << vigil->log();
  EXPECT_FALSE(contains(vigil->log(), password));
}

// Alerting on PostgreSQL: a down service's trigger is delivered once, the alert and its sent
// notification are stored, /v1/alerts lists it, and after a restart the alert is the same one
// (still active, not triggered again).
TEST_F(PostgresEndToEnd, ADownServiceIsAlertedOnceAndItsAlertOutlivesARestart) {
  Receiver receiver;
  std::ofstream(dir.file("services.json")) << json{
      {"services",
       {{{"name", "refused"},
         {"url", "http://127.0.0.1:" + std::to_string(closed_port()) + "/"},
         {"interval_seconds", 0.2}}}},
      {"alerting",
       {{"channels", {{"hook", {{"type", "webhook"}, {"url", receiver.url("/hook")}}}}},
        {"default", {"hook"}}}}}.dump();
  const auto listed_alerts = [&]() -> json {
    const auto alerts = call("GET", "/v1/alerts");
    return alerts ? (*alerts)["data"]["alerts"] : json();
  };
  std::int64_t alert_id = 0;
  {
    auto vigil = start();
    ASSERT_TRUE(eventually([&] { return !receiver.bodies("/hook").empty(); }, 30s)) << vigil->log();
    const json trigger = json::parse(receiver.bodies("/hook").front());
    EXPECT_EQ(trigger["kind"], "trigger");
    EXPECT_EQ(trigger["service"], "refused");
    ASSERT_TRUE(eventually(
        [&] { return db->count("SELECT count(*) FROM notifications WHERE status = 'sent'") == 1; },
        10s));
    EXPECT_EQ(db->count("SELECT count(*) FROM alerts WHERE active"), 1);
    alert_id = db->count("SELECT alert_id FROM alerts");
    const json alerts = listed_alerts();
    ASSERT_EQ(alerts.size(), 1u) << alerts.dump();
    EXPECT_EQ(alerts[0]["alert_id"], alert_id) << alerts.dump();
    EXPECT_EQ(vigil->stop(), 0) << vigil->log();
  }

  auto vigil = start();
  const std::int64_t ticks = tick_count("refused");
  ASSERT_TRUE(eventually([&] { return tick_count("refused") >= ticks + 3; }, 30s)) << vigil->log();
  const json alerts = listed_alerts();
  ASSERT_EQ(alerts.size(), 1u) << alerts.dump();
  EXPECT_EQ(alerts[0]["alert_id"], alert_id) << alerts.dump();
  EXPECT_EQ(db->count("SELECT count(*) FROM notifications"), 1);
  EXPECT_EQ(receiver.requests("/hook").size(), 1u);
  EXPECT_EQ(vigil->stop(), 0) << vigil->log();
}

// The server goes away under a running vigil: /healthz answers 503 naming it (host and port,
// never the password) while probing goes on. A server of the test's own, since it is stopped.
TEST(PostgresEndToEndFaults, HealthzIs503NamingTheServerWhileItIsGone) {
  if (auto reason = PostgresServer::unavailable_reason()) GTEST_SKIP() << *reason;
  std::optional<PostgresServer> server;
  server.emplace("vigil_e2e");
  const std::string where = "host=127.0.0.1 port=" + std::to_string(server->port());
  const std::string password = server->password();
  TargetServer target;
  TempDir dir;
  std::ofstream(dir.file("services.json")) << json::array(
      {{{"name", "healthy"}, {"url", target.url("/hits/healthy")}, {"interval_seconds", 0.2}}});
  const int api_port = closed_port();
  VigilProcess vigil(dir, "run", api_port, {{"DATABASE_URL", server->url()}});
  const auto healthz = [&]() -> std::pair<int, json> {
    httplib::Client client("127.0.0.1", api_port);
    client.set_connection_timeout(1);
    client.set_read_timeout(10);
    const auto res = client.Get("/healthz");
    if (!res) return {0, json()};
    try {
      return {res->status, json::parse(res->body)};
    } catch (const json::exception&) {
      return {res->status, json()};
    }
  };
  // Running, not only listening: the API answers before the runner has started.
  ASSERT_TRUE(eventually(
      [&] {
        const auto [status, body] = healthz();
        return status == 200 && body["data"]["runner"]["status"] == "alive" &&
               target.hits("healthy") >= 2;
      },
      30s))
      << vigil.log();

  server.reset();  // stopped by its PID (fast shutdown: vigil's sessions are ended)
  std::pair<int, json> health;
  ASSERT_TRUE(eventually(
      [&] {
        health = healthz();
        return health.first == 503;
      },
      20s))
      << health.second.dump() << vigil.log();
  EXPECT_EQ(health.second["data"]["storage"], "failed") << health.second.dump();
  const std::string error = health.second["data"].value("storage_error", "");
  EXPECT_TRUE(contains(error, where)) << error;
  EXPECT_TRUE(contains(health.second.value("error", ""), where)) << health.second.dump();
  EXPECT_FALSE(contains(health.second.dump(), password)) << health.second.dump();
  // Probing goes on without the database.
  const int hits = target.hits("healthy");
  EXPECT_TRUE(eventually([&] { return target.hits("healthy") >= hits + 3; }, 10s));
  EXPECT_FALSE(contains(vigil.log(), password)) << vigil.log();
}

}  // namespace
}  // namespace vigil::test

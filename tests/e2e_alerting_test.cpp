// Alerting end to end: the real vigil binary with an "alerting" section, a service that
// is down, and a webhook receiver on 127.0.0.1; on a database of each backend (a SQLite file, a
// PostgreSQL schema).
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <fstream>
#include <functional>
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

using test::Receiver;

class EndToEndAlerting : public StoreBackendTest {};

INSTANTIATE_TEST_SUITE_P(Backends, EndToEndAlerting, kStoreBackends, backend_name);

TEST_P(EndToEndAlerting, ADownServiceIsAlertedThroughTheConfiguredWebhook) {
  TempDir dir;
  Receiver receiver;
  const int api_port = closed_port();
  const json services = {{"services",
                          {{{"name", "refused"},
                            {"url", "http://127.0.0.1:" + std::to_string(closed_port()) + "/"},
                            {"interval_seconds", 0.2},
                            {"priority", "p1"}}}},
                         {"alerting",
                          {{"channels",
                            {{"hook",
                              {{"type", "webhook"},
                               {"url", receiver.url("/hook")},
                               {"headers", {{"Authorization", "Bearer ${HOOK_TOKEN}"}}}}}}},
                           {"default", {"hook"}}}}};
  std::ofstream(dir.file("services.json")) << services.dump(2);

  const std::string log_path = dir.file("run.log");
  ChildProcess vigil(VIGIL_BINARY, {"run"}, dir.path(),
                     database().vigil_environment({{"API_PORT", std::to_string(api_port)},
                                                   {"API_HOST", "127.0.0.1"},
                                                   {"SERVICES_FILE", dir.file("services.json")},
                                                   {"HOOK_TOKEN", "tok-3141592653"},
                                                   {"LOG_LEVEL", "debug"}}),
                     log_path);

  ASSERT_TRUE(eventually([&] { return !receiver.bodies("/hook").empty(); }, 15s))
      << read_file(log_path);
  const json trigger = json::parse(receiver.bodies("/hook").front());
  EXPECT_EQ(trigger["kind"], "trigger");
  EXPECT_EQ(trigger["service"], "refused");
  EXPECT_EQ(trigger["priority"], 1);
  EXPECT_NE(trigger["reason"].get<std::string>().find("refused"), std::string::npos) << trigger;
  EXPECT_EQ(receiver.requests("/hook").front().headers.find("Authorization")->second,
            "Bearer tok-3141592653");

  httplib::Client client("127.0.0.1", api_port);
  std::string metrics;
  ASSERT_TRUE(eventually(
      [&] {
        auto res = client.Get("/metrics");
        if (!res) return false;
        metrics = res->body;
        return metrics.find(R"(vigil_notifications_total{channel="hook",result="sent"} 1)") !=
               std::string::npos;
      },
      10s))
      << metrics;
  std::ofstream(dir.file("metrics.txt")) << metrics;
  const auto promtool = run_command("promtool check metrics < " + dir.file("metrics.txt"));
  EXPECT_EQ(promtool.output.find("vigil_notifications"), std::string::npos) << promtool.output;

  auto alerts = client.Get("/v1/alerts?active=true");
  ASSERT_TRUE(alerts);
  const json body = json::parse(alerts->body);
  ASSERT_EQ(body["data"]["alerts"].size(), 1u) << alerts->body;
  EXPECT_EQ(body["data"]["alerts"][0]["alert_id"], trigger["alert_id"]);

  vigil.signal(SIGTERM);
  EXPECT_EQ(vigil.wait_for_exit(20s).value_or(-1), 0) << read_file(log_path);
  EXPECT_EQ(read_file(log_path).find("tok-3141592653"), std::string::npos);  // never logged
  EXPECT_EQ(receiver.bodies("/hook").size(), 1u);  // one trigger, however many down ticks
}

}  // namespace
}  // namespace vigil::test

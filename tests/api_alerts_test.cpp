// The alerting routes over real HTTP: a real ApiServer on a real database of each backend (a
// SQLite file, a PostgreSQL server), a real Alerter delivering to a real receiver on 127.0.0.1.
#include <gtest/gtest.h>
#include <httplib.h>
#include <prometheus/registry.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>

#include "alerting/alerter.h"
#include "alerting/webhook.h"
#include "api/server.h"
#include "core/logging.h"
#include "storage/alert_store.h"
#include "storage/store.h"
#include "support/receiver.h"
#include "support/store_backends.h"
#include "support/target_server.h"

namespace vigil {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

using test::Receiver;

class AlertsApiTest : public ::testing::TestWithParam<test::StoreBackend> {
 protected:
  void SetUp() override {
    if (auto reason = test::unavailable(GetParam())) GTEST_SKIP() << *reason;
    set_log_level(LogLevel::error);
    db_.emplace(GetParam());
    store_ = db_->open();
    ServiceSpec spec;
    spec.name = "payments";
    spec.url = "http://127.0.0.1:1/";
    service_ = store_->create_service(spec, now_ms()).id;
    AlertingConfig config;
    ChannelConfig hook;
    hook.name = "hook";
    hook.channel = std::make_shared<WebhookChannel>(WebhookConfig{receiver_.url("/hook"), {}});
    config.channels.emplace("hook", hook);
    config.default_channels = {"hook"};
    AlerterOptions options;
    options.backoff = {};
    alerter_ = std::make_unique<Alerter>(db_->database()->open_alert_store(), *store_, config,
                                         registry_, options);
    alerter_->start();
    reads_ = db_->database()->open_alert_store();
    ApiOptions api_options;
    api_options.alerts = reads_.get();
    api_options.alerter = alerter_.get();
    server_ = std::make_unique<ApiServer>(
        *store_, registry_, [] { return HealthReport{}; }, api_options);
    port_ = server_->start("127.0.0.1", 0);
  }

  void change(bool up, TimePoint at) {
    TickRecord record;
    record.tick.service_id = service_;
    record.tick.ts = at;
    record.tick.up = up;
    record.tick.status_code = up ? 200 : 503;
    record.opens_event = up ? EventKind::uptime : EventKind::downtime;
    alerter_->on_tick(record);
    alerter_->flush();
  }

  std::pair<int, json> get(const std::string& path) {
    httplib::Client client("127.0.0.1", port_);
    auto result = client.Get(path.c_str());
    if (!result) throw std::runtime_error("request failed");
    return {result->status, json::parse(result->body)};
  }

  std::optional<test::TestDatabase> db_;
  Receiver receiver_;
  std::unique_ptr<Store> store_;
  prometheus::Registry registry_;
  ServiceId service_ = 0;
  std::unique_ptr<Alerter> alerter_;
  std::unique_ptr<AlertStore> reads_;
  std::unique_ptr<ApiServer> server_;
  int port_ = 0;
};

INSTANTIATE_TEST_SUITE_P(Backends, AlertsApiTest, test::kStoreBackends, test::backend_name);

TEST_P(AlertsApiTest, ListsAlertsWithFiltersAndOneWithItsNotifications) {
  const TimePoint t0 = from_unix_ms(1'700'000'000'000);
  change(false, t0);
  change(true, t0 + 60s);
  change(false, t0 + 120s);

  auto [status, body] = get("/v1/alerts");
  ASSERT_EQ(status, 200);
  const auto& all = body["data"]["alerts"];
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0]["active"], true);  // newest first
  EXPECT_EQ(all[1]["active"], false);
  EXPECT_EQ(all[1]["created_date"], 1'700'000'000);
  EXPECT_EQ(all[1]["closed_date"], 1'700'000'060);
  EXPECT_EQ(all[1]["service_id"], service_);
  EXPECT_EQ(all[1]["alert_name"], "payments down");

  EXPECT_EQ(get("/v1/alerts?active=true").second["data"]["alerts"].size(), 1u);
  EXPECT_EQ(get("/v1/alerts?active=false").second["data"]["alerts"].size(), 1u);
  EXPECT_EQ(get("/v1/alerts?since=1700000100").second["data"]["alerts"].size(), 1u);
  EXPECT_EQ(get("/v1/alerts?limit=1").second["data"]["alerts"].size(), 1u);
  EXPECT_EQ(get("/v1/alerts?service_id=999").second["data"]["alerts"].size(), 0u);

  const auto closed_id = all[1]["alert_id"].get<std::int64_t>();
  ASSERT_TRUE([&] {
    for (int i = 0; i < 500; ++i) {
      const auto n = get("/v1/alerts/" + std::to_string(closed_id)).second;
      const auto& list = n["data"]["alert"]["notifications"];
      if (list.size() == 2 && list[0]["status"] == "sent" && list[1]["status"] == "sent")
        return true;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }());
  const auto one = get("/v1/alerts/" + std::to_string(closed_id)).second["data"]["alert"];
  EXPECT_EQ(one["notifications"][0]["kind"], "trigger");
  EXPECT_EQ(one["notifications"][0]["channel"], "hook");
  EXPECT_EQ(one["notifications"][0]["response_code"], 200);
  EXPECT_EQ(one["notifications"][1]["kind"], "resolve");
  EXPECT_EQ(receiver_.requests("/hook").size(), 3u);
}

TEST_P(AlertsApiTest, BadParametersAre4xx) {
  EXPECT_EQ(get("/v1/alerts?active=yes").first, 400);
  EXPECT_EQ(get("/v1/alerts?limit=0").first, 400);
  EXPECT_EQ(get("/v1/alerts?service_id=x").first, 400);
  EXPECT_EQ(get("/v1/alerts?since=soon").first, 400);
  EXPECT_EQ(get("/v1/alerts/abc").first, 400);
  EXPECT_EQ(get("/v1/alerts/12345").first, 404);
}

TEST_P(AlertsApiTest, TestNotificationIsAWrite) {
  httplib::Client client("127.0.0.1", port_);
  auto missing = client.Post("/v1/alerts/test", "", "application/json");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 400);
  auto unknown = client.Post("/v1/alerts/test?channel=nope", "", "application/json");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 404);
  auto sent = client.Post("/v1/alerts/test?channel=hook", "", "application/json");
  ASSERT_TRUE(sent);
  EXPECT_EQ(sent->status, 202);
  EXPECT_EQ(receiver_.wait_for("/hook", 1).size(), 1u);
}

TEST_P(AlertsApiTest, AChannelThatIsNotUtf8Is400NamingTheParameter) {
  httplib::Client client("127.0.0.1", port_);
  for (const std::string channel : {"%FF", "%C3", "ho%C0%AFok"}) {
    auto reply = client.Post("/v1/alerts/test?channel=" + channel, "", "application/json");
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->status, 400) << channel;
    const json body = json::parse(reply->body);  // valid JSON, whatever was sent
    EXPECT_EQ(body["error"], "channel: not valid UTF-8") << channel;
  }
  EXPECT_TRUE(receiver_.requests("/hook").empty());
}

}  // namespace
}  // namespace vigil

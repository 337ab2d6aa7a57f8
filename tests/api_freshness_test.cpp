// Freshness: last_tick_at and the stale state, from the rule (an injected clock) through a real
// store of each backend to the JSON, the status filter and /metrics of a real ApiServer.
#include <gtest/gtest.h>
#include <httplib.h>
#include <prometheus/registry.h>

#include <bit>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "api/freshness_gauges.h"
#include "api/server.h"
#include "storage/store.h"
#include "support/prometheus_text.h"
#include "support/store_backends.h"
#include "support/target_server.h"

namespace vigil {
namespace {

using nlohmann::json;

constexpr std::int64_t kT = 1'700'000'000'000;  // ms
const TimePoint kAt = from_unix_ms(kT);

// ---- the rule ----

ServiceView view_of(Millis interval, Millis timeout, std::optional<TimePoint> last_tick,
                    TimePoint updated_at = from_unix_ms(kT - 86'400'000)) {
  ServiceView view;
  view.service.spec.interval = interval;
  view.service.spec.timeout = timeout;
  view.service.updated_at = updated_at;
  view.last_tick_at = last_tick;
  return view;
}

TEST(StaleRule, StaleJustPastTwoIntervalsAndATimeoutNotAtTheBound) {
  const ServiceView view = view_of(Millis(10'000), Millis(3'000), kAt);
  EXPECT_EQ(stale_after(Millis(10'000), Millis(3'000)), Millis(23'000));
  EXPECT_FALSE(is_stale(view, kAt));
  EXPECT_FALSE(is_stale(view, kAt + Millis(23'000)));
  EXPECT_TRUE(is_stale(view, kAt + Millis(23'001)));
}

TEST(StaleRule, ANeverProbedServiceCountsFromItsLastChange) {
  const ServiceView view = view_of(Millis(1'000), Millis(500), std::nullopt, kAt);
  EXPECT_FALSE(is_stale(view, kAt + Millis(2'500)));
  EXPECT_TRUE(is_stale(view, kAt + Millis(2'501)));
}

TEST(StaleRule, AChangeAfterTheLastTickRestartsTheCount) {
  // Reactivated (or edited) an hour after its last tick: the runner schedules it afresh.
  const ServiceView view =
      view_of(Millis(1'000), Millis(500), kAt - Millis(3'600'000), /*updated_at=*/kAt);
  EXPECT_FALSE(is_stale(view, kAt + Millis(2'500)));
  EXPECT_TRUE(is_stale(view, kAt + Millis(2'501)));
}

TEST(StaleRule, HeartbeatsAndInactiveServicesAreNeverStale) {
  ServiceView heartbeat = view_of(Millis(1'000), Millis(500), kAt);
  heartbeat.service.spec.kind = ServiceKind::heartbeat;
  EXPECT_FALSE(is_stale(heartbeat, kAt + Millis(86'400'000)));
  ServiceView inactive = view_of(Millis(1'000), Millis(500), kAt);
  inactive.service.active = false;
  EXPECT_FALSE(is_stale(inactive, kAt + Millis(86'400'000)));
}

// ---- a real store ----

class FreshnessStore : public test::StoreBackendTest {
 protected:
  void SetUp() override {
    StoreBackendTest::SetUp();
    if (IsSkipped()) return;
    store_ = database().open();
  }

  // A probed service created at `created`, every 10 s with a 2 s timeout (bound: 22 s).
  ServiceId create(const std::string& name, TimePoint created,
                   ServiceKind kind = ServiceKind::http) {
    ServiceSpec spec;
    spec.name = name;
    spec.kind = kind;
    if (kind == ServiceKind::http) spec.url = "http://127.0.0.1:1/" + name;
    spec.interval = Millis(10'000);
    spec.timeout = Millis(2'000);
    return store_->create_service(spec, created).id;
  }

  void tick(ServiceId id, TimePoint at, bool up) {
    TickRecord record;
    record.tick.service_id = id;
    record.tick.ts = at;
    record.tick.up = up;
    record.tick.region = "local";
    record.metric_after.add(up, 5);
    record.opens_event = up ? EventKind::uptime : EventKind::downtime;
    store_->apply({record});
  }

  std::vector<std::string> names(const ServiceFilter& filter) {
    std::vector<std::string> out;
    for (const auto& view : store_->list_services(filter)) out.push_back(view.service.spec.name);
    return out;
  }

  std::unique_ptr<Store> store_;
};

INSTANTIATE_TEST_SUITE_P(Backends, FreshnessStore, test::kStoreBackends, test::backend_name);

TEST_P(FreshnessStore, ViewsCarryTheLastTickAndTheFilterAgreesWithTheRuleAtTheBound) {
  const TimePoint created = kAt - Millis(10'000);
  const ServiceId up = create("up", created);
  const ServiceId down = create("down", created);
  create("never", created);
  tick(up, kAt - Millis(1'000), true);
  tick(up, kAt, true);
  tick(down, kAt - Millis(5'000), false);
  EXPECT_EQ(store_->get_service(up)->last_tick_at, kAt);
  EXPECT_EQ(store_->get_service(down)->last_tick_at, kAt - Millis(5'000));

  // 22 s after the last tick of "up": "down" (27 s) and "never" (32 s) are stale, "up" not yet.
  const TimePoint bound = kAt + Millis(22'000);
  EXPECT_EQ(names({.stale = true, .now = bound}), (std::vector<std::string>{"down", "never"}));
  EXPECT_EQ(names({.status = EventKind::uptime, .now = bound}), std::vector<std::string>{"up"});
  EXPECT_TRUE(names({.status = EventKind::downtime, .now = bound}).empty());
  EXPECT_EQ(names({.stale = true, .now = bound + Millis(1)}),
            (std::vector<std::string>{"up", "down", "never"}));
  EXPECT_TRUE(names({.status = EventKind::uptime, .now = bound + Millis(1)}).empty());
  // Before any bound: the events decide.
  EXPECT_TRUE(names({.stale = true, .now = kAt}).empty());
  EXPECT_EQ(names({.status = EventKind::downtime, .now = kAt}), std::vector<std::string>{"down"});
  for (const auto& view : store_->list_services(ServiceFilter{}))
    EXPECT_EQ(is_stale(view, bound), view.service.spec.name != "up") << view.service.spec.name;
}

TEST_P(FreshnessStore, GaugesShowTheLastTickAndStalenessByTheInjectedClock) {
  const ServiceId probed = create("probed", kAt - Millis(60'000));
  const ServiceId beat = create("beat", kAt - Millis(60'000), ServiceKind::heartbeat);
  create("never", kAt - Millis(60'000));
  tick(probed, kAt, true);
  tick(beat, kAt - Millis(500), true);
  TimePoint clock = kAt + Millis(22'000);
  FreshnessGauges gauges(*store_, std::chrono::seconds(0), [&] { return clock; });
  const auto value = [&](const std::string& family, const std::string& service) {
    std::optional<double> found;
    for (const auto& f : gauges.Collect())
      if (f.name == family)
        for (const auto& m : f.metric)
          if (m.label.at(0).value == service) found = m.gauge.value;
    return found;
  };
  EXPECT_EQ(value("vigil_service_last_tick_timestamp_seconds", "probed"), kT / 1000.0);
  EXPECT_EQ(value("vigil_service_last_tick_timestamp_seconds", "beat"), (kT - 500) / 1000.0);
  EXPECT_EQ(value("vigil_service_last_tick_timestamp_seconds", "never"), std::nullopt);
  EXPECT_EQ(value("vigil_service_stale", "probed"), 0.0);
  EXPECT_EQ(value("vigil_service_stale", "never"), 1.0);
  EXPECT_EQ(value("vigil_service_stale", "beat"), std::nullopt) << "heartbeats have a deadline";
  clock += Millis(1);
  EXPECT_EQ(value("vigil_service_stale", "probed"), 1.0);
}

// ---- over HTTP ----

class FreshnessHttp : public FreshnessStore {
 protected:
  void SetUp() override {
    FreshnessStore::SetUp();
    if (IsSkipped()) return;
    const TimePoint now = now_ms();
    // Created two hours ago: "fresh" ticked just now, "old" an hour ago.
    fresh_ = create("fresh", now - Millis(7'200'000));
    old_ = create("old", now - Millis(7'200'000));
    tick(fresh_, now, true);
    tick(old_, now - Millis(3'600'000), true);
    old_tick_s_ = to_unix_seconds(now - Millis(3'600'000));
    server_ = std::make_unique<ApiServer>(*store_, registry_, [] { return HealthReport{}; });
    const int port = server_->start("127.0.0.1", 0);
    client_ = std::make_unique<httplib::Client>("127.0.0.1", port);
  }
  void TearDown() override {
    client_.reset();
    if (server_) server_->stop();
  }
  json get_json(const std::string& path) {
    const auto res = client_->Get(path.c_str());
    if (!res) throw std::runtime_error("no answer for " + path);
    json body = json::parse(res->body);
    body["http_status"] = res->status;
    return body;
  }
  std::vector<std::string> listed(const std::string& query) {
    std::vector<std::string> out;
    const json body = get_json("/v1/services" + query);
    for (const auto& s : body["data"]["services"]["data"]) out.push_back(s["name"]);
    return out;
  }

  ServiceId fresh_ = 0, old_ = 0;
  std::int64_t old_tick_s_ = 0;
  prometheus::Registry registry_;
  std::unique_ptr<ApiServer> server_;
  std::unique_ptr<httplib::Client> client_;
};

INSTANTIATE_TEST_SUITE_P(Backends, FreshnessHttp, test::kStoreBackends, test::backend_name);

TEST_P(FreshnessHttp, TheJsonAndTheStatusFilterShowStaleServices) {
  const json old = get_json("/v1/services/" + std::to_string(old_))["data"]["service"];
  EXPECT_EQ(old["status"], "stale");
  EXPECT_EQ(old["last_tick_at"], old_tick_s_);
  EXPECT_EQ(old["current_status"]["event"], "uptime");
  const json fresh = get_json("/v1/services/" + std::to_string(fresh_))["data"]["service"];
  EXPECT_EQ(fresh["status"], "up");
  EXPECT_TRUE(fresh["last_tick_at"].is_number_integer());

  EXPECT_EQ(listed("?status=stale"), std::vector<std::string>{"old"});
  EXPECT_EQ(listed("?status=up"), std::vector<std::string>{"fresh"});
  EXPECT_TRUE(listed("?status=down").empty());
  const json bad = get_json("/v1/services?status=late");
  EXPECT_EQ(bad["http_status"], 400);
  EXPECT_NE(bad["error"].get<std::string>().find("status"), std::string::npos) << bad.dump();
}

TEST_P(FreshnessHttp, MetricsShowTheLastTickAndStaleness) {
  const auto res = client_->Get("/metrics");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  const auto parsed = test::parse_exposition(res->body);
  EXPECT_TRUE(parsed.errors.empty()) << parsed.errors.front();
  const auto value = [&](const std::string& family, const std::string& service) {
    const auto& series = parsed.families.at(family).series;
    const auto it = series.find({family, {{"service", service}}});
    return it == series.end() ? std::nullopt
                              : std::optional<double>(std::bit_cast<double>(it->second));
  };
  const auto old_tick = value("vigil_service_last_tick_timestamp_seconds", "old");
  ASSERT_TRUE(old_tick);
  EXPECT_NEAR(*old_tick, double(old_tick_s_), 1.0);
  EXPECT_EQ(value("vigil_service_stale", "old"), 1.0);
  EXPECT_EQ(value("vigil_service_stale", "fresh"), 0.0);
  EXPECT_EQ(parsed.families.at("vigil_service_stale").type, "gauge");
}

}  // namespace
}  // namespace vigil

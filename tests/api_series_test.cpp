// The time-series routes over real HTTP against a real store: /v1/services/{id}/metrics, .../series
// and /v1/uptime, their numbers checked against the ticks and events the test wrote.
#include <gtest/gtest.h>
#include <httplib.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "api/server.h"
#include "storage/store.h"
#include "support/store_backends.h"
#include "support/target_server.h"

namespace vigil {
namespace {

using nlohmann::json;

constexpr std::int64_t kBase = 1'699'999'200'000;  // a whole UTC hour
constexpr std::int64_t kMinuteMs = 60'000;
std::string secs(std::int64_t ms) { return std::to_string(ms / 1000); }

class SeriesApi : public test::StoreBackendTest {
 protected:
  void SetUp() override {
    StoreBackendTest::SetUp();
    if (IsSkipped()) return;
    store = database().open();
    ServiceSpec a, b;
    a.name = "flappy";
    a.url = "http://a.test/";
    b.name = "silent";
    b.url = "http://b.test/";
    store->sync_services({a, b}, from_unix_ms(kBase));
    for (const auto& s : store->active_services()) ids.push_back(s.id);
    server = std::make_unique<ApiServer>(*store, registry, [] { return HealthReport{}; });
    client = std::make_unique<httplib::Client>("127.0.0.1", server->start("127.0.0.1", 0));
  }

  // Service "flappy", a tick every 30 s from kBase - 30 min to kBase + 90 min: up, down from
  // +10 min, up from +25, down from +40, up from +45 (still open).
  void write_flaps() {
    const auto up_at = [](std::int64_t t) {
      const std::int64_t m = (t - kBase) / kMinuteMs;
      return !((m >= 10 && m < 25) || (m >= 40 && m < 45));
    };
    std::vector<TickRecord> batch;
    Metric metric;
    std::optional<bool> last;
    for (std::int64_t t = kBase - 30 * kMinuteMs; t < kBase + 90 * kMinuteMs; t += 30'000) {
      TickRecord r;
      r.tick.service_id = ids[0];
      r.tick.ts = from_unix_ms(t);
      r.tick.up = up_at(t);
      r.tick.response_ms = 5.0 + double((t / 30'000) % 97);  // 5..101 ms, spread
      metric.add(r.tick.up, r.tick.response_ms);
      r.metric_after = metric;
      if (last != r.tick.up) r.opens_event = r.tick.up ? EventKind::uptime : EventKind::downtime;
      last = r.tick.up;
      ticks.push_back(r.tick);
      batch.push_back(r);
      if (batch.size() == 25) {
        store->apply(batch);
        batch.clear();
      }
    }
    store->apply(batch);
  }

  json get(const std::string& path, int want = 200) {
    const auto res = client->Get(path.c_str());
    EXPECT_TRUE(res) << path;
    if (!res) return json();
    EXPECT_EQ(res->status, want) << path << ": " << res->body;
    return json::parse(res->body);
  }

  std::vector<double> raw_ms(std::int64_t from, std::int64_t to) const {
    std::vector<double> out;
    for (const auto& t : ticks)
      if (to_unix_ms(t.ts) >= from && to_unix_ms(t.ts) < to) out.push_back(t.response_ms);
    std::sort(out.begin(), out.end());
    return out;
  }

  test::TempDir dir;
  std::unique_ptr<Store> store;
  std::vector<ServiceId> ids;
  std::vector<Tick> ticks;
  prometheus::Registry registry;
  std::unique_ptr<ApiServer> server;
  std::unique_ptr<httplib::Client> client;
};

INSTANTIATE_TEST_SUITE_P(Backends, SeriesApi, test::kStoreBackends, test::backend_name);

TEST_P(SeriesApi, MetricsOfAWindowMatchTheTicksAndEvents) {
  write_flaps();
  const std::int64_t from = kBase, to = kBase + 60 * kMinuteMs;
  const json m = get("/v1/services/" + std::to_string(ids[0]) + "/metrics?from=" + secs(from) +
                     "&to=" + secs(to))["data"]["metrics"];
  EXPECT_EQ(m["probe_count"], 120);
  EXPECT_EQ(m["down_count"], 40);  // 15 + 5 minutes down, two ticks a minute
  EXPECT_NEAR(m["uptime_percent"].get<double>(), 100.0 * 80 / 120, 1e-9);
  // Events straddle both edges: uptime from -30 min and the open one from +45 min count only
  // inside [from, to): up 10 + 15 + 15 of 60 minutes.
  EXPECT_NEAR(m["uptime_percent_by_time"].get<double>(), 100.0 * 40 / 60, 1e-9);
  EXPECT_EQ(m["downtime_events"], 2);
  EXPECT_EQ(m["longest_downtime_seconds"], 900.0);
  EXPECT_EQ(m["mttr_seconds"], 600.0);
  const auto raw = raw_ms(from, to);
  EXPECT_EQ(m["min_ms"], raw.front());
  EXPECT_EQ(m["max_ms"], raw.back());
  double sum = 0;
  for (double v : raw) sum += v;
  EXPECT_NEAR(m["mean_ms"].get<double>(), sum / double(raw.size()), 1e-9);
  for (const auto& [key, q] :
       {std::pair{"p50_ms", 0.5}, {"p90_ms", 0.9}, {"p95_ms", 0.95}, {"p99_ms", 0.99}}) {
    const double exact = raw[static_cast<std::size_t>(std::ceil(q * double(raw.size()))) - 1];
    EXPECT_LE(std::abs(m[key].get<double>() - exact), 0.096 * exact) << key;
  }
  EXPECT_TRUE(m["phases_ms"].is_null());
  EXPECT_TRUE(m["window"].is_null());
}

TEST_P(SeriesApi, AWindowEndsNowAndAServiceWithoutTicksHasNulls) {
  const json m =
      get("/v1/services/" + std::to_string(ids[1]) + "/metrics?window=7d")["data"]["metrics"];
  EXPECT_EQ(m["window"], "7d");
  EXPECT_EQ(m["probe_count"], 0);
  EXPECT_TRUE(m["uptime_percent"].is_null());
  EXPECT_TRUE(m["p95_ms"].is_null());
  EXPECT_TRUE(m["uptime_percent_by_time"].is_null());
  const double now_s = double(to_unix_ms(now_ms())) / 1000;
  EXPECT_NEAR(m["to"].get<double>(), now_s, 60);
  EXPECT_NEAR(m["to"].get<double>() - m["from"].get<double>(), 7 * 86400, 1e-6);
}

TEST_P(SeriesApi, SeriesHasOnePointPerStepWithTheTicksOfThatStep) {
  write_flaps();
  const std::int64_t from = kBase + 7 * kMinuteMs, to = kBase + 62 * kMinuteMs;  // not step-aligned
  const json s = get("/v1/services/" + std::to_string(ids[0]) +
                     "/series?step=300&from=" + secs(from) + "&to=" + secs(to))["data"]["series"];
  EXPECT_EQ(s["step"], 300);
  EXPECT_EQ(s["from"], (kBase + 5 * kMinuteMs) / 1000);  // aligned down to the step
  const json& points = s["points"];
  ASSERT_EQ(points.size(), 12u);  // +5 .. +60 min
  for (std::size_t i = 0; i < points.size(); ++i) {
    const std::int64_t t = kBase + (5 + 5 * std::int64_t(i)) * kMinuteMs;
    EXPECT_EQ(points[i]["t"], t / 1000);
    EXPECT_EQ(points[i]["count"], 10);
    const auto raw = raw_ms(t, t + 5 * kMinuteMs);
    double sum = 0;
    for (double v : raw) sum += v;
    EXPECT_NEAR(points[i]["mean_ms"].get<double>(), sum / double(raw.size()), 1e-9);
  }
  EXPECT_EQ(points[2]["up"], 0);  // +15..+20 min: down
  EXPECT_EQ(points[2]["uptime_percent"], 0.0);
  EXPECT_EQ(points[0]["uptime_percent"], 100.0);

  // Hours: the two hours of data and empty steps as zeros and nulls.
  const json h = get("/v1/services/" + std::to_string(ids[0]) +
                     "/series?step=3600&from=" + secs(kBase - 2 * 60 * kMinuteMs) +
                     "&to=" + secs(kBase + 3 * 60 * kMinuteMs))["data"]["series"];
  ASSERT_EQ(h["points"].size(), 5u);
  EXPECT_EQ(h["points"][0]["count"], 0);
  EXPECT_TRUE(h["points"][0]["mean_ms"].is_null());
  EXPECT_EQ(h["points"][1]["count"], 60);  // the last half hour before kBase
  EXPECT_EQ(h["points"][2]["count"], 120);
  EXPECT_EQ(h["points"][3]["count"], 60);
  EXPECT_EQ(h["points"][4]["count"], 0);
}

TEST_P(SeriesApi, UptimeListsEveryServiceInOneCall) {
  write_flaps();
  const json u = get("/v1/uptime?from=" + secs(kBase) +
                     "&to=" + secs(kBase + 60 * kMinuteMs))["data"]["uptime"];
  ASSERT_EQ(u["services"].size(), 2u);
  EXPECT_EQ(u["services"][0]["id"], ids[0]);
  EXPECT_EQ(u["services"][0]["name"], "flappy");
  EXPECT_EQ(u["services"][0]["probe_count"], 120);
  EXPECT_NEAR(u["services"][0]["uptime_percent"].get<double>(), 100.0 * 80 / 120, 1e-9);
  EXPECT_GT(u["services"][0]["p95_ms"].get<double>(), 80.0);
  EXPECT_EQ(u["services"][1]["probe_count"], 0);
  EXPECT_TRUE(u["services"][1]["uptime_percent"].is_null());
  EXPECT_EQ(get("/v1/uptime?window=30d")["data"]["uptime"]["window"], "30d");
}

TEST_P(SeriesApi, BadWindowsStepsAndIdsAre4xxNamingTheParameter) {
  const std::string m = "/v1/services/" + std::to_string(ids[0]) + "/metrics";
  const std::string s = "/v1/services/" + std::to_string(ids[0]) + "/series";
  const auto error_of = [&](const std::string& path, int want) {
    return get(path, want)["error"].get<std::string>();
  };
  EXPECT_NE(error_of(m + "?window=2h", 400).find("window"), std::string::npos);
  EXPECT_NE(error_of(m + "?window=1h&from=10", 400).find("window"), std::string::npos);
  EXPECT_NE(error_of(m + "?from=20&to=10", 400).find("from"), std::string::npos);
  EXPECT_NE(error_of(m + "?from=abc", 400).find("from"), std::string::npos);
  EXPECT_NE(error_of(m + "?from=1&to=-5", 400).find("to"), std::string::npos);
  EXPECT_NE(error_of(s + "?window=1h", 400).find("step"), std::string::npos);
  EXPECT_NE(error_of(s + "?window=1h&step=120", 400).find("step"), std::string::npos);
  EXPECT_NE(error_of(s + "?window=365d&step=60", 400).find("step"), std::string::npos);
  EXPECT_NE(error_of("/v1/uptime?window=5y", 400).find("window"), std::string::npos);
  error_of("/v1/services/abc/metrics", 400);
  error_of("/v1/services/999/metrics", 404);
  error_of("/v1/services/999/series?step=60", 404);
}

TEST_P(SeriesApi, ExporterHasUptimeRatioPerWindowFromRollupsAndPassesPromtool) {
  // Last 2 hours, a tick a minute: down for the last 15 minutes, up before.
  const std::int64_t now = to_unix_ms(now_ms());
  std::vector<TickRecord> batch;
  Metric metric;
  for (std::int64_t age = 120; age >= 1; --age) {
    TickRecord r;
    r.tick.service_id = ids[0];
    r.tick.ts = from_unix_ms(now - age * kMinuteMs + 500);
    r.tick.up = age > 15;
    r.tick.response_ms = 10;
    metric.add(r.tick.up, 10);
    r.metric_after = metric;
    batch.push_back(r);
  }
  store->apply(batch);
  const auto scrape = [&] {
    const auto res = client->Get("/metrics");
    EXPECT_TRUE(res && res->status == 200);
    return res ? res->body : std::string();
  };
  const std::string text = scrape();
  const auto value_of = [&](const std::string& body, const std::string& window) {
    const std::string key =
        R"(vigil_service_uptime_ratio{service="flappy",window=")" + window + "\"} ";
    const auto at = body.find(key);
    return at == std::string::npos ? -1.0 : std::stod(body.substr(at + key.size()));
  };
  EXPECT_NEAR(value_of(text, "1h"), 45.0 / 60, 1e-9) << text;
  EXPECT_NEAR(value_of(text, "24h"), 105.0 / 120, 1e-9);
  EXPECT_NEAR(value_of(text, "30d"), 105.0 / 120, 1e-9);
  // No ticks: no uptime series (its freshness series say it was never probed).
  EXPECT_EQ(text.find(R"(vigil_service_uptime_ratio{service="silent")"), std::string::npos);
  EXPECT_EQ(text.find(R"(vigil_service_last_tick_timestamp_seconds{service="silent")"),
            std::string::npos);

  // Within 10 s a scrape serves the same values even though new ticks arrived.
  TickRecord late;
  late.tick.service_id = ids[0];
  late.tick.ts = from_unix_ms(now);
  late.tick.up = false;
  metric.add(false, 1);
  late.metric_after = metric;
  store->apply({late});
  EXPECT_NEAR(value_of(scrape(), "24h"), 105.0 / 120, 1e-9);

  const char* promtool = "/usr/bin/promtool";
  if (!std::filesystem::exists(promtool)) GTEST_SKIP() << "promtool not installed";
  const std::string input = dir.file("metrics.txt");
  std::ofstream(input) << text;
  const std::string command = std::string(promtool) + " check metrics < " + input + " > " +
                              dir.file("promtool.out") + " 2>&1";
  EXPECT_EQ(std::system(command.c_str()), 0);
}

}  // namespace
}  // namespace vigil

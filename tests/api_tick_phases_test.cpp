// Tick phases in the API: the tick JSON carries "phases_ms" (null without phases), and
// GET /v1/services/{id}/ticks serves them from a real store of each backend over real HTTP.
#include <gtest/gtest.h>
#include <httplib.h>
#include <prometheus/registry.h>

#include <nlohmann/json.hpp>

#include "api/json_views.h"
#include "api/server.h"
#include "storage/store.h"
#include "support/parsed_json.h"
#include "support/phase_sum.h"
#include "support/store_backends.h"
#include "support/target_server.h"

namespace vigil {
namespace {

using nlohmann::json;
using test::tick_json;

Tick tick_with(std::optional<PhaseTimings> phases) {
  Tick tick;
  tick.service_id = 1;
  tick.ts = from_unix_ms(1'700'000'000'250);
  tick.up = true;
  tick.status_code = 200;
  tick.response_ms = phases ? test::phase_sum(*phases) : 1;
  tick.phases = phases;
  return tick;
}

TEST(TickPhasesJson, PhasesInMsAndNullWithout) {
  const json with = tick_json(tick_with(PhaseTimings{0.5, 1.25, 7, 20, 2}));
  EXPECT_EQ(with["phases_ms"], json({{"resolve", 0.5},
                                     {"connect", 1.25},
                                     {"tls", 7.0},
                                     {"processing", 20.0},
                                     {"transfer", 2.0}}));
  EXPECT_EQ(with["response_ms"], 30.75);
  EXPECT_TRUE(tick_json(tick_with(std::nullopt))["phases_ms"].is_null());
  // The streamed text and the tree agree (keys sorted, one shape).
  std::string text;
  append_tick_json(text, tick_with(PhaseTimings{0.5, 1.25, 7, 20, 2}));
  EXPECT_EQ(json::parse(text), with);
  EXPECT_NE(text.find(R"("phases_ms":{"connect":1.25,"processing":20.0,"resolve":0.5,"tls":7.0,)"
                      R"("transfer":2.0})"),
            std::string::npos)
      << text;
}

class TickPhasesApi : public test::StoreBackendTest {};

INSTANTIATE_TEST_SUITE_P(Backends, TickPhasesApi, test::kStoreBackends, test::backend_name);

TEST_P(TickPhasesApi, TicksRouteShowsPhases) {
  auto store = database().open();
  ServiceSpec spec;
  spec.name = "phased";
  spec.url = "https://phased.test/";
  store->sync_services({spec}, from_unix_ms(1'700'000'000'000));
  const ServiceId id = store->active_services()[0].id;
  TickRecord a;
  a.tick = tick_with(PhaseTimings{0.02, 0.1, 4.5, 10, 0.4});
  a.tick.service_id = id;
  a.metric_after.add(true, a.tick.response_ms);
  a.opens_event = EventKind::uptime;
  TickRecord b = a;
  b.tick.ts += Millis(1000);
  b.tick.phases.reset();
  b.opens_event.reset();
  store->apply({a, b});

  prometheus::Registry registry;
  ApiServer server(*store, registry, [] { return HealthReport{}; });
  const int port = server.start("127.0.0.1", 0);
  httplib::Client client("127.0.0.1", port);
  const auto res = client.Get(("/v1/services/" + std::to_string(id) + "/ticks").c_str());
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const json ticks = json::parse(res->body)["data"]["ticks"]["data"];
  ASSERT_EQ(ticks.size(), 2u);
  EXPECT_TRUE(ticks[0]["phases_ms"].is_null());  // newest first
  const json& phases = ticks[1]["phases_ms"];
  EXPECT_EQ(phases["tls"], 4.5);
  EXPECT_EQ(phases["processing"], 10.0);
  double sum = 0;
  for (const auto& [name, ms] : phases.items()) sum += ms.get<double>();
  EXPECT_NEAR(sum, ticks[1]["response_ms"].get<double>(), 0.001);
  server.stop();
}

}  // namespace
}  // namespace vigil

// GET /metrics over real HTTP from a real ApiServer: the registry's families, the runner's
// per-service series (written straight as text) and the windowed uptime ratios of a real store of
// each backend, for services with awkward names, against what the prometheus-cpp objects of the
// same sources give when merged and serialised by TextSerializer (how /metrics was rendered
// before).
#include <gtest/gtest.h>
#include <httplib.h>
#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <chrono>
#include <filesystem>
#include <iterator>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "api/server.h"
#include "api/uptime_gauges.h"
#include "runner/service_series.h"
#include "storage/store.h"
#include "support/eventually.h"
#include "support/prometheus_text.h"
#include "support/store_backends.h"
#include "support/target_server.h"

namespace vigil {
namespace {

const std::vector<std::string> kNames = {"plain", "say \"hi\"", "back\\slash", "two\nlines",
                                         "unicode é ✓ 日本語"};

// A source kept outside the registry that is not streamed: its family of a streamed name must
// still come out as one family.
struct PlainSource final : prometheus::Collectable {
  std::vector<prometheus::MetricFamily> Collect() const override {
    prometheus::ClientMetric metric;
    metric.label = {{"service", "plain source \"x\""}};
    metric.gauge.value = 0.25;
    return {{"vigil_service_up",
             "Current status of the service (its open event): 1 up, 0 down.",
             prometheus::MetricType::Gauge,
             {metric}}};
  }
};

// The families of `sources` merged by name and serialised by prometheus-cpp.
std::string serialized_by_prometheus_cpp(
    const std::vector<const prometheus::Collectable*>& sources) {
  std::vector<prometheus::MetricFamily> families;
  std::unordered_map<std::string, std::size_t> index;
  for (const auto* source : sources) {
    for (auto& family : source->Collect()) {
      const auto [it, added] = index.emplace(family.name, families.size());
      if (added) {
        families.push_back(std::move(family));
      } else {
        auto& into = families[it->second].metric;
        into.insert(into.end(), std::make_move_iterator(family.metric.begin()),
                    std::make_move_iterator(family.metric.end()));
      }
    }
  }
  return prometheus::TextSerializer().Serialize(families);
}

class MetricsExpositionTest : public test::StoreBackendTest {
 protected:
  void SetUp() override {
    StoreBackendTest::SetUp();
    if (IsSkipped()) return;
    store_ = database().open();
    std::vector<ServiceSpec> specs;
    for (const auto& name : kNames) {
      ServiceSpec spec;
      spec.name = name;
      spec.url = "http://127.0.0.1:9/health";
      specs.push_back(spec);
    }
    const TimePoint now = now_ms();
    store_->sync_services(specs, now - Millis(60'000));
    std::vector<TickRecord> batch;
    int i = 0;
    for (const auto& service : store_->active_services()) {
      Metric metric;
      for (int t = 0; t < 4; ++t) {
        TickRecord record;
        record.tick.service_id = service.id;
        record.tick.ts = now - Millis(40'000 - t * 10'000);
        record.tick.up = t % (i + 2) != 0;
        record.tick.status_code = record.tick.up ? 200 : 0;
        if (!record.tick.up) record.tick.error = "connection refused";
        record.tick.response_ms = 10 + t;
        record.tick.region = "local";
        metric.add(record.tick.up, record.tick.response_ms);
        record.metric_after = metric;
        if (t == 0) record.opens_event = record.tick.up ? EventKind::uptime : EventKind::downtime;
        batch.push_back(record);
      }
      ++i;
    }
    store_->apply(batch);

    double value = 0.125;
    for (const auto& name : kNames) {
      auto s = series_collector_->add(name);
      s->show(ServiceSeries::kProbe);
      s->show(ServiceSeries::kState);
      s->show(ServiceSeries::kHttp);
      s->set_tls_version("TLSv1.3");
      for (auto* v : {&s->success, &s->duration_s, &s->status_code, &s->up, &s->uptime_ratio,
                      &s->ssl, &s->redirects, &s->content_length})
        v->set(value *= 3.3);
      for (auto& phase : s->phase_s) phase.set(value /= 7);
      s->probes_up = 12;
      s->probes_down = 3;
      series_.push_back(std::move(s));
    }

    // Registry families: one a streamed source also has (merged), and ones only it has.
    prometheus::BuildGauge()
        .Name("vigil_service_uptime_ratio")
        .Help("Up ticks over all ticks of the service.")
        .Register(registry_)
        .Add({{"service", "registry \\ \"one\""}, {"window", "registry"}})
        .Set(0.5);
    prometheus::BuildCounter()
        .Name("vigil_api_requests_total")
        .Help("Requests answered.")
        .Register(registry_)
        .Add({{"code", "200"}})
        .Increment(7);
    prometheus::BuildHistogram()
        .Name("vigil_probe_phase_seconds")
        .Help("Probe phases.")
        .Register(registry_)
        .Add({{"phase", "connect"}}, prometheus::Histogram::BucketBoundaries{0.01, 0.1, 1})
        .Observe(0.05);
  }

  test::TempDir dir_;  // promtool's files
  std::unique_ptr<Store> store_;
  prometheus::Registry registry_;
  std::shared_ptr<ServiceSeriesCollector> series_collector_ =
      std::make_shared<ServiceSeriesCollector>();
  std::vector<std::shared_ptr<ServiceSeries>> series_;
};

INSTANTIATE_TEST_SUITE_P(Backends, MetricsExpositionTest, test::kStoreBackends, test::backend_name);

TEST_P(MetricsExpositionTest, ScrapeHasTheSameFamiliesAndSeriesAsTheSerializedObjects) {
  ApiOptions options;
  options.collectables.push_back(series_collector_);
  options.collectables.push_back(std::make_shared<PlainSource>());
  ApiServer server(
      *store_, registry_, [] { return HealthReport{}; }, options);
  const int port = server.start("127.0.0.1", 0);
  ASSERT_GT(port, 0);
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(std::chrono::seconds(10));
  // The server's own request families get their first series with the first request.
  ASSERT_TRUE(client.Get("/healthz"));
  // A request's metrics are recorded once its response is written, which may be after the
  // client has read it: wait for them, so that the scrape cannot come first.
  ASSERT_TRUE(test::eventually([&] {
    for (const auto& family : registry_.Collect())
      if (family.name == "vigil_api_request_duration_seconds" && !family.metric.empty())
        return true;
    return false;
  }));
  const auto reply = client.Get("/metrics");
  ASSERT_TRUE(reply);
  ASSERT_EQ(reply->status, 200);
  EXPECT_EQ(reply->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  const std::string& scraped = reply->body;

  // What the server's sources give as prometheus-cpp objects; the windowed ratios from a second
  // UptimeGauges on the same store (its values only change with new ticks).
  PlainSource plain;
  UptimeGauges windows(*store_);
  const std::string expected =
      serialized_by_prometheus_cpp({&registry_, series_collector_.get(), &plain, &windows});
  const auto old_parsed = test::parse_exposition(expected);
  const auto new_parsed = test::parse_exposition(scraped);
  ASSERT_TRUE(old_parsed.errors.empty()) << old_parsed.errors.front();
  ASSERT_TRUE(new_parsed.errors.empty()) << new_parsed.errors.front() << "\n" << scraped;

  // The server's own request figures move between the two renderings (the scrape itself is
  // counted); everything else is the same, family by family and series by series.
  for (const auto& [name, family] : old_parsed.families) {
    const auto it = new_parsed.families.find(name);
    ASSERT_NE(it, new_parsed.families.end()) << name << " missing from\n" << scraped;
    EXPECT_EQ(it->second.help, family.help) << name;
    EXPECT_EQ(it->second.type, family.type) << name;
    if (name.rfind("vigil_api_request", 0) == 0) continue;
    EXPECT_EQ(it->second.series, family.series) << name << "\n" << scraped;
  }
  // Merged families: the registry's, the runner's and the windowed ratios in one family, and the
  // plain source's sample with the streamed ones.
  const auto& ratio = new_parsed.families.at("vigil_service_uptime_ratio").series;
  EXPECT_TRUE(ratio.contains({"vigil_service_uptime_ratio",
                              {{"service", "registry \\ \"one\""}, {"window", "registry"}}}));
  for (const auto& name : kNames) {
    EXPECT_TRUE(ratio.contains({"vigil_service_uptime_ratio", {{"service", name}}})) << name;
    EXPECT_TRUE(
        ratio.contains({"vigil_service_uptime_ratio", {{"service", name}, {"window", "1h"}}}))
        << name << "\n"
        << scraped;
  }
  EXPECT_TRUE(new_parsed.families.at("vigil_service_up")
                  .series.contains({"vigil_service_up", {{"service", "plain source \"x\""}}}));
  EXPECT_EQ(new_parsed.families.at("probe_http_duration_seconds").series.size(),
            kNames.size() * kPhaseLabels.size());

  if (!std::filesystem::exists("/usr/bin/promtool")) GTEST_SKIP() << "promtool not installed";
  const auto complaints = test::promtool_complaints(scraped, dir_.path());
  EXPECT_FALSE(complaints) << *complaints << "\n--- input ---\n" << scraped;
  server.stop();
}

// The windowed ratios follow services created and renamed between refreshes (the gauges keep
// the service names until the store's services revision moves).
TEST_P(MetricsExpositionTest, WindowedRatiosFollowCreatedAndRenamedServices) {
  const UptimeGauges gauges(*store_, std::chrono::seconds(0));
  const auto windowed = [&](const std::string& service) {
    const auto parsed =
        test::parse_exposition(prometheus::TextSerializer().Serialize(gauges.Collect()));
    const auto& series = parsed.families.at("vigil_service_uptime_ratio").series;
    return series.contains(
        {"vigil_service_uptime_ratio", {{"service", service}, {"window", "1h"}}});
  };
  ASSERT_TRUE(windowed("plain"));
  ASSERT_FALSE(windowed("newcomer"));

  ServiceSpec spec;
  spec.name = "newcomer";
  spec.url = "http://127.0.0.1:9/health";
  const ServiceId id = store_->create_service(spec, now_ms() - Millis(5'000)).id;
  TickRecord record;
  record.tick.service_id = id;
  record.tick.ts = now_ms() - Millis(1'000);
  record.tick.up = true;
  record.tick.status_code = 200;
  record.tick.response_ms = 5;
  record.tick.region = "local";
  record.metric_after.add(true, 5);
  record.opens_event = EventKind::uptime;
  store_->apply({record});
  EXPECT_TRUE(windowed("newcomer"));

  spec.name = "renamed";
  ASSERT_TRUE(store_->update_service(id, spec, now_ms()));
  EXPECT_TRUE(windowed("renamed"));
  EXPECT_FALSE(windowed("newcomer"));
}

// A scrape of many services arrives whole although the server writes it in pieces.
TEST_P(MetricsExpositionTest, LargeScrapeArrivesWhole) {
  std::vector<std::shared_ptr<ServiceSeries>> many;
  for (int i = 0; i < 5'000; ++i) {
    auto s = series_collector_->add("svc-" + std::to_string(i));
    s->show(ServiceSeries::kProbe);
    s->success.set(i % 2);
    many.push_back(std::move(s));
  }
  ApiOptions options;
  options.collectables.push_back(series_collector_);
  ApiServer server(
      *store_, registry_, [] { return HealthReport{}; }, options);
  const int port = server.start("127.0.0.1", 0);
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(std::chrono::seconds(10));
  const auto reply = client.Get("/metrics");
  ASSERT_TRUE(reply);
  ASSERT_EQ(reply->status, 200);
  const auto parsed = test::parse_exposition(reply->body);
  ASSERT_TRUE(parsed.errors.empty()) << parsed.errors.front();
  EXPECT_GT(reply->body.size(), 256u * 1024u);  // several pieces
  const auto& success = parsed.families.at("probe_success").series;
  EXPECT_EQ(success.size(), many.size() + kNames.size());
  EXPECT_EQ(success.at({"probe_success", {{"service", "svc-4999"}}}),
            std::bit_cast<std::uint64_t>(1.0));
  EXPECT_EQ(parsed.families.at("vigil_probes_total").series.size(),
            2 * (many.size() + kNames.size()));
  server.stop();
}

}  // namespace
}  // namespace vigil

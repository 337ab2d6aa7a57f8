// Micro-benchmarks (Google Benchmark) of the per-probe work vigil does besides the transfer:
// scheduling, the state machine, metric updates, building a probe's easy handle, condition
// evaluation, and rendering a service as JSON. `make bench` runs them; the smoke test runs each
// for a few milliseconds so they keep compiling and working.
#include <benchmark/benchmark.h>
#include <malloc.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "api/json_views.h"
#include "api/metrics_exposition.h"
#include "api/status_page.h"
#include "api/uptime_gauges.h"
#include "core/conditions.h"
#include "runner/conditions.h"
#include "runner/probe.h"
#include "runner/runner_metrics.h"
#include "runner/scheduler.h"
#include "runner/state_machine.h"
#include "storage/sqlite/sqlite_database.h"
#include "storage/store.h"

namespace {

using namespace vigil;

// VmRSS and VmHWM of this process in MB (/proc/self/status): what a scrape leaves resident and
// its peak.
std::pair<double, double> resident_mb() {
  std::ifstream status("/proc/self/status");
  std::string key;
  double rss = 0, hwm = 0;
  while (status >> key) {
    if (key == "VmRSS:") status >> rss;
    if (key == "VmHWM:") status >> hwm;
  }
  return {rss / 1024, hwm / 1024};
}

// Counters of how much a benchmark's loop raised resident memory and its peak since `before`.
void count_resident_growth(benchmark::State& state, std::pair<double, double> before) {
  const auto after = resident_mb();
  state.counters["rss_growth_mb"] = after.first - before.first;
  state.counters["peak_growth_mb"] = after.second - before.second;
}

ProbeResult up_result() {
  ProbeResult result;
  result.up = true;
  result.status_code = 200;
  result.response_ms = 0.42;
  result.phases = PhaseTimings{0.01, 0.08, 0, 0.3, 0.03};
  result.details.http = true;
  result.details.final_url = "http://127.0.0.1:8080/ok";
  result.details.content_length = 2;
  result.details.body_bytes = 2;
  return result;
}

// One due entry popped and its next slot pushed, in a heap of range(0) services: the
// scheduler's whole per-probe work.
void BM_SchedulerPopAndReschedule(benchmark::State& state) {
  const auto services = static_cast<ServiceId>(state.range(0));
  const auto interval = std::chrono::seconds(60);
  Scheduler scheduler;
  const SteadyTime base{};
  for (ServiceId id = 0; id < services; ++id)
    scheduler.schedule(id, base + first_probe_offset("svc-" + std::to_string(id), interval), 1);
  for (auto _ : state) {
    const auto due = scheduler.pop_due(base + std::chrono::hours(1));
    scheduler.schedule(due->service, due->due + interval, 1);
  }
}
BENCHMARK(BM_SchedulerPopAndReschedule)->Arg(1'000)->Arg(100'000)->Arg(1'000'000);

void BM_FirstProbeOffset(benchmark::State& state) {
  const std::string name = "payments-api-eu-west-1";
  for (auto _ : state) benchmark::DoNotOptimize(first_probe_offset(name, std::chrono::seconds(60)));
}
BENCHMARK(BM_FirstProbeOffset);

// A probe result folded into the service's state: the tick record the writer gets.
void BM_StateMachineApply(benchmark::State& state) {
  ServiceRuntime runtime;
  const ProbeResult result = up_result();
  const std::string region = "local";
  const TimePoint started = now_ms();
  for (auto _ : state) {
    auto outcome = apply_probe_result(runtime, 1, result, started, region);
    benchmark::DoNotOptimize(outcome);
  }
}
BENCHMARK(BM_StateMachineApply);

// The Prometheus side of one tick: the probe_* series, counters and the phase histograms.
void BM_TickToMetrics(benchmark::State& state) {
  prometheus::Registry registry;
  RunnerMetrics metrics(registry);
  ServiceMetrics series;
  ServiceRuntime runtime;
  const ProbeResult result = up_result();
  apply_probe_result(runtime, 1, result, now_ms(), "local");
  const std::string name = "payments";
  for (auto _ : state) {
    metrics.record_probe(series, name, result);
    metrics.record_state(series, name, runtime);
  }
  metrics.remove(series);
}
BENCHMARK(BM_TickToMetrics);

// Building a probe: the easy handle and its options, once per probe.
void BM_MakeHttpProbe(benchmark::State& state) {
  ServiceSpec spec;
  spec.name = "payments";
  spec.url = "http://127.0.0.1:8080/ok";
  spec.timeout = std::chrono::seconds(5);
  const ProbeSettings limits;
  for (auto _ : state) benchmark::DoNotOptimize(make_probe(spec, limits));
}
BENCHMARK(BM_MakeHttpProbe);

void BM_EvaluateConditions(benchmark::State& state) {
  const Conditions conditions =
      parse_conditions(nlohmann::json::parse(R"({"body_contains": "\"status\":\"ok\"",
                                "json": [{"pointer": "/status", "equals": "ok"},
                                         {"pointer": "/queue/depth", "lt": 100}],
                                "max_response_ms": 500})"),
                       "bench");
  const std::string body = R"({"status":"ok","queue":{"depth":12},"version":"1.4.2"})";
  ResponseFacts facts;
  facts.body = body;
  facts.response_ms = 12;
  for (auto _ : state) benchmark::DoNotOptimize(evaluate_conditions(*conditions.compiled, facts));
}
BENCHMARK(BM_EvaluateConditions);

ServiceView sample_view() {
  ServiceView view;
  view.service.id = 4242;
  view.service.spec.name = "payments-api";
  view.service.spec.url = "https://payments.example.com/health";
  view.service.spec.team = "payments";
  view.service.spec.tags = {"prod", "eu"};
  view.service.created_at = now_ms();
  view.service.updated_at = now_ms();
  view.metric.add(true, 12.5);
  view.metric.add(false, 30);
  Event event;
  event.id = 99;
  event.service_id = 4242;
  event.date_started = now_ms();
  event.created_at = now_ms();
  event.updated_at = now_ms();
  view.open_event = event;
  return view;
}

// One service as GET /v1/services renders it (the streaming form used for lists).
void BM_ServiceJsonStreaming(benchmark::State& state) {
  const ServiceView view = sample_view();
  std::string out;
  for (auto _ : state) {
    out.clear();
    append_service_json(out, view);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["bytes"] = static_cast<double>(out.size());
}
BENCHMARK(BM_ServiceJsonStreaming);

// GET /metrics with range(0) probed services: writing every series as text, as the server
// streams it (api/metrics_exposition.h), into a sink that only counts. Cost per scrape, so per
// iteration here; bytes is the size of the text, heap_bytes_per_service what the series of one
// service keep allocated between scrapes.
void BM_MetricsScrape(benchmark::State& state) {
  prometheus::Registry registry;
  RunnerMetrics metrics(registry);
  std::vector<ServiceMetrics> series(static_cast<std::size_t>(state.range(0)));
  const ProbeResult result = up_result();
  ServiceRuntime runtime;
  apply_probe_result(runtime, 1, result, now_ms(), "local");
  const std::size_t heap_before = mallinfo2().uordblks;
  for (std::size_t i = 0; i < series.size(); ++i) {
    const std::string name = "svc-" + std::to_string(i);
    metrics.record_probe(series[i], name, result);
    metrics.record_state(series[i], name, runtime);
  }
  // What one probed HTTP service's series hold on the heap between scrapes: the metrics' share
  // of vigil's memory per service.
  state.counters["heap_bytes_per_service"] =
      double(mallinfo2().uordblks - heap_before) / double(series.size());
  std::size_t bytes = 0;
  const auto per_service = metrics.service_series();
  const std::vector<const prometheus::Collectable*> sources{&registry, per_service.get()};
  const auto resident_before = resident_mb();
  for (auto _ : state) {
    bytes = 0;
    TextExpositionWriter out([&bytes](std::string_view piece) {
      bytes += piece.size();
      benchmark::DoNotOptimize(piece.data());
      return true;
    });
    write_metrics_text(sources, out);
    out.finish();
  }
  count_resident_growth(state, resident_before);
  state.counters["bytes"] = static_cast<double>(bytes);
  state.counters["bytes_per_service"] = static_cast<double>(bytes) / double(series.size());
  for (auto& s : series) metrics.remove(s);
}
BENCHMARK(BM_MetricsScrape)->Arg(1'000)->Arg(10'000)->Arg(100'000)->Unit(benchmark::kMillisecond);

// A database with range(0) probed services (each with a tick, its metric and an open event),
// in a temporary directory removed at the end: what GET /v1/services reads.
class ServiceListFixture {
 public:
  explicit ServiceListFixture(int count) {
    char pattern[] = "/tmp/vigil-micro-XXXXXX";
    if (!::mkdtemp(pattern)) throw std::runtime_error("mkdtemp failed");
    dir_ = pattern;
    store_ = open_sqlite_store(dir_ + "/list.db");
    std::vector<ServiceSpec> specs(static_cast<std::size_t>(count));
    for (int i = 0; i < count; ++i) {
      specs[i].name = "svc-" + std::to_string(i);
      specs[i].url = "http://127.0.0.1:8080/ok";
    }
    store_->sync_services(specs, now_ms());
    std::vector<TickRecord> batch;
    const ProbeResult result = up_result();
    for (const auto& service : store_->active_services()) {
      ServiceRuntime runtime;
      batch.push_back(apply_probe_result(runtime, service.id, result, now_ms(), "local").record);
    }
    store_->apply(batch);
  }
  ~ServiceListFixture() {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  Store& store() { return *store_; }

 private:
  std::string dir_;
  std::unique_ptr<Store> store_;
};

// GET /v1/services, the store's half: the one query that reads every active service with its
// metric and open event.
void BM_StoreListServices(benchmark::State& state) {
  ServiceListFixture fixture(static_cast<int>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(fixture.store().list_services());
}
BENCHMARK(BM_StoreListServices)->Arg(10'000)->Unit(benchmark::kMillisecond);

// One page of 1,000 (the largest) from the middle of 10,000 services: by cursor (keyset: an id
// seek) against the older offset (which reads and skips the rows before it).
void BM_StoreListServicesPage(benchmark::State& state) {
  ServiceListFixture fixture(10'000);
  const bool keyset = state.range(0) == 1;
  const auto ids = fixture.store().active_services();
  ServiceFilter filter;
  filter.limit = 1001;  // the API reads one more to know whether a next page exists
  if (keyset)
    filter.after_id = ids[4999].id;
  else
    filter.offset = 5000;
  for (auto _ : state) benchmark::DoNotOptimize(fixture.store().list_services(filter));
  state.SetLabel(keyset ? "cursor" : "offset");
}
BENCHMARK(BM_StoreListServicesPage)->Arg(1)->Arg(0)->Unit(benchmark::kMillisecond);

// GET /v1/services, the rendering half: every service as JSON text inside the envelope.
void BM_RenderServiceList(benchmark::State& state) {
  ServiceListFixture fixture(static_cast<int>(state.range(0)));
  const auto views = fixture.store().list_services();
  std::size_t bytes = 0;
  for (auto _ : state) {
    std::string data;
    data.reserve(views.size() * 700 + 64);
    data += R"({"services":{"data":[)";
    for (std::size_t i = 0; i < views.size(); ++i) {
      if (i > 0) data += ',';
      append_service_json(data, views[i]);
    }
    data += "]}}";
    const std::string body = envelope_text(200, data);
    bytes = body.size();
    benchmark::DoNotOptimize(body.data());
  }
  state.counters["bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_RenderServiceList)->Arg(10'000)->Unit(benchmark::kMillisecond);

// /metrics' windowed vigil_service_uptime_ratio with range(0) services, refreshed on every
// scrape (max_age 0): the store's reads and the text.
void BM_UptimeGaugesScrape(benchmark::State& state) {
  ServiceListFixture fixture(static_cast<int>(state.range(0)));
  const UptimeGauges gauges(fixture.store(), std::chrono::seconds(0));
  std::size_t bytes = 0;
  const auto resident_before = resident_mb();
  for (auto _ : state) {
    bytes = 0;
    TextExpositionWriter out([&bytes](std::string_view piece) {
      bytes += piece.size();
      return true;
    });
    out.open(gauges.text_families()[0]);
    gauges.write_samples(0, out);
    out.finish();
  }
  count_resident_growth(state, resident_before);
  state.counters["bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_UptimeGaugesScrape)->Arg(10'000)->Arg(100'000)->Unit(benchmark::kMillisecond);

// The status page's HTML for range(0) services on one page, each with a full 90-day
// bar, four uptime figures and a 96-point sparkline: the rendering alone (GET / pages 50 at a
// time; this is the whole set at once, its bound is 200 ms).
void BM_RenderStatusPage(benchmark::State& state) {
  const int count = static_cast<int>(state.range(0));
  const TimePoint now = now_ms();
  StatusPageData data;
  data.title = "vigil status";
  data.now = now;
  data.total = count;
  data.down = count / 20;
  for (int i = 0; i < count; ++i) {
    if (i % 50 == 0)
      data.groups.push_back(StatusGroup{"team-" + std::to_string(i / 50), {}, false});
    ServiceRow row;
    row.view.service.id = i + 1;
    row.view.service.spec.name = "service <" + std::to_string(i) + "> & co";
    row.state = i % 20 == 0 ? ServiceState::down : ServiceState::up;
    row.state_for = Millis(3'600'000 + i);
    for (auto& u : row.uptime_percent) u = 99.0 + double(i % 100) / 100.0;
    for (int d = 0; d < kBarDays; ++d) {
      BarCell cell;
      cell.start = now - Millis(std::int64_t(kBarDays - 1 - d) * 86'400'000);
      cell.probes = 1440;
      cell.up = 1440 - (d + i) % 7;
      cell.downtime_minutes = double((d + i) % 7);
      row.days.push_back(cell);
    }
    for (int b = 0; b < kSparkBuckets; ++b) {
      LatencyPoint point;
      point.start = now - Millis(std::int64_t(kSparkBuckets - 1 - b) * 900'000);
      point.mean_ms = 20.0 + (b * 7 + i) % 40;
      point.p95_ms = 40.0 + (b * 13 + i) % 80;
      row.sparkline.push_back(point);
    }
    data.groups.back().rows.push_back(std::move(row));
  }
  std::size_t bytes = 0;
  for (auto _ : state) {
    const std::string html = render_status_page(data);
    bytes = html.size();
    benchmark::DoNotOptimize(html.data());
  }
  state.counters["bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_RenderStatusPage)->Arg(1'000)->Unit(benchmark::kMillisecond);

// A database of range(0) services of which the 50 on the first page have 90 days of history
// (a tick every 2 hours, and every 5 minutes over the last day), built once per size.
Store& status_page_store(int count) {
  static std::map<int, std::unique_ptr<ServiceListFixture>> fixtures;
  auto& fixture = fixtures[count];
  if (fixture) return fixture->store();
  fixture = std::make_unique<ServiceListFixture>(count);
  Store& store = fixture->store();
  const std::int64_t now = to_unix_ms(now_ms());
  std::vector<ServiceView> views = store.list_services();
  std::sort(views.begin(), views.end(), [](const ServiceView& a, const ServiceView& b) {
    return a.service.spec.name < b.service.spec.name;
  });
  for (std::size_t i = 0; i < views.size() && i < std::size_t(kStatusPageSize); ++i) {
    std::vector<TickRecord> batch;
    Metric metric;
    const auto add = [&](std::int64_t t, bool up) {
      TickRecord r;
      r.tick.service_id = views[i].service.id;
      r.tick.ts = from_unix_ms(t);
      r.tick.up = up;
      r.tick.response_ms = 20.0 + double(t / 300'000 % 50);
      metric.add(up, r.tick.response_ms);
      r.metric_after = metric;
      batch.push_back(r);
    };
    for (std::int64_t t = now - 90LL * 86'400'000; t < now - 86'400'000; t += 7'200'000)
      add(t, t / 7'200'000 % 97 != 0);
    for (std::int64_t t = now - 86'400'000; t < now - 60'000; t += 300'000) add(t, true);
    store.apply(batch);
  }
  return store;
}

// GET / end to end minus HTTP: the store reads for the first page of range(0) services (every
// service for the overall state; rollups and events for the 50 shown) and its rendering.
void BM_StatusPageFromStore(benchmark::State& state) {
  Store& store = status_page_store(static_cast<int>(state.range(0)));
  std::size_t bytes = 0;
  for (auto _ : state) {
    const std::string html = render_status_page(load_status_page(store, "vigil", now_ms(), 1));
    bytes = html.size();
    benchmark::DoNotOptimize(html.data());
  }
  state.counters["bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_StatusPageFromStore)->Arg(1'000)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();

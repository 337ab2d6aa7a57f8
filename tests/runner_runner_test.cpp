// The runner end to end: a real curl multi loop probing a real local target, ticks collected
// from the sink, metrics read back from the registry.
#include "runner/runner.h"

#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "config/logging.h"
#include "runner/scheduler.h"
#include "support/runner_metrics.h"
#include "support/target_server.h"

namespace vigil {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Every record the runner delivers, in order, safe to read while the runner thread appends.
class Collector {
 public:
  TickSink sink() {
    return [this](TickRecord record) {
      std::lock_guard lock(mutex_);
      records_.push_back(std::move(record));
      changed_.notify_all();
    };
  }

  std::vector<TickRecord> of(ServiceId id) const {
    std::lock_guard lock(mutex_);
    std::vector<TickRecord> out;
    for (const auto& r : records_)
      if (r.tick.service_id == id) out.push_back(r);
    return out;
  }
  std::size_t count(ServiceId id) const { return of(id).size(); }

  // Waits until `done(records of id)` holds; false on timeout.
  bool wait_for(ServiceId id, const std::function<bool(const std::vector<TickRecord>&)>& done,
                Clock::duration timeout) const {
    const auto deadline = Clock::now() + timeout;
    std::unique_lock lock(mutex_);
    for (;;) {
      std::vector<TickRecord> mine;
      for (const auto& r : records_)
        if (r.tick.service_id == id) mine.push_back(r);
      if (done(mine)) return true;
      if (changed_.wait_until(lock, deadline) == std::cv_status::timeout) return false;
    }
  }
  bool wait_for_count(ServiceId id, std::size_t n, Clock::duration timeout) const {
    return wait_for(
        id, [n](const auto& rs) { return rs.size() >= n; }, timeout);
  }

 private:
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  std::vector<TickRecord> records_;
};

Service service(ServiceId id, const std::string& name, const std::string& url, Millis interval,
                Millis timeout = 1000ms) {
  Service s;
  s.id = id;
  s.spec.name = name;
  s.spec.url = url;
  s.spec.interval = interval;
  s.spec.timeout = timeout;
  return s;
}

// Largest gap between consecutive tick starts.
Millis max_gap(const std::vector<TickRecord>& records) {
  Millis gap{0};
  for (std::size_t i = 1; i < records.size(); ++i)
    gap = std::max(gap, records[i].tick.ts - records[i - 1].tick.ts);
  return gap;
}

const prometheus::ClientMetric* find_metric(const std::vector<prometheus::MetricFamily>& families,
                                            const std::string& family,
                                            const std::map<std::string, std::string>& labels = {}) {
  for (const auto& f : families) {
    if (f.name != family) continue;
    for (const auto& m : f.metric) {
      std::map<std::string, std::string> have;
      for (const auto& l : m.label) have[l.name] = l.value;
      if (have == labels) return &m;
    }
  }
  return nullptr;
}

double gauge_value(prometheus::Registry& registry, const Runner& runner, const std::string& family,
                   const std::map<std::string, std::string>& labels = {}) {
  const auto families = test::collect(registry, runner);
  const auto* m = find_metric(families, family, labels);
  return m ? m->gauge.value : -1;
}

// A name whose first probe falls late in its interval, so a test can look at the runner before
// that probe without racing it.
std::string name_with_late_first_probe(const std::string& prefix, Millis interval) {
  for (int i = 0;; ++i) {
    std::string name = prefix + "-" + std::to_string(i);
    if (first_probe_offset(name, interval) > interval * 6 / 10) return name;
  }
}

class RunnerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { target_ = new test::TargetServer(); }
  static void TearDownTestSuite() {
    delete target_;
    target_ = nullptr;
  }
  void SetUp() override { set_log_level(LogLevel::info); }

  static inline test::TargetServer* target_ = nullptr;
  prometheus::Registry registry_;
  Collector collector_;
};

TEST_F(RunnerTest, TicksArriveAtTheConfiguredRate) {
  RunnerOptions options;
  options.region = "test-region";
  Runner runner(options, collector_.sink(), registry_);
  runner.start({service(1, "rate-a", target_->url("/hits/rate-a"), 100ms),
                service(2, "rate-b", target_->url("/hits/rate-b"), 200ms)},
               {});
  std::this_thread::sleep_for(2s);
  runner.stop();

  const auto a = collector_.of(1);
  const auto b = collector_.of(2);
  // 2 s at 100 ms is 20 slots, the first somewhere in the first interval.
  EXPECT_GE(a.size(), 17u);
  EXPECT_LE(a.size(), 21u);
  EXPECT_GE(b.size(), 8u);
  EXPECT_LE(b.size(), 11u);
  // Every tick is one real request.
  EXPECT_EQ(target_->hits("rate-a"), static_cast<int>(a.size()));
  EXPECT_EQ(target_->hits("rate-b"), static_cast<int>(b.size()));

  ASSERT_FALSE(a.empty());
  EXPECT_EQ(a.front().opens_event, EventKind::uptime);
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(a[i].tick.up) << a[i].tick.error;
    EXPECT_EQ(a[i].tick.status_code, 200);
    EXPECT_EQ(a[i].tick.region, "test-region");
    EXPECT_EQ(a[i].metric_after.tick_count, static_cast<std::int64_t>(i + 1));
    if (i > 0) {
      EXPECT_FALSE(a[i].opens_event);
      // Fixed rate: consecutive starts one interval apart, give or take scheduling noise.
      const Millis gap = a[i].tick.ts - a[i - 1].tick.ts;
      EXPECT_GE(gap, 40ms);
      EXPECT_LE(gap, 180ms);
    }
  }
}

TEST_F(RunnerTest, SwitchGoesUpDownUpWithOneLogLinePerTransition) {
  testing::internal::CaptureStderr();
  {
    Runner runner({}, collector_.sink(), registry_);
    runner.start({service(1, "switch", target_->url("/switch"), 100ms)}, {});
    target_->set_switch_up(true);
    ASSERT_TRUE(collector_.wait_for_count(1, 3, 2s));
    target_->set_switch_up(false);
    ASSERT_TRUE(collector_.wait_for(
        1,
        [](const auto& rs) {
          return rs.size() >= 2 && !rs.back().tick.up && !rs[rs.size() - 2].tick.up;
        },
        2s));
    target_->set_switch_up(true);
    ASSERT_TRUE(collector_.wait_for(
        1, [](const auto& rs) { return !rs.empty() && rs.back().tick.up; }, 2s));
    runner.stop();
  }
  const std::string log = testing::internal::GetCapturedStderr();
  target_->set_switch_up(true);

  const auto records = collector_.of(1);
  std::vector<EventKind> opened;
  for (const auto& r : records) {
    if (r.opens_event) opened.push_back(*r.opens_event);
    if (!r.tick.up) {
      EXPECT_EQ(r.tick.status_code, 503);
      EXPECT_EQ(r.tick.error, "HTTP status 503 not expected");
    }
  }
  EXPECT_EQ(opened,
            (std::vector<EventKind>{EventKind::uptime, EventKind::downtime, EventKind::uptime}));
  EXPECT_EQ(records.back().metric_after.tick_count, static_cast<std::int64_t>(records.size()));
  EXPECT_GE(records.back().metric_after.down_count, 2);

  // One info line per transition and none per tick.
  std::size_t lines_about_switch = 0;
  std::size_t pos = 0;
  while ((pos = log.find("switch ", pos)) != std::string::npos) {
    ++lines_about_switch;
    ++pos;
  }
  EXPECT_EQ(lines_about_switch, 3u) << log;
  EXPECT_NE(log.find("switch UP: HTTP 200 in "), std::string::npos) << log;
  EXPECT_NE(log.find("switch DOWN: HTTP 503 in "), std::string::npos) << log;
  EXPECT_NE(log.find("switch UP after "), std::string::npos) << log;
}

TEST_F(RunnerTest, EachProbeOpensAFreshConnection) {
  // A reused keep-alive connection would hide connect and TLS time from the measurement.
  Runner runner({}, collector_.sink(), registry_);
  runner.start({service(1, "fresh", target_->url("/conn/fresh"), 100ms)}, {});
  ASSERT_TRUE(collector_.wait_for_count(1, 6, 2s));
  runner.stop();
  EXPECT_EQ(target_->connections("fresh"), static_cast<int>(collector_.count(1)));
}

TEST_F(RunnerTest, HostileTargetsDoNotDelayAHealthyService) {
  Runner runner({}, collector_.sink(), registry_);
  runner.start({service(1, "healthy", target_->url("/hits/healthy"), 100ms),
                service(2, "trickle", target_->url("/trickle"), 300ms, 1000ms),
                service(3, "endless", target_->url("/endless"), 100ms, 1000ms),
                // Never answers within the timeout; /hang, unlike /slow, lets teardown go.
                service(4, "hang", target_->url("/hang?ms=3000"), 300ms, 1000ms),
                service(5, "redirects", target_->url("/redirect-loop"), 100ms, 1000ms)},
               {});
  std::this_thread::sleep_for(3s);
  const auto healthy = collector_.of(1);
  runner.stop();

  // 30 slots in 3 s; a stall of one second behind a hostile probe would cost ten of them.
  EXPECT_GE(healthy.size(), 27u);
  EXPECT_LE(max_gap(healthy), 200ms);
  for (const auto& r : healthy) EXPECT_TRUE(r.tick.up) << r.tick.error;

  for (ServiceId slow : {ServiceId{2}, ServiceId{4}}) {
    const auto rs = collector_.of(slow);
    ASSERT_GE(rs.size(), 2u) << slow;
    for (const auto& r : rs) {
      EXPECT_FALSE(r.tick.up);
      EXPECT_EQ(r.tick.error, "timeout after 1000 ms");
      EXPECT_GE(r.tick.response_ms, 950);
      EXPECT_LT(r.tick.response_ms, 1500);
    }
  }
  const auto endless = collector_.of(3);
  ASSERT_GE(endless.size(), 10u);
  for (const auto& r : endless) EXPECT_EQ(r.tick.error, "body larger than 1048576 bytes");
  const auto redirects = collector_.of(5);
  ASSERT_GE(redirects.size(), 10u);
  for (const auto& r : redirects) EXPECT_EQ(r.tick.error, "too many redirects");

  // The 1 s probes of 300 ms services cannot overlap themselves: their slots were skipped.
  const auto families = registry_.Collect();
  const auto* skipped = find_metric(families, "vigil_runner_skipped_probes_total");
  ASSERT_NE(skipped, nullptr);
  EXPECT_GE(skipped->counter.value, 4);
}

TEST_F(RunnerTest, ConcurrencyCapMakesProbesLateAndTheHistogramShowsIt) {
  RunnerOptions options;
  options.max_concurrency = 1;
  Runner runner(options, collector_.sink(), registry_);
  std::vector<Service> services;
  for (int i = 1; i <= 4; ++i)
    services.push_back(
        service(i, "capped-" + std::to_string(i), target_->url("/slow?ms=100"), 100ms));
  runner.start(std::move(services), {});
  std::size_t most_in_flight = 0;
  for (auto until = Clock::now() + 1500ms; Clock::now() < until;) {
    most_in_flight = std::max(most_in_flight, runner.in_flight());
    std::this_thread::sleep_for(2ms);
  }
  runner.stop();

  EXPECT_EQ(most_in_flight, 1u);
  std::size_t ticks = 0;
  for (int i = 1; i <= 4; ++i) ticks += collector_.count(i);
  EXPECT_GE(ticks, 8u);   // one at a time, ~100 ms each
  EXPECT_LE(ticks, 16u);  // never more than the cap allows

  const auto families = registry_.Collect();
  const auto* lateness = find_metric(families, "vigil_scheduler_lateness_seconds");
  ASSERT_NE(lateness, nullptr);
  const auto& h = lateness->histogram;
  EXPECT_EQ(h.sample_count, ticks);
  // Four services share one slot of ~100 ms: the typical probe waits tens of milliseconds.
  EXPECT_GT(h.sample_sum / double(h.sample_count), 0.03);
  ASSERT_FALSE(h.bucket.empty());
  std::uint64_t within_10ms = 0;
  for (const auto& b : h.bucket)
    if (b.upper_bound == 0.01) within_10ms = b.cumulative_count;
  EXPECT_LT(within_10ms, h.sample_count / 2);
  EXPECT_EQ(h.bucket.front().upper_bound, 0.001);
  EXPECT_EQ(h.bucket[h.bucket.size() - 2].upper_bound, 60);  // last is +Inf
}

TEST_F(RunnerTest, WithoutACapProbesStartOnTime) {
  // The same load as above with room for everyone: lateness stays small, so the test above
  // measures the cap and not slowness of the loop.
  Runner runner({}, collector_.sink(), registry_);
  std::vector<Service> services;
  for (int i = 1; i <= 4; ++i)
    services.push_back(
        service(i, "free-" + std::to_string(i), target_->url("/slow?ms=100"), 100ms));
  runner.start(std::move(services), {});
  std::this_thread::sleep_for(1s);
  runner.stop();
  const auto families = registry_.Collect();
  const auto& h = find_metric(families, "vigil_scheduler_lateness_seconds")->histogram;
  ASSERT_GE(h.sample_count, 20u);
  EXPECT_LT(h.sample_sum / double(h.sample_count), 0.01);
}

TEST_F(RunnerTest, UpsertChangesIntervalAndUrlLiveAndKeepsState) {
  Runner runner({}, collector_.sink(), registry_);
  runner.start({service(1, "live", target_->url("/hits/live-a"), 1000ms)}, {});
  ASSERT_TRUE(collector_.wait_for_count(1, 1, 1500ms));

  runner.upsert_service(service(1, "live", target_->url("/hits/live-b"), 100ms));
  std::this_thread::sleep_for(1s);
  runner.stop();

  EXPECT_EQ(target_->hits("live-a"), 1);  // the next 1 s slot never came
  EXPECT_GE(target_->hits("live-b"), 8);
  const auto records = collector_.of(1);
  ASSERT_EQ(records.size(), static_cast<std::size_t>(1 + target_->hits("live-b")));
  for (std::size_t i = 0; i < records.size(); ++i) {
    // One metric and one open event across the change.
    EXPECT_EQ(records[i].metric_after.tick_count, static_cast<std::int64_t>(i + 1));
    EXPECT_EQ(records[i].opens_event.has_value(), i == 0);
  }
  EXPECT_LE(max_gap({records.begin() + 1, records.end()}), 180ms);
}

TEST_F(RunnerTest, RemoveStopsTicksAndAbandonsTheInFlightProbe) {
  Runner runner({}, collector_.sink(), registry_);
  runner.start({service(1, "kept", target_->url("/hits/kept"), 100ms),
                service(2, "hanging", target_->url("/hang?ms=3000"), 100ms, 2000ms),
                service(3, "removed", target_->url("/hits/removed"), 100ms)},
               {});
  ASSERT_TRUE(collector_.wait_for_count(3, 3, 1s));
  ASSERT_GE(runner.in_flight(), 1u);  // the hanging probe
  EXPECT_EQ(gauge_value(registry_, runner, "probe_success", {{"service", "removed"}}), 1);

  runner.remove_service(2);
  runner.remove_service(3);
  const auto until = Clock::now() + 1s;
  while (gauge_value(registry_, runner, "vigil_services") != 1 && Clock::now() < until)
    std::this_thread::sleep_for(1ms);
  ASSERT_EQ(gauge_value(registry_, runner, "vigil_services"), 1);
  const std::size_t removed_ticks = collector_.count(3);
  const int removed_hits = target_->hits("removed");
  const std::size_t kept_ticks = collector_.count(1);

  // The abandoned probe leaves the multi at once instead of running to its 2 s timeout.
  EXPECT_LE(runner.in_flight(), 1u);
  std::this_thread::sleep_for(600ms);
  EXPECT_EQ(collector_.count(3), removed_ticks);
  EXPECT_EQ(target_->hits("removed"), removed_hits);
  EXPECT_EQ(collector_.count(2), 0u);  // nothing recorded for the abandoned probe
  EXPECT_GE(collector_.count(1), kept_ticks + 4);
  EXPECT_EQ(gauge_value(registry_, runner, "probe_success", {{"service", "removed"}}), -1);  // gone
  EXPECT_EQ(gauge_value(registry_, runner, "probe_success", {{"service", "kept"}}), 1);
  runner.stop();
  EXPECT_EQ(collector_.count(2), 0u);
}

TEST_F(RunnerTest, StopDeliversInFlightResultsAndReturnsInBoundedTime) {
  Runner runner({}, collector_.sink(), registry_);
  runner.start({service(1, "slow-ok", target_->url("/slow?ms=500"), 200ms, 2000ms),
                service(2, "never", target_->url("/hang?ms=5000"), 200ms, 1000ms)},
               {});
  for (auto until = Clock::now() + 1s; runner.in_flight() < 2 && Clock::now() < until;)
    std::this_thread::sleep_for(1ms);
  ASSERT_EQ(runner.in_flight(), 2u);
  ASSERT_EQ(collector_.count(1), 0u);
  ASSERT_EQ(collector_.count(2), 0u);

  const auto t0 = Clock::now();
  runner.stop();
  const auto took = Clock::now() - t0;
  EXPECT_LT(took, 1500ms);  // bounded by the longest remaining timeout (1 s)

  const auto slow = collector_.of(1);
  const auto never = collector_.of(2);
  ASSERT_EQ(slow.size(), 1u);
  EXPECT_TRUE(slow[0].tick.up) << slow[0].tick.error;
  ASSERT_EQ(never.size(), 1u);
  EXPECT_EQ(never[0].tick.error, "timeout after 1000 ms");
  EXPECT_EQ(runner.in_flight(), 0u);

  // Nothing more after stop, and stop again is a no-op.
  const auto t1 = Clock::now();
  runner.stop();
  EXPECT_LT(Clock::now() - t1, 100ms);
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(collector_.count(1) + collector_.count(2), 2u);
}

TEST_F(RunnerTest, ResumesStoredStateAndReportsIt) {
  const std::string name = name_with_late_first_probe("resumed", 1000ms);
  ServiceRuntime stored;
  for (int i = 0; i < 10; ++i) stored.metric.add(i < 8, 10);
  stored.open_event_kind = EventKind::uptime;
  stored.open_event_started = now_ms() - 1h;

  Runner runner({}, collector_.sink(), registry_);
  runner.start({service(9, name, target_->url("/status/500"), 1000ms)}, {{9, stored}});
  // Before its first probe the service already shows the stored state.
  EXPECT_EQ(gauge_value(registry_, runner, "vigil_service_up", {{"service", name}}), 1);
  EXPECT_DOUBLE_EQ(
      gauge_value(registry_, runner, "vigil_service_uptime_ratio", {{"service", name}}), 0.8);
  EXPECT_EQ(gauge_value(registry_, runner, "probe_success", {{"service", name}}),
            -1);  // not probed yet

  ASSERT_TRUE(collector_.wait_for_count(9, 1, 1500ms));
  const auto first = collector_.of(9).front();
  EXPECT_EQ(first.opens_event, EventKind::downtime);
  EXPECT_EQ(first.metric_after.tick_count, 11);
  EXPECT_EQ(first.metric_after.up_count, 8);
  EXPECT_EQ(gauge_value(registry_, runner, "vigil_service_up", {{"service", name}}), 0);
  EXPECT_EQ(gauge_value(registry_, runner, "probe_http_status_code", {{"service", name}}), 500);
  runner.stop();
}

TEST_F(RunnerTest, ExposesMetricFamiliesThatPassPromtool) {
  Runner runner({}, collector_.sink(), registry_);
  runner.start({service(1, "metrics-up", target_->url("/ok"), 100ms),
                service(2, "metrics-down",
                        "http://127.0.0.1:" + std::to_string(test::closed_port()) + "/", 100ms)},
               {});
  ASSERT_TRUE(collector_.wait_for_count(1, 2, 1s));
  ASSERT_TRUE(collector_.wait_for_count(2, 2, 1s));
  runner.stop();

  const auto families = test::collect(registry_, runner);
  for (const char* name :
       {"probe_success", "probe_duration_seconds", "probe_http_status_code", "vigil_probes_total",
        "vigil_service_up", "vigil_service_uptime_ratio", "vigil_probes_in_flight",
        "vigil_scheduler_lateness_seconds", "vigil_runner_skipped_probes_total",
        "vigil_runner_command_queue_depth", "vigil_services"}) {
    EXPECT_TRUE(std::any_of(families.begin(), families.end(), [&](const auto& f) {
      return f.name == name;
    })) << name;
  }
  const auto value = [&](const char* family, std::map<std::string, std::string> labels) {
    const auto* m = find_metric(families, family, labels);
    return m ? m->gauge.value : -1;
  };
  EXPECT_EQ(value("probe_success", {{"service", "metrics-up"}}), 1);
  EXPECT_EQ(value("probe_success", {{"service", "metrics-down"}}), 0);
  EXPECT_EQ(value("probe_http_status_code", {{"service", "metrics-up"}}), 200);
  EXPECT_EQ(value("probe_http_status_code", {{"service", "metrics-down"}}), 0);
  EXPECT_GT(value("probe_duration_seconds", {{"service", "metrics-up"}}), 0);
  EXPECT_EQ(value("vigil_service_up", {{"service", "metrics-down"}}), 0);
  EXPECT_EQ(value("vigil_service_uptime_ratio", {{"service", "metrics-up"}}), 1);
  EXPECT_EQ(value("vigil_services", {}), 2);
  EXPECT_EQ(value("vigil_probes_in_flight", {}), 0);
  const auto* up_total =
      find_metric(families, "vigil_probes_total", {{"service", "metrics-up"}, {"result", "up"}});
  ASSERT_NE(up_total, nullptr);
  EXPECT_EQ(up_total->counter.value, double(collector_.count(1)));

  const std::string text = prometheus::TextSerializer().Serialize(families);
  test::TempDir dir;
  const std::string file = dir.file("metrics.txt");
  std::ofstream(file) << text;
  const std::string command = "/usr/bin/promtool check metrics < " + file + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buffer[512];
  while (std::fgets(buffer, sizeof buffer, pipe)) output += buffer;
  EXPECT_EQ(::pclose(pipe), 0) << output << "\n" << text;
}

TEST_F(RunnerTest, LastAliveAdvancesWhileIdle) {
  Runner runner({}, collector_.sink(), registry_);
  runner.start({}, {});
  const TimePoint started = runner.last_alive();
  std::this_thread::sleep_for(2200ms);
  const TimePoint later = runner.last_alive();
  EXPECT_GE(later - started, 1500ms);  // it went round at least twice with nothing to do
  EXPECT_LE(now_ms() - later, 1100ms);
  runner.stop();
}

// ---- deactivation keeps a service's state; a purge drops it ----

Service inactive(Service s) {
  s.active = false;
  return s;
}

// Waits until the runner has applied its commands as far as the service count shows.
bool wait_for_services(prometheus::Registry& registry, const Runner& runner, double count) {
  const auto until = Clock::now() + 2s;
  while (gauge_value(registry, runner, "vigil_services") != count && Clock::now() < until)
    std::this_thread::sleep_for(1ms);
  return gauge_value(registry, runner, "vigil_services") == count;
}

TEST_F(RunnerTest, DeactivatingThenReactivatingContinuesTheMetricAndTheOpenEvent) {
  const Service paused = service(1, "paused", target_->url("/hits/paused"), 100ms);
  Runner runner({}, collector_.sink(), registry_);
  runner.start({paused}, {});
  ASSERT_TRUE(collector_.wait_for_count(1, 3, 2s));

  // Twice, as `vigil run` hands it over from the API and again from the change feed.
  runner.upsert_service(inactive(paused));
  runner.upsert_service(inactive(paused));
  ASSERT_TRUE(wait_for_services(registry_, runner, 0));
  std::this_thread::sleep_for(100ms);  // a request of the abandoned probe may still arrive
  const std::size_t before = collector_.count(1);
  const int hits_before = target_->hits("paused");
  std::this_thread::sleep_for(400ms);
  EXPECT_EQ(collector_.count(1), before);  // not probed while inactive
  EXPECT_EQ(target_->hits("paused"), hits_before);
  EXPECT_EQ(gauge_value(registry_, runner, "vigil_service_up", {{"service", "paused"}}), -1);

  runner.upsert_service(paused);
  ASSERT_TRUE(wait_for_services(registry_, runner, 1));
  // Its series come back with the kept state before the first new tick.
  EXPECT_EQ(gauge_value(registry_, runner, "vigil_service_up", {{"service", "paused"}}), 1);
  ASSERT_TRUE(collector_.wait_for_count(1, before + 3, 2s));
  runner.stop();

  // One metric and one open event across the pause.
  const auto records = collector_.of(1);
  for (std::size_t i = 0; i < records.size(); ++i) {
    EXPECT_EQ(records[i].metric_after.tick_count, static_cast<std::int64_t>(i + 1)) << i;
    EXPECT_EQ(records[i].opens_event.has_value(), i == 0) << i;
  }
  EXPECT_EQ(records.back().metric_after.up_count, static_cast<std::int64_t>(records.size()));
}

TEST_F(RunnerTest, ReactivatedWithAnotherStatusItOpensOneNewEvent) {
  target_->set_switch_up(true);
  const Service flipped = service(2, "flipped", target_->url("/switch"), 100ms);
  Runner runner({}, collector_.sink(), registry_);
  runner.start({flipped}, {});
  ASSERT_TRUE(collector_.wait_for_count(2, 2, 2s));
  runner.upsert_service(inactive(flipped));
  ASSERT_TRUE(wait_for_services(registry_, runner, 0));
  const std::size_t before = collector_.count(2);

  target_->set_switch_up(false);
  runner.upsert_service(flipped);
  const bool down_twice = collector_.wait_for_count(2, before + 2, 2s);
  runner.stop();
  target_->set_switch_up(true);
  ASSERT_TRUE(down_twice);

  const auto records = collector_.of(2);
  std::vector<EventKind> opened;
  for (std::size_t i = 0; i < records.size(); ++i) {
    EXPECT_EQ(records[i].metric_after.tick_count, static_cast<std::int64_t>(i + 1)) << i;
    EXPECT_EQ(records[i].tick.up, i < before) << i;
    if (records[i].opens_event) opened.push_back(*records[i].opens_event);
  }
  EXPECT_EQ(opened, (std::vector<EventKind>{EventKind::uptime, EventKind::downtime}));
  EXPECT_EQ(records[before].opens_event, EventKind::downtime);  // at the first new tick
  EXPECT_EQ(records.back().metric_after.up_count, static_cast<std::int64_t>(before));
}

TEST_F(RunnerTest, StateStoredForAnInactiveServiceIsResumedWhenItIsReactivated) {
  ServiceRuntime stored;
  for (int i = 0; i < 10; ++i) stored.metric.add(true, 10);
  stored.open_event_kind = EventKind::uptime;
  stored.open_event_started = now_ms() - 1h;
  stored.last_tick_at = now_ms() - 1h;
  const Service dormant = service(3, "dormant", target_->url("/hits/dormant"), 100ms);

  Runner runner({}, collector_.sink(), registry_);
  runner.start({inactive(dormant)}, {{3, stored}});
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(collector_.count(3), 0u);  // inactive at start: not probed
  EXPECT_EQ(gauge_value(registry_, runner, "vigil_services"), 0);

  runner.upsert_service(dormant);
  ASSERT_TRUE(collector_.wait_for_count(3, 2, 2s));
  runner.stop();
  const auto records = collector_.of(3);
  EXPECT_EQ(records[0].metric_after.tick_count, 11);
  EXPECT_EQ(records[1].metric_after.tick_count, 12);
  EXPECT_FALSE(records[0].opens_event.has_value());  // the stored uptime event goes on
}

TEST_F(RunnerTest, APurgeDropsTheKeptState) {
  ServiceRuntime stored;
  for (int i = 0; i < 10; ++i) stored.metric.add(true, 10);
  stored.open_event_kind = EventKind::uptime;
  stored.open_event_started = now_ms() - 1h;
  const Service purged = service(4, "purged", target_->url("/hits/purged"), 100ms);

  Runner runner({}, collector_.sink(), registry_);
  runner.start({purged}, {{4, stored}});
  ASSERT_TRUE(collector_.wait_for_count(4, 1, 2s));
  runner.upsert_service(inactive(purged));
  runner.remove_service(4);
  // Nothing of it is kept: were the id given again, that service would start from scratch.
  runner.upsert_service(purged);
  ASSERT_TRUE(wait_for_services(registry_, runner, 1));
  const std::size_t before = collector_.count(4);
  ASSERT_TRUE(collector_.wait_for_count(4, before + 2, 2s));
  runner.stop();
  const auto records = collector_.of(4);
  EXPECT_EQ(records[0].metric_after.tick_count, 11);
  EXPECT_EQ(records[before].metric_after.tick_count, 1);
  EXPECT_EQ(records[before].opens_event, EventKind::uptime);
  EXPECT_EQ(records[before + 1].metric_after.tick_count, 2);
}

}  // namespace
}  // namespace vigil

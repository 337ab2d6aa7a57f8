// The runner end to end: a real curl multi loop probing a real local target, ticks collected
// from the sink, metrics read back from the registry.
#include "runner/runner.h"

#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/logging.h"
#include "runner/scheduler.h"
#include "support/eventually.h"
#include "support/manual_clock.h"
#include "support/runner_metrics.h"
#include "support/target_server.h"
#include "support/tick_collector.h"

namespace vigil {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

using Collector = test::TickCollector;
using test::probed_service;

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

using test::eventually;

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

// Slots of a service: the first at first_probe_offset, then one every interval. How many are
// due by `t` after the start.
std::size_t slots_by(const std::string& name, Millis interval, std::chrono::nanoseconds t) {
  const auto offset = first_probe_offset(name, interval);
  return t < offset ? 0 : static_cast<std::size_t>((t - offset) / interval) + 1;
}

TEST_F(RunnerTest, TicksFollowTheConfiguredIntervalsOnTheRunnersClock) {
  test::ManualClock clock;
  RunnerOptions options;
  options.region = "test-region";
  options.clock = clock.runner_clock();
  Runner runner(options, collector_.sink(), registry_);
  runner.start({probed_service(1, "rate-a", target_->url("/hits/rate-a"), 100ms),
                probed_service(2, "rate-b", target_->url("/hits/rate-b"), 200ms)},
               {});
  ASSERT_GT(first_probe_offset("rate-a", 100ms), 0ns);  // no slot at the very start
  ASSERT_GT(first_probe_offset("rate-b", 200ms), 0ns);
  // 2 s in steps of 100 ms; after each, exactly the slots due by then have ticked.
  for (int step = 1; step <= 20; ++step) {
    ASSERT_TRUE(test::advance(clock, runner, 100ms));
    const auto t = step * 100ms;
    ASSERT_TRUE(collector_.wait_for_count(1, slots_by("rate-a", 100ms, t), 30s)) << step;
    ASSERT_TRUE(collector_.wait_for_count(2, slots_by("rate-b", 200ms, t), 30s)) << step;
  }
  runner.stop();

  const auto a = collector_.of(1);
  const auto b = collector_.of(2);
  EXPECT_EQ(a.size(), 20u);
  EXPECT_EQ(b.size(), slots_by("rate-b", 200ms, 2000ms));
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
    // Stamped with the runner's wall clock when it started: the step its slot fell in.
    EXPECT_EQ(a[i].tick.ts, clock.wall0() + 100ms * static_cast<int>(i + 1)) << i;
    if (i > 0) {
      EXPECT_FALSE(a[i].opens_event);
    }
  }
  for (std::size_t i = 1; i < b.size(); ++i) EXPECT_EQ(b[i].tick.ts - b[i - 1].tick.ts, 200ms);
}

TEST_F(RunnerTest, SwitchGoesUpDownUpWithOneLogLinePerTransition) {
  testing::internal::CaptureStderr();
  {
    Runner runner({}, collector_.sink(), registry_);
    runner.start({probed_service(1, "switch", target_->url("/switch"), 100ms)}, {});
    target_->set_switch_up(true);
    ASSERT_TRUE(collector_.wait_for_count(1, 3, 30s));
    target_->set_switch_up(false);
    ASSERT_TRUE(collector_.wait_for(
        1,
        [](const auto& rs) {
          return rs.size() >= 2 && !rs.back().tick.up && !rs[rs.size() - 2].tick.up;
        },
        30s));
    target_->set_switch_up(true);
    ASSERT_TRUE(collector_.wait_for(
        1, [](const auto& rs) { return !rs.empty() && rs.back().tick.up; }, 30s));
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
  runner.start({probed_service(1, "fresh", target_->url("/conn/fresh"), 100ms)}, {});
  ASSERT_TRUE(collector_.wait_for_count(1, 6, 30s));
  runner.stop();
  EXPECT_EQ(target_->connections("fresh"), static_cast<int>(collector_.count(1)));
}

TEST_F(RunnerTest, HostileTargetsDoNotDelayAHealthyService) {
  test::ManualClock clock;
  RunnerOptions options;
  options.clock = clock.runner_clock();
  options.drain_timeout = 100ms;
  Runner runner(options, collector_.sink(), registry_);
  runner.start({probed_service(1, "healthy", target_->url("/hits/healthy"), 100ms),
                probed_service(2, "trickle", target_->url("/trickle"), 300ms, 5000ms),
                probed_service(3, "endless", target_->url("/endless"), 100ms, 5000ms),
                // Never answers within the timeout; /hang, unlike /slow, lets teardown go.
                probed_service(4, "hang", target_->url("/hang?ms=6000"), 300ms, 5000ms),
                probed_service(5, "redirects", target_->url("/redirect-loop"), 100ms, 5000ms)},
               {});
  // Ten slots of the healthy service, each ticking while the trickle and the hang are still in
  // flight: a loop held by either would deliver nothing until its 5 s timeout.
  for (int step = 1; step <= 10; ++step) {
    ASSERT_TRUE(test::advance(clock, runner, 100ms));
    ASSERT_TRUE(collector_.wait_for_count(1, slots_by("healthy", 100ms, step * 100ms), 30s));
  }
  EXPECT_EQ(collector_.count(2), 0u);
  EXPECT_EQ(collector_.count(4), 0u);
  for (const auto& r : collector_.of(1)) EXPECT_TRUE(r.tick.up) << r.tick.error;

  // Their slots came while they were in flight: skipped, not overlapped.
  const auto families = registry_.Collect();
  const auto* skipped = find_metric(families, "vigil_runner_skipped_probes_total");
  ASSERT_NE(skipped, nullptr);
  EXPECT_GE(skipped->counter.value, 4);

  // The slow ones end at their own timeout.
  ASSERT_TRUE(collector_.wait_for_count(2, 1, 30s));
  ASSERT_TRUE(collector_.wait_for_count(4, 1, 30s));
  ASSERT_TRUE(collector_.wait_for_count(3, 1, 30s));
  ASSERT_TRUE(collector_.wait_for_count(5, 1, 30s));
  runner.stop();
  for (ServiceId slow : {ServiceId{2}, ServiceId{4}}) {
    for (const auto& r : collector_.of(slow)) {
      EXPECT_FALSE(r.tick.up);
      EXPECT_EQ(r.tick.error, "timeout after 5000 ms");
      EXPECT_GE(r.tick.response_ms, 4950);
    }
  }
  for (const auto& r : collector_.of(3)) EXPECT_EQ(r.tick.error, "body larger than 1048576 bytes");
  for (const auto& r : collector_.of(5)) EXPECT_EQ(r.tick.error, "too many redirects");
}

TEST_F(RunnerTest, ConcurrencyCapHoldsProbesBackAndLatenessIsMeasuredFromTheSlot) {
  test::ManualClock clock;
  RunnerOptions options;
  options.max_concurrency = 1;
  options.clock = clock.runner_clock();
  Runner runner(options, collector_.sink(), registry_);
  std::vector<Service> services;
  for (int i = 1; i <= 4; ++i)
    services.push_back(
        probed_service(i, "capped-" + std::to_string(i), target_->url("/slow?ms=200"), 1000ms));
  runner.start(std::move(services), {});
  // Every first slot is due at once; the cap lets the probes through one at a time.
  ASSERT_TRUE(test::advance(clock, runner, 1000ms));
  std::size_t most_in_flight = 0;
  const auto until = Clock::now() + 30s;
  const auto ticks = [&] {
    std::size_t n = 0;
    for (int i = 1; i <= 4; ++i) n += collector_.count(i);
    return n;
  };
  while (ticks() < 4 && Clock::now() < until) {
    most_in_flight = std::max(most_in_flight, runner.in_flight());
    std::this_thread::sleep_for(1ms);
  }
  runner.stop();
  ASSERT_EQ(ticks(), 4u);
  EXPECT_EQ(most_in_flight, 1u);

  // Lateness is the runner's clock at the start minus the slot: the clock stood at 1 s while
  // the four waited their turn.
  double expected_sum = 0;
  for (int i = 1; i <= 4; ++i)
    expected_sum += std::chrono::duration<double>(
                        1000ms - first_probe_offset("capped-" + std::to_string(i), 1000ms))
                        .count();
  const auto families = registry_.Collect();
  const auto* lateness = find_metric(families, "vigil_scheduler_lateness_seconds");
  ASSERT_NE(lateness, nullptr);
  const auto& h = lateness->histogram;
  EXPECT_EQ(h.sample_count, 4u);
  EXPECT_NEAR(h.sample_sum, expected_sum, 1e-6);
  ASSERT_FALSE(h.bucket.empty());
  EXPECT_EQ(h.bucket.front().upper_bound, 0.001);
  EXPECT_EQ(h.bucket[h.bucket.size() - 2].upper_bound, 60);  // last is +Inf
}

TEST_F(RunnerTest, UpsertChangesIntervalAndUrlLiveAndKeepsState) {
  test::ManualClock clock;
  RunnerOptions options;
  options.clock = clock.runner_clock();
  Runner runner(options, collector_.sink(), registry_);
  runner.start({probed_service(1, "live", target_->url("/hits/live-a"), 1000ms)}, {});
  const auto offset = std::chrono::ceil<Millis>(first_probe_offset("live", 1000ms));
  ASSERT_TRUE(test::advance(clock, runner, offset));
  ASSERT_TRUE(collector_.wait_for_count(1, 1, 30s));

  runner.upsert_service(probed_service(1, "live", target_->url("/hits/live-b"), 100ms));
  // The phase is kept: the next slot is one new interval after the last one.
  for (int step = 1; step <= 10; ++step) {
    ASSERT_TRUE(test::advance(clock, runner, 100ms));
    ASSERT_TRUE(collector_.wait_for_count(1, 1 + step, 30s)) << step;
  }
  runner.stop();

  EXPECT_EQ(target_->hits("live-a"), 1);  // the next 1 s slot never came
  EXPECT_EQ(target_->hits("live-b"), 10);
  const auto records = collector_.of(1);
  ASSERT_EQ(records.size(), 11u);
  for (std::size_t i = 0; i < records.size(); ++i) {
    // One metric and one open event across the change.
    EXPECT_EQ(records[i].metric_after.tick_count, static_cast<std::int64_t>(i + 1));
    EXPECT_EQ(records[i].opens_event.has_value(), i == 0);
    if (i > 0) {
      EXPECT_EQ(records[i].tick.ts - records[i - 1].tick.ts, 100ms) << i;
    }
  }
}

TEST_F(RunnerTest, RemoveStopsTicksAndAbandonsTheInFlightProbe) {
  test::ManualClock clock;
  RunnerOptions options;
  options.clock = clock.runner_clock();
  Runner runner(options, collector_.sink(), registry_);
  runner.start({probed_service(1, "kept", target_->url("/hits/kept"), 100ms),
                probed_service(2, "hanging", target_->url("/hang?ms=6000"), 100ms, 5000ms),
                probed_service(3, "removed", target_->url("/hits/removed"), 100ms)},
               {});
  for (int step = 1; step <= 3; ++step) {
    ASSERT_TRUE(test::advance(clock, runner, 100ms));
    ASSERT_TRUE(collector_.wait_for_count(1, slots_by("kept", 100ms, step * 100ms), 30s));
    ASSERT_TRUE(collector_.wait_for_count(3, slots_by("removed", 100ms, step * 100ms), 30s));
  }
  ASSERT_EQ(runner.in_flight(), 1u);  // the hanging probe, 5 s from its timeout
  EXPECT_EQ(gauge_value(registry_, runner, "probe_success", {{"service", "removed"}}), 1);

  runner.remove_service(2);
  runner.remove_service(3);
  ASSERT_TRUE(test::advance(clock, runner, 1ms));  // the commands are applied
  ASSERT_EQ(gauge_value(registry_, runner, "vigil_services"), 1);
  // The abandoned probe left the multi at once instead of running to its timeout.
  EXPECT_EQ(runner.in_flight(), 0u);
  const std::size_t removed_ticks = collector_.count(3);
  const int removed_hits = target_->hits("removed");
  const std::size_t kept_ticks = collector_.count(1);

  for (int step = 1; step <= 4; ++step) {
    ASSERT_TRUE(test::advance(clock, runner, 100ms));
    ASSERT_TRUE(collector_.wait_for_count(1, kept_ticks + step, 30s));
  }
  EXPECT_EQ(collector_.count(3), removed_ticks);
  EXPECT_EQ(target_->hits("removed"), removed_hits);
  EXPECT_EQ(collector_.count(2), 0u);  // nothing recorded for the abandoned probe
  EXPECT_EQ(gauge_value(registry_, runner, "probe_success", {{"service", "removed"}}), -1);  // gone
  EXPECT_EQ(gauge_value(registry_, runner, "probe_success", {{"service", "kept"}}), 1);
  runner.stop();
  EXPECT_EQ(collector_.count(2), 0u);
}

TEST_F(RunnerTest, StopDeliversWhatFinishesWithinTheDrainBoundAndAbortsTheRest) {
  test::ManualClock clock;
  RunnerOptions options;
  options.clock = clock.runner_clock();
  options.drain_timeout = 1000ms;
  Runner runner(options, collector_.sink(), registry_);
  // Long timeouts: only the drain bound can end "never" in time.
  runner.start({probed_service(1, "slow-ok", target_->url("/slow?ms=300"), 60s, 60s),
                probed_service(2, "never", target_->url("/hang?ms=10000"), 60s, 60s)},
               {});
  ASSERT_TRUE(test::advance(clock, runner, 60s));
  ASSERT_TRUE(eventually([&] { return runner.in_flight() == 2; }, 30s));
  ASSERT_EQ(collector_.count(1), 0u);

  testing::internal::CaptureStderr();
  const auto t0 = Clock::now();
  runner.stop();
  const auto took = Clock::now() - t0;
  const std::string log = testing::internal::GetCapturedStderr();
  // The bound and some slack for a loaded machine; without the bound, 10 s.
  EXPECT_LT(took, 5s);
  EXPECT_GE(took, 900ms);  // it did wait for the bound before giving up

  const auto slow = collector_.of(1);
  ASSERT_EQ(slow.size(), 1u);  // finished within the bound: delivered
  EXPECT_TRUE(slow[0].tick.up) << slow[0].tick.error;
  EXPECT_EQ(collector_.count(2), 0u);  // aborted: nothing measured, nothing recorded
  EXPECT_EQ(runner.in_flight(), 0u);
  EXPECT_NE(log.find("runner: 1 probes still in flight after 1000 ms aborted at shutdown"),
            std::string::npos)
      << log;

  // Nothing more after stop, and stop again is a no-op.
  const auto t1 = Clock::now();
  runner.stop();
  EXPECT_LT(Clock::now() - t1, 1s);
  EXPECT_EQ(collector_.count(1) + collector_.count(2), 1u);
}

TEST_F(RunnerTest, StopWithNothingInFlightReturnsAtOnce) {
  RunnerOptions options;
  options.drain_timeout = 60s;
  Runner runner(options, collector_.sink(), registry_);
  runner.start({}, {});
  const auto t0 = Clock::now();
  runner.stop();
  EXPECT_LT(Clock::now() - t0, 10s);  // far below the bound: the drain ends with the last probe
}

TEST_F(RunnerTest, ResumesStoredStateAndReportsIt) {
  ServiceRuntime stored;
  for (int i = 0; i < 10; ++i) stored.metric.add(i < 8, 10);
  stored.open_event_kind = EventKind::uptime;
  stored.open_event_started = now_ms() - 1h;

  test::ManualClock clock;
  RunnerOptions options;
  options.clock = clock.runner_clock();
  Runner runner(options, collector_.sink(), registry_);
  runner.start({probed_service(9, "resumed", target_->url("/status/500"), 1000ms)}, {{9, stored}});
  // Before its first probe (the clock has not moved) the service already shows the stored state.
  EXPECT_EQ(gauge_value(registry_, runner, "vigil_service_up", {{"service", "resumed"}}), 1);
  EXPECT_DOUBLE_EQ(
      gauge_value(registry_, runner, "vigil_service_uptime_ratio", {{"service", "resumed"}}), 0.8);
  EXPECT_EQ(gauge_value(registry_, runner, "probe_success", {{"service", "resumed"}}),
            -1);  // not probed yet

  ASSERT_TRUE(test::advance(clock, runner, 1000ms));
  ASSERT_TRUE(collector_.wait_for_count(9, 1, 30s));
  const auto first = collector_.of(9).front();
  EXPECT_EQ(first.opens_event, EventKind::downtime);
  EXPECT_EQ(first.metric_after.tick_count, 11);
  EXPECT_EQ(first.metric_after.up_count, 8);
  EXPECT_EQ(gauge_value(registry_, runner, "vigil_service_up", {{"service", "resumed"}}), 0);
  EXPECT_EQ(gauge_value(registry_, runner, "probe_http_status_code", {{"service", "resumed"}}),
            500);
  runner.stop();
}

TEST_F(RunnerTest, ExposesMetricFamiliesThatPassPromtool) {
  Runner runner({}, collector_.sink(), registry_);
  runner.start(
      {probed_service(1, "metrics-up", target_->url("/ok"), 100ms),
       probed_service(2, "metrics-down",
                      "http://127.0.0.1:" + std::to_string(test::closed_port()) + "/", 100ms)},
      {});
  ASSERT_TRUE(collector_.wait_for_count(1, 2, 30s));
  ASSERT_TRUE(collector_.wait_for_count(2, 2, 30s));
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
  const auto value = [&](const char* family, const std::map<std::string, std::string>& labels) {
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
  test::ManualClock clock;
  RunnerOptions options;
  options.clock = clock.runner_clock();
  Runner runner(options, collector_.sink(), registry_);
  runner.start({}, {});
  EXPECT_EQ(runner.last_alive(), clock.wall0());
  // Not woken: the loop goes round by itself (at least once a second) and reads its clock.
  // Twice, so the round seen the second time cannot be one a wake-up at the start caused.
  for (int round = 0; round < 2; ++round) {
    clock.advance(5s);
    EXPECT_TRUE(eventually([&] { return runner.last_alive() == clock.wall(); }, 30s)) << round;
  }
  runner.stop();
}

// ---- deactivation keeps a service's state; a purge drops it ----

Service inactive(Service s) {
  s.active = false;
  return s;
}

// A runner on a manual clock, stepped one interval of 100 ms at a time.
class SteppedRunnerTest : public RunnerTest {
 protected:
  SteppedRunnerTest() {
    options_.clock = clock_.runner_clock();
    runner_ = std::make_unique<Runner>(options_, collector_.sink(), registry_);
  }
  // One step; then waits until `id` has `ticks` ticks (when given).
  void step(std::optional<std::pair<ServiceId, std::size_t>> ticks = std::nullopt) {
    ASSERT_TRUE(test::advance(clock_, *runner_, 100ms));
    if (ticks) {
      ASSERT_TRUE(collector_.wait_for_count(ticks->first, ticks->second, 30s));
    }
  }
  // Lets the runner apply the commands queued so far.
  void apply() { ASSERT_TRUE(test::advance(clock_, *runner_, 1ms)); }
  double services() { return gauge_value(registry_, *runner_, "vigil_services"); }

  test::ManualClock clock_;
  RunnerOptions options_;
  std::unique_ptr<Runner> runner_;
};

TEST_F(SteppedRunnerTest, DeactivatingThenReactivatingContinuesTheMetricAndTheOpenEvent) {
  const Service paused = probed_service(1, "paused", target_->url("/hits/paused"), 100ms);
  // Probed at every step throughout: what a probe of the paused service would have been.
  const Service witness = probed_service(2, "witness", target_->url("/hits/witness"), 100ms);
  runner_->start({paused, witness}, {});
  for (std::size_t i = 1; i <= 3; ++i) step({{1, i}});

  // Twice, as `vigil run` hands it over from the API and again from the change feed.
  runner_->upsert_service(inactive(paused));
  runner_->upsert_service(inactive(paused));
  apply();
  ASSERT_EQ(services(), 1);
  const std::size_t before = collector_.count(1);
  const int hits_before = target_->hits("paused");
  const std::size_t witnessed = collector_.count(2);
  for (std::size_t i = 1; i <= 4; ++i) step({{2, witnessed + i}});
  EXPECT_EQ(collector_.count(1), before);  // not probed while inactive
  EXPECT_EQ(target_->hits("paused"), hits_before);
  EXPECT_EQ(gauge_value(registry_, *runner_, "vigil_service_up", {{"service", "paused"}}), -1);

  runner_->upsert_service(paused);
  apply();
  ASSERT_EQ(services(), 2);
  // Its series come back with the kept state before the first new tick.
  EXPECT_EQ(gauge_value(registry_, *runner_, "vigil_service_up", {{"service", "paused"}}), 1);
  for (std::size_t i = 1; i <= 3; ++i) step({{1, before + i}});
  runner_->stop();

  // One metric and one open event across the pause.
  const auto records = collector_.of(1);
  for (std::size_t i = 0; i < records.size(); ++i) {
    EXPECT_EQ(records[i].metric_after.tick_count, static_cast<std::int64_t>(i + 1)) << i;
    EXPECT_EQ(records[i].opens_event.has_value(), i == 0) << i;
  }
  EXPECT_EQ(records.back().metric_after.up_count, static_cast<std::int64_t>(records.size()));
}

TEST_F(SteppedRunnerTest, ReactivatedWithAnotherStatusItOpensOneNewEvent) {
  target_->set_switch_up(true);
  const Service flipped = probed_service(2, "flipped", target_->url("/switch"), 100ms);
  runner_->start({flipped}, {});
  for (std::size_t i = 1; i <= 2; ++i) step({{2, i}});
  runner_->upsert_service(inactive(flipped));
  apply();
  ASSERT_EQ(services(), 0);
  const std::size_t before = collector_.count(2);

  target_->set_switch_up(false);
  runner_->upsert_service(flipped);
  apply();  // back at its first-probe offset from now, as a new service
  for (std::size_t i = 1; i <= 2; ++i) step({{2, before + i}});
  runner_->stop();
  target_->set_switch_up(true);

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

TEST_F(SteppedRunnerTest, StateStoredForAnInactiveServiceIsResumedWhenItIsReactivated) {
  ServiceRuntime stored;
  for (int i = 0; i < 10; ++i) stored.metric.add(true, 10);
  stored.open_event_kind = EventKind::uptime;
  stored.open_event_started = now_ms() - 1h;
  stored.last_tick_at = now_ms() - 1h;
  const Service dormant = probed_service(3, "dormant", target_->url("/hits/dormant"), 100ms);
  const Service witness = probed_service(4, "witness-2", target_->url("/hits/witness-2"), 100ms);

  runner_->start({inactive(dormant), witness}, {{3, stored}});
  for (std::size_t i = 1; i <= 3; ++i) step({{4, i}});
  EXPECT_EQ(collector_.count(3), 0u);  // inactive at start: not probed
  EXPECT_EQ(services(), 1);

  runner_->upsert_service(dormant);
  apply();
  for (std::size_t i = 1; i <= 2; ++i) step({{3, i}});
  runner_->stop();
  const auto records = collector_.of(3);
  EXPECT_EQ(records[0].metric_after.tick_count, 11);
  EXPECT_EQ(records[1].metric_after.tick_count, 12);
  EXPECT_FALSE(records[0].opens_event.has_value());  // the stored uptime event goes on
}

TEST_F(SteppedRunnerTest, APurgeDropsTheKeptState) {
  ServiceRuntime stored;
  for (int i = 0; i < 10; ++i) stored.metric.add(true, 10);
  stored.open_event_kind = EventKind::uptime;
  stored.open_event_started = now_ms() - 1h;
  const Service purged = probed_service(4, "purged", target_->url("/hits/purged"), 100ms);

  runner_->start({purged}, {{4, stored}});
  step({{4, 1}});
  runner_->upsert_service(inactive(purged));
  runner_->remove_service(4);
  // Nothing of it is kept: were the id given again, that service would start from scratch.
  runner_->upsert_service(purged);
  apply();
  ASSERT_EQ(services(), 1);
  const std::size_t before = collector_.count(4);
  for (std::size_t i = 1; i <= 2; ++i) step({{4, before + i}});
  runner_->stop();
  const auto records = collector_.of(4);
  EXPECT_EQ(records[0].metric_after.tick_count, 11);
  EXPECT_EQ(records[before].metric_after.tick_count, 1);
  EXPECT_EQ(records[before].opens_event, EventKind::uptime);
  EXPECT_EQ(records[before + 1].metric_after.tick_count, 2);
}

// ---- failures of the runner itself ----

TEST_F(SteppedRunnerTest, AProbeThatCannotStartIsADownTickWithTheReasonAndItsScheduleGoesOn) {
  // curl refuses a URL above its 8 MB input limit, so the probe cannot be made.
  const std::string huge = target_->url("/ok?pad=" + std::string(8'000'001, 'a'));
  runner_->start({probed_service(1, "unstartable", huge, 100ms),
                  probed_service(2, "fine", target_->url("/hits/fine"), 100ms)},
                 {});
  for (std::size_t i = 1; i <= 2; ++i) {  // the next slot tries again
    step({{1, i}});
    ASSERT_TRUE(collector_.wait_for_count(2, i, 30s));
  }
  runner_->stop();

  const auto records = collector_.of(1);
  ASSERT_GE(records.size(), 2u);
  for (const auto& r : records) {
    EXPECT_FALSE(r.tick.up);
    EXPECT_TRUE(r.tick.error.starts_with("cannot start probe: URL refused by curl ("))
        << r.tick.error;
    EXPECT_FALSE(r.tick.status_code);
  }
  // Like any failed probe: a downtime opens (so alerts follow) and the metrics show it.
  EXPECT_EQ(records[0].opens_event, EventKind::downtime);
  EXPECT_FALSE(records[1].opens_event.has_value());
  EXPECT_EQ(records[1].metric_after.down_count, 2);
  EXPECT_EQ(gauge_value(registry_, *runner_, "probe_success", {{"service", "unstartable"}}), 0);
  EXPECT_EQ(gauge_value(registry_, *runner_, "vigil_service_up", {{"service", "unstartable"}}), 0);
  for (const auto& r : collector_.of(2)) EXPECT_TRUE(r.tick.up) << r.tick.error;
}

TEST_F(RunnerTest, AnErrorOnTheRunnerThreadIsLoggedCountedAndProbingGoesOn) {
  // Nothing the runner calls throws in normal operation (probe creation failures are ticks, a
  // throwing sink is caught where it is called); its clock is the one dependency the loop calls
  // on every round, so it stands in for any unexpected exception there.
  test::ManualClock manual;
  std::atomic<int> failures{0};
  RunnerOptions options;
  options.clock.wall = [&] { return manual.wall(); };
  options.clock.steady = [&] {
    for (int left = failures.load(); left > 0;)
      if (failures.compare_exchange_weak(left, left - 1)) throw std::runtime_error("clock broke");
    return manual.steady();
  };
  Runner runner(options, collector_.sink(), registry_);
  runner.start({probed_service(1, "survivor", target_->url("/hits/survivor"), 100ms)}, {});
  testing::internal::CaptureStderr();
  failures = 3;
  ASSERT_TRUE(test::advance(manual, runner, 100ms));
  ASSERT_TRUE(collector_.wait_for_count(1, 1, 30s));
  ASSERT_TRUE(test::advance(manual, runner, 100ms));
  ASSERT_TRUE(collector_.wait_for_count(1, 2, 30s));
  runner.stop();
  const std::string log = testing::internal::GetCapturedStderr();

  EXPECT_EQ(failures.load(), 0);
  const auto families = registry_.Collect();
  const auto* errors = find_metric(families, "vigil_runner_errors_total");
  ASSERT_NE(errors, nullptr);
  EXPECT_EQ(errors->counter.value, 3);
  EXPECT_NE(log.find("runner: error in the probe loop (probing goes on): clock broke"),
            std::string::npos)
      << log;
  for (const auto& r : collector_.of(1)) EXPECT_TRUE(r.tick.up) << r.tick.error;
}

}  // namespace
}  // namespace vigil

// TCP checks: tcp://host:port against real local sockets: an open port, a closed one,
// a banner, a send/expect exchange, a wrong answer, silence until the timeout; and in the
// runner, a silent TCP conversation never delays other probes and leaves no sockets behind.
#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/conditions.h"
#include "runner/probe.h"
#include "runner/runner.h"
#include "support/manual_clock.h"
#include "support/phase_sum.h"
#include "support/raw_target.h"
#include "support/target_server.h"

namespace vigil {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

ServiceSpec tcp_spec(int port, Millis timeout = 1000ms) {
  ServiceSpec s;
  s.name = "tcp-test";
  s.url = "tcp://127.0.0.1:" + std::to_string(port);
  s.timeout = timeout;
  return s;
}

ProbeResult run(const ServiceSpec& s) {
  auto probe = make_probe(s, ProbeSettings{});
  return run_probe_now(*probe, s.timeout);
}

// Answers "+PONG" to a "PING" line, "-ERR" to anything else, then closes.
void redis_like(test::RawConnection& c) {
  const std::string line = c.read_until("\n");
  c.send(line == "PING\n" ? "+PONG\r\n" : "-ERR unknown command\r\n");
}

TEST(TcpProbe, OpenPortIsUpWithResolveAndConnectPhases) {
  test::RawTarget target([](test::RawConnection& c) { c.wait_for_close(2s); });
  const ProbeResult r = run(tcp_spec(target.port()));
  EXPECT_TRUE(r.up) << r.error;
  EXPECT_FALSE(r.status_code);
  EXPECT_EQ(r.details.resolved_ip, "127.0.0.1");
  ASSERT_TRUE(r.phases);
  EXPECT_GT(r.phases->connect_ms, 0);
  EXPECT_EQ(r.phases->tls_ms, 0);
  EXPECT_NEAR(test::phase_sum(*r.phases), r.response_ms, 0.001);
  EXPECT_FALSE(r.details.http);  // no probe_http_* series for it
  // The target really saw one connection (its acceptor thread counts it a moment later).
  for (auto until = Clock::now() + 1s; target.accepted() < 1 && Clock::now() < until;)
    std::this_thread::sleep_for(5ms);
  EXPECT_EQ(target.accepted(), 1);
}

TEST(TcpProbe, ClosedPortIsConnectionRefused) {
  const ProbeResult r = run(tcp_spec(test::closed_port()));
  EXPECT_FALSE(r.up);
  EXPECT_EQ(r.error, "connection refused");
}

TEST(TcpProbe, BannerIsExpected) {
  test::RawTarget target([](test::RawConnection& c) {
    c.send("220 mail.example ESMTP ready\r\n");
    c.wait_for_close(2s);
  });
  ServiceSpec s = tcp_spec(target.port());
  s.probe.tcp_expect = "ESMTP";
  const ProbeResult r = run(s);
  EXPECT_TRUE(r.up) << r.error;
  EXPECT_GT(r.details.body_bytes, 0);
}

TEST(TcpProbe, SendThenExpectTheAnswer) {
  test::RawTarget target(redis_like);
  ServiceSpec s = tcp_spec(target.port());
  s.probe.tcp_send = "PING";  // a "\n" is added
  s.probe.tcp_expect = "+PONG";
  const ProbeResult r = run(s);
  EXPECT_TRUE(r.up) << r.error;
  ASSERT_TRUE(r.phases);
  EXPECT_NEAR(test::phase_sum(*r.phases), r.response_ms, 0.001);
}

TEST(TcpProbe, WrongAnswerThenCloseIsDownNamingWhatWasExpected) {
  test::RawTarget target(redis_like);
  ServiceSpec s = tcp_spec(target.port());
  s.probe.tcp_send = "HELLO\n";
  s.probe.tcp_expect = "+PONG";
  const ProbeResult r = run(s);
  EXPECT_FALSE(r.up);
  EXPECT_EQ(r.error, "expected \"+PONG\" not received (connection closed after 22 bytes)");
}

TEST(TcpProbe, SilenceEndsAtTheTimeout) {
  test::RawTarget target([](test::RawConnection& c) { c.wait_for_close(5s); });
  ServiceSpec s = tcp_spec(target.port(), 400ms);
  s.probe.tcp_send = "PING";
  s.probe.tcp_expect = "+PONG";
  const auto t0 = Clock::now();
  const ProbeResult r = run(s);
  const auto took = Clock::now() - t0;
  EXPECT_FALSE(r.up);
  EXPECT_EQ(r.error, "timeout after 400 ms waiting for \"+PONG\"");
  EXPECT_GE(took, 380ms);
  EXPECT_LT(took, 900ms);
  EXPECT_GE(r.response_ms, 380);
}

TEST(TcpProbe, MaxResponseMsIsItsCondition) {
  test::RawTarget target([](test::RawConnection& c) {
    std::this_thread::sleep_for(150ms);
    c.send("ready\n");
    c.wait_for_close(2s);
  });
  ServiceSpec s = tcp_spec(target.port());
  s.probe.tcp_expect = "ready";
  s.probe.conditions = parse_conditions(nlohmann::json{{"max_response_ms", 50}}, "test");
  const ProbeResult r = run(s);
  EXPECT_FALSE(r.up);
  EXPECT_TRUE(r.error.starts_with("condition failed: response took 1")) << r.error;
}

std::size_t open_fds() {
  return static_cast<std::size_t>(std::distance(
      std::filesystem::directory_iterator("/proc/self/fd"), std::filesystem::directory_iterator{}));
}

TEST(TcpInRunner, SilentConversationsDoNotDelayOthersAndLeaveNoSockets) {
  test::TargetServer http_target;
  test::RawTarget silent([](test::RawConnection& c) { c.wait_for_close(20s); });
  test::RawTarget answering(redis_like);
  prometheus::Registry registry;
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<TickRecord> records;
  const auto count = [&](ServiceId id) {
    std::lock_guard lock(mutex);
    return std::count_if(records.begin(), records.end(),
                         [id](const TickRecord& r) { return r.tick.service_id == id; });
  };
  const auto wait_for = [&](ServiceId id, long n) {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, 30s, [&] {
      return std::count_if(records.begin(), records.end(),
                           [id](const TickRecord& r) { return r.tick.service_id == id; }) >= n;
    });
  };
  test::ManualClock clock;
  RunnerOptions options;
  options.clock = clock.runner_clock();
  Runner runner(
      options,
      [&](TickRecord record) {
        std::lock_guard lock(mutex);
        records.push_back(std::move(record));
        changed.notify_all();
      },
      registry);

  Service healthy;
  healthy.id = 1;
  healthy.spec.name = "healthy";
  healthy.spec.url = http_target.url("/ok");
  healthy.spec.interval = 100ms;
  healthy.spec.timeout = 5000ms;  // generous: a busy machine must not fail it
  Service hanging;
  hanging.id = 2;
  hanging.spec = tcp_spec(silent.port(), 5000ms);
  hanging.spec.name = "hanging";
  hanging.spec.interval = 100ms;
  hanging.spec.probe.tcp_send = "PING";
  hanging.spec.probe.tcp_expect = "+PONG";
  Service pong;
  pong.id = 3;
  pong.spec = tcp_spec(answering.port(), 5000ms);
  pong.spec.name = "pong";
  pong.spec.interval = 100ms;
  pong.spec.probe.tcp_send = "PING";
  pong.spec.probe.tcp_expect = "+PONG";

  const std::size_t fds_before = open_fds();
  runner.start({healthy, hanging, pong}, {});
  // Ten slots of the others, all delivered while the silent conversation (5 s) still waits.
  for (long step = 1; step <= 10; ++step) {
    ASSERT_TRUE(test::advance(clock, runner, 100ms));
    ASSERT_TRUE(wait_for(1, step));
    ASSERT_TRUE(wait_for(3, step));
  }
  EXPECT_EQ(count(2), 0);
  ASSERT_TRUE(wait_for(2, 1));  // at its own deadline
  runner.stop();

  std::map<ServiceId, std::vector<TickRecord>> by_service;
  for (auto& r : records) by_service[r.tick.service_id].push_back(r);
  for (const auto& r : by_service[1]) EXPECT_TRUE(r.tick.up) << r.tick.error;
  for (const auto& r : by_service[2])
    EXPECT_EQ(r.tick.error, "timeout after 5000 ms waiting for \"+PONG\"");
  const auto& p = by_service[3];
  for (const auto& r : p) {
    EXPECT_TRUE(r.tick.up) << r.tick.error;
    ASSERT_TRUE(r.tick.phases);
  }
  EXPECT_GE(answering.accepted(), static_cast<int>(p.size()));
  // Every connection the probes opened is closed again: at most a few stragglers curl keeps
  // (the targets' threads close their ends after ours).
  std::size_t fds_after = open_fds();
  for (auto until = std::chrono::steady_clock::now() + 10s;
       fds_after > fds_before + 4 && std::chrono::steady_clock::now() < until;
       fds_after = open_fds())
    std::this_thread::sleep_for(10ms);
  EXPECT_LE(fds_after, fds_before + 4) << fds_before << " -> " << fds_after;
}

}  // namespace
}  // namespace vigil

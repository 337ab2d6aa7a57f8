// The local address probes leave from (a service's source_ip, else the runner's
// PROBER_SOURCE_IP), seen by real targets on 127.0.0.1: the whole of 127.0.0.0/8 is this
// machine's, so each address is a prober a target can tell apart.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "config/config.h"
#include "runner/probe.h"
#include "support/eventually.h"
#include "support/raw_target.h"
#include "support/target_server.h"

namespace vigil {
namespace {

using namespace std::chrono_literals;

ServiceSpec source_spec(const std::string& url, const std::string& source_ip) {
  ServiceSpec spec;
  spec.name = "source";
  spec.url = url;
  spec.timeout = 2000ms;
  spec.probe.source_ip = source_ip;
  return spec;
}

ProbeResult probe_once(const ServiceSpec& spec, const ProbeSettings& settings) {
  const auto probe = make_probe(spec, settings);
  return run_probe_now(*probe, spec.timeout);
}

TEST(SourceAddress, HttpProbesLeaveFromTheServicesAddressElseTheRunnersElseTheSystems) {
  test::TargetServer target;
  const std::string url = target.url("/peer/http");
  ProbeSettings runner_default;
  runner_default.source_ip = "127.0.0.2";

  EXPECT_TRUE(probe_once(source_spec(url, ""), ProbeSettings{}).up);
  EXPECT_TRUE(probe_once(source_spec(url, ""), runner_default).up);
  EXPECT_TRUE(probe_once(source_spec(url, "127.0.0.3"), runner_default).up);
  EXPECT_TRUE(probe_once(source_spec(url, "127.0.0.4"), ProbeSettings{}).up);

  const std::map<std::string, int> expected = {
      {"127.0.0.1", 1}, {"127.0.0.2", 1}, {"127.0.0.3", 1}, {"127.0.0.4", 1}};
  EXPECT_EQ(target.peers("http"), expected);
}

TEST(SourceAddress, TcpProbesLeaveFromItToo) {
  std::mutex mutex;
  std::vector<std::string> seen;
  test::RawTarget target([&](test::RawConnection& c) {
    std::lock_guard lock(mutex);
    seen.push_back(c.peer_address());
  });
  const std::string url = "tcp://127.0.0.1:" + std::to_string(target.port());
  ProbeSettings runner_default;
  runner_default.source_ip = "127.0.0.5";
  const ProbeResult from_runner = probe_once(source_spec(url, ""), runner_default);
  EXPECT_TRUE(from_runner.up) << from_runner.error;
  const ProbeResult from_service = probe_once(source_spec(url, "127.0.0.6"), runner_default);
  EXPECT_TRUE(from_service.up) << from_service.error;

  // The target notes each connection on a thread of its own, after the probe may have ended.
  const auto both_seen = [&] {
    std::lock_guard lock(mutex);
    return seen.size() >= 2;
  };
  ASSERT_TRUE(test::eventually(both_seen));
  std::lock_guard lock(mutex);
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (std::vector<std::string>{"127.0.0.5", "127.0.0.6"}));
}

TEST(SourceAddress, AnAddressNotOfThisMachineMakesTheProbeDownAtOnceNamingIt) {
  test::TargetServer target;
  // 192.0.2.0/24 is TEST-NET-1: documentation only, never a local address.
  const auto started = std::chrono::steady_clock::now();
  const ProbeResult result =
      probe_once(source_spec(target.url("/peer/foreign"), "192.0.2.1"), ProbeSettings{});
  EXPECT_FALSE(result.up);
  EXPECT_EQ(result.error.rfind("source address 192.0.2.1: ", 0), 0u) << result.error;
  // Refused by bind(), not left to the 2 s timeout.
  EXPECT_LT(std::chrono::steady_clock::now() - started, 1500ms);
  EXPECT_TRUE(target.peers("foreign").empty());
}

}  // namespace
}  // namespace vigil

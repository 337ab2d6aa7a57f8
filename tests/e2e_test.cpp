// End-to-end: the real vigil binary, a real target server, a real database of each backend (a
// SQLite file, a PostgreSQL schema), real HTTP. The tests of what vigil stores run on both; those
// of configuration checks and process limits, where the database is incidental, on SQLite only.
#include <gtest/gtest.h>
#include <httplib.h>
#include <sys/resource.h>

#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include "runner/scheduler.h"
#include "support/idle_flood.h"
#include "support/process.h"
#include "support/store_backends.h"
#include "support/target_server.h"
#include "support/vigil_process.h"

namespace vigil::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

std::optional<json> get_json(int port, const std::string& path) {
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(1);
  client.set_read_timeout(5);
  auto res = client.Get(path.c_str());
  if (!res) return std::nullopt;
  try {
    return json::parse(res->body);
  } catch (const json::exception&) {
    return std::nullopt;
  }
}

json service_named(const json& services, const std::string& name) {
  for (const auto& s : services["data"]["services"]["data"])
    if (s["name"] == name) return s;
  return json();
}

// The soft and hard "Max open files" of process `pid`, as /proc shows them ("unlimited" or a
// number); empty when not found.
std::pair<std::string, std::string> open_file_limits(pid_t pid) {
  std::ifstream limits("/proc/" + std::to_string(pid) + "/limits");
  for (std::string line; std::getline(limits, line);) {
    if (line.rfind("Max open files", 0) != 0) continue;
    std::istringstream fields(line.substr(std::string("Max open files").size()));
    std::string soft, hard;
    fields >> soft >> hard;
    return {soft, hard};
  }
  return {};
}

void write_services(const TempDir& dir, const json& services) {
  std::ofstream(dir.file("services.json")) << services.dump(2);
}

class EndToEnd : public StoreBackendTest {
 protected:
  // `vigil <command>` on the test's database.
  VigilProcess start(const std::string& command) {
    return VigilProcess(dir, command, api_port, database().vigil_environment());
  }

  TargetServer target;
  TempDir dir;
  int api_port = closed_port();
  json two_services() {
    return json::array(
        {{{"name", "healthy"}, {"url", target.url("/ok")}, {"interval_seconds", 0.2}},
         {{"name", "refused"},
          {"url", "http://127.0.0.1:" + std::to_string(closed_port()) + "/"},
          {"interval_seconds", 0.2}}});
  }
  // Waits until both services have at least `ticks` ticks; returns the last listing.
  json wait_for_ticks(int ticks) {
    json listing;
    eventually(
        [&] {
          auto body = get_json(api_port, "/v1/services");
          if (!body) return false;
          listing = *body;
          const auto a = service_named(listing, "healthy");
          const auto b = service_named(listing, "refused");
          return !a.is_null() && !b.is_null() &&
                 a["metric"]["data"]["tick_count"].get<int>() >= ticks &&
                 b["metric"]["data"]["tick_count"].get<int>() >= ticks;
        },
        15s);
    return listing;
  }
};

INSTANTIATE_TEST_SUITE_P(Backends, EndToEnd, kStoreBackends, backend_name);

// Configuration checks, process limits and the shutdown drain bound: the database is
// incidental (or, for the drain, covered by the SIGINT test on both), so SQLite only.
class EndToEndProcess : public EndToEnd {};
INSTANTIATE_TEST_SUITE_P(SqliteOnly, EndToEndProcess, kSqliteOnly, backend_name);

TEST_P(EndToEndProcess, CheckConfigListsValidServices) {
  write_services(dir, two_services());
  auto result = run_command("cd " + dir.path() + " && SERVICES_FILE=services.json " + VIGIL_BINARY +
                            " check-config");
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("2 services"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("healthy"), std::string::npos) << result.output;
}

TEST_P(EndToEndProcess, CheckConfigShowsATcpCheckWithoutAnHttpMethod) {
  write_services(
      dir, json::array({{{"name", "db"}, {"url", "tcp://127.0.0.1:5432"}, {"interval_seconds", 2}},
                        {{"name", "web"}, {"url", target.url("/ok")}, {"interval_seconds", 2}}}));
  const auto result = run_command("cd " + dir.path() + " && SERVICES_FILE=services.json " +
                                  VIGIL_BINARY + " check-config");
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("  db  tcp://127.0.0.1:5432  every 2 s, timeout 2 s\n"),
            std::string::npos)
      << result.output;
  EXPECT_NE(result.output.find("  web  GET " + target.url("/ok") + "  every 2 s, timeout 2 s\n"),
            std::string::npos)
      << result.output;
}

TEST_P(EndToEndProcess, InvalidConfigExitsWithCode2NamingTheField) {
  write_services(dir,
                 json::array({{{"name", "x"}, {"url", "http://a/"}, {"interval_seconds", "ten"}}}));
  auto result =
      run_command("cd " + dir.path() + " && SERVICES_FILE=services.json " + VIGIL_BINARY + " run");
  EXPECT_EQ(result.exit_code, 2) << result.output;
  EXPECT_NE(result.output.find("services.json"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("interval_seconds"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("\"ten\""), std::string::npos) << result.output;

  write_services(dir, two_services());
  result = run_command("cd " + dir.path() + " && SERVICES_FILE=services.json API_PORT=http " +
                       VIGIL_BINARY + " check-config");
  EXPECT_EQ(result.exit_code, 2) << result.output;
  EXPECT_NE(result.output.find("API_PORT"), std::string::npos) << result.output;
}

TEST_P(EndToEnd, RunProbesServesApiAndStopsCleanly) {
  write_services(dir, two_services());
  VigilProcess vigil = start("run");
  const json listing = wait_for_ticks(3);
  const json healthy = service_named(listing, "healthy");
  const json refused = service_named(listing, "refused");
  ASSERT_FALSE(healthy.is_null()) << listing.dump() << vigil.log();
  ASSERT_FALSE(refused.is_null()) << listing.dump() << vigil.log();
  EXPECT_EQ(healthy["current_status"]["event"], "uptime");
  EXPECT_EQ(refused["current_status"]["event"], "downtime");
  EXPECT_EQ(healthy["metric"]["data"]["uptime_percent"], 100.0);
  EXPECT_EQ(refused["metric"]["data"]["uptime_percent"], 0.0);

  auto health = get_json(api_port, "/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ((*health)["status"], 200) << health->dump();

  httplib::Client client("127.0.0.1", api_port);
  auto metrics = client.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("probe_success{service=\"healthy\"} 1"), std::string::npos)
      << metrics->body;
  EXPECT_NE(metrics->body.find("probe_success{service=\"refused\"} 0"), std::string::npos);

  const auto ticks = get_json(
      api_port, "/v1/services/" + std::to_string(refused["id"].get<int>()) + "/ticks?limit=2");
  ASSERT_TRUE(ticks);
  ASSERT_EQ((*ticks)["data"]["ticks"]["data"].size(), 2u) << ticks->dump();
  EXPECT_NE((*ticks)["data"]["ticks"]["data"][0]["error"].get<std::string>().find("refused"),
            std::string::npos)
      << ticks->dump();

  EXPECT_EQ(vigil.stop(), 0) << vigil.log();
  const std::string log = vigil.log();
  EXPECT_NE(log.find("refused DOWN"), std::string::npos) << log;
  EXPECT_NE(log.find("stopped cleanly"), std::string::npos) << log;
}

// Each API connection holds a descriptor: started under a soft limit of 256, vigil raises it
// to the hard limit, so that the API's connection cap, not the limit, is what bounds them.
TEST_P(EndToEndProcess, RaisesItsOpenFileSoftLimitToTheHardLimit) {
  write_services(dir, two_services());
  rlimit mine{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &mine), 0);
  if (mine.rlim_max <= 256) GTEST_SKIP() << "the hard limit is too low to tell";
  rlimit lowered = mine;
  lowered.rlim_cur = 256;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &lowered), 0);
  VigilProcess vigil = start("run");  // inherits the lowered soft limit
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &mine), 0);
  ASSERT_TRUE(eventually([&] { return get_json(api_port, "/healthz").has_value(); }, 15s))
      << vigil.log();
  const auto [soft, hard] = open_file_limits(vigil.process().pid());
  ASSERT_FALSE(hard.empty());
  EXPECT_EQ(soft, hard);
  EXPECT_EQ(vigil.stop(), 0) << vigil.log();
}

// Out of descriptors: vigil's open-file limit is lowered to a couple of dozen above what it
// uses, and 200 connections that send nothing are opened, each reopened when cut. /healthz must
// still answer at once: an idle connection is closed to make room, rather than the new one waiting
// in the backlog.
TEST_P(EndToEndProcess, OutOfDescriptorsIdleConnectionsMakeRoomForRequests) {
  write_services(dir, json::array());
  VigilProcess vigil = start("run");
  ASSERT_TRUE(eventually([&] { return get_json(api_port, "/healthz").has_value(); }, 15s))
      << vigil.log();
  const pid_t pid = vigil.process().pid();
  const auto in_use = std::distance(
      std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd"), {});
  const rlimit limit{rlim_t(in_use + 24), rlim_t(in_use + 24)};
  ASSERT_EQ(::prlimit(pid, RLIMIT_NOFILE, &limit, nullptr), 0) << std::strerror(errno);

  // Reopened as soon as they are cut, so the pressure lasts.
  IdleFlood flood(api_port, {"127.0.0.1"}, 200, 60s, 5'000'000);
  ASSERT_TRUE(eventually([&] { return flood.connects() >= 200; }, 10s)) << flood.connects();
  int ok = 0;
  for (int i = 0; i < 50; ++i) {
    const auto asked = std::chrono::steady_clock::now();
    const auto health = get_json(api_port, "/healthz");
    if (health && (*health)["status"] == 200 && std::chrono::steady_clock::now() - asked < 1s) ++ok;
  }
  flood.stop();
  EXPECT_GE(ok, 49) << vigil.log();
  EXPECT_EQ(vigil.stop(), 0) << vigil.log();
}

TEST_P(EndToEnd, RestartContinuesOpenEventsAndCounters) {
  write_services(dir, two_services());
  json first;
  {
    VigilProcess vigil = start("run");
    first = wait_for_ticks(2);
    ASSERT_EQ(vigil.stop(), 0) << vigil.log();
  }
  const int first_event_id = service_named(first, "healthy")["current_status"]["id"].get<int>();
  const int first_ticks =
      service_named(first, "healthy")["metric"]["data"]["tick_count"].get<int>();

  VigilProcess vigil = start("run");
  const json second = wait_for_ticks(first_ticks + 3);
  const json healthy = service_named(second, "healthy");
  EXPECT_EQ(healthy["current_status"]["id"].get<int>(), first_event_id) << second.dump();
  EXPECT_GT(healthy["metric"]["data"]["tick_count"].get<int>(), first_ticks);
  const auto events =
      get_json(api_port, "/v1/services/" + std::to_string(healthy["id"].get<int>()) + "/events");
  ASSERT_TRUE(events);
  EXPECT_EQ((*events)["data"]["events"]["data"].size(), 1u) << events->dump();
  EXPECT_EQ(vigil.stop(), 0) << vigil.log();
}

TEST_P(EndToEnd, ServiceRemovedFromFileBecomesInactiveWithHistoryKept) {
  write_services(dir, two_services());
  int refused_id = 0;
  {
    VigilProcess vigil = start("run");
    const json listing = wait_for_ticks(1);
    refused_id = service_named(listing, "refused")["id"].get<int>();
    ASSERT_EQ(vigil.stop(), 0) << vigil.log();
  }
  json only_healthy = two_services();
  only_healthy.erase(1);
  write_services(dir, only_healthy);
  VigilProcess vigil = start("run");
  ASSERT_TRUE(eventually([&] { return get_json(api_port, "/v1/services").has_value(); }, 10s));
  const auto listing = get_json(api_port, "/v1/services");
  EXPECT_EQ((*listing)["data"]["services"]["data"].size(), 1u) << listing->dump();
  const auto old = get_json(api_port, "/v1/services/" + std::to_string(refused_id));
  ASSERT_TRUE(old);
  EXPECT_EQ((*old)["status"], 200) << old->dump();
  EXPECT_GE((*old)["data"]["service"]["metric"]["data"]["tick_count"].get<int>(), 1);
  EXPECT_EQ(vigil.stop(), 0) << vigil.log();
}

TEST_P(EndToEnd, RunnerAndApiAsSeparateProcessesShareTheDatabase) {
  write_services(dir, two_services());
  VigilProcess runner = start("runner");
  VigilProcess api = start("api");
  const json listing = wait_for_ticks(3);
  EXPECT_EQ(service_named(listing, "healthy")["current_status"]["event"], "uptime")
      << listing.dump() << runner.log() << api.log();
  EXPECT_EQ(runner.stop(), 0) << runner.log();
  EXPECT_EQ(api.stop(), 0) << api.log();
}

// SIGINT stops like SIGTERM: the probe in flight is let finish, its tick is written, exit 0.
TEST_P(EndToEnd, SigintLetsTheProbeInFlightFinishAndWritesItsTick) {
  write_services(dir, json::array({{{"name", "slow"},
                                    {"url", target.url("/slow?ms=1500")},
                                    {"interval_seconds", 2},
                                    {"timeout_seconds", 1.9}}}));
  VigilProcess vigil = start("run");
  const auto in_flight = [&](int n) {
    httplib::Client client("127.0.0.1", api_port);
    client.set_connection_timeout(1);
    client.set_read_timeout(5);
    const auto metrics = client.Get("/metrics");
    return metrics && metrics->body.find("\nvigil_probes_in_flight " + std::to_string(n) + "\n") !=
                          std::string::npos;
  };
  // Idle first, then the start of a probe: it has most of its 1.5 s still to go.
  ASSERT_TRUE(eventually([&] { return in_flight(0); }, 10s)) << vigil.log();
  ASSERT_TRUE(eventually([&] { return in_flight(1); }, 5s)) << vigil.log();
  const std::int64_t interrupted_at_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                             std::chrono::system_clock::now().time_since_epoch())
                                             .count();
  vigil.process().signal(SIGINT);
  const auto code = vigil.process().wait_for_exit(20s);
  ASSERT_TRUE(code) << vigil.log();
  EXPECT_EQ(*code, 0) << vigil.log();
  const std::string log = vigil.log();
  EXPECT_NE(log.find("received SIGINT"), std::string::npos) << log;
  EXPECT_NE(log.find("waiting for 1 probes in flight"), std::string::npos) << log;
  EXPECT_NE(log.find("stopped cleanly"), std::string::npos) << log;

  // What was written, read back through `vigil api` on the same database file.
  VigilProcess api = start("api");
  std::optional<json> listing;
  ASSERT_TRUE(
      eventually([&] { return (listing = get_json(api_port, "/v1/services")).has_value(); }, 10s))
      << api.log();
  const json slow = service_named(*listing, "slow");
  ASSERT_FALSE(slow.is_null()) << listing->dump();
  const auto ticks =
      get_json(api_port, "/v1/services/" + std::to_string(slow["id"].get<int>()) + "/ticks");
  ASSERT_TRUE(ticks);
  const json& data = (*ticks)["data"]["ticks"]["data"];
  // Everything queued was flushed: the ticks and the metric agree.
  EXPECT_EQ(data.size(), slow["metric"]["data"]["tick_count"].get<std::size_t>()) << ticks->dump();
  // The probe started before the signal and ended after it, up: it was finished, not abandoned.
  int finished = 0;
  for (const auto& tick : data) {
    const auto started = tick["ts_ms"].get<std::int64_t>();
    if (tick["up"] == true && started <= interrupted_at_ms &&
        double(started) + tick["response_ms"].get<double>() >= double(interrupted_at_ms))
      ++finished;
  }
  EXPECT_EQ(finished, 1) << ticks->dump();
  EXPECT_EQ(api.stop(), 0) << api.log();
}

TEST_P(EndToEndProcess, SigtermWithAProbeThatNeverAnswersExitsWithinTheDrainBoundAndKeepsTheTicks) {
  // A probe of a target that does not answer, with a minute's timeout, whose first slot comes
  // within 100 ms of the start: before the healthy service's 5th slot (slots start in order).
  std::string never;
  for (int i = 0; never.empty(); ++i)
    if (first_probe_offset("never-" + std::to_string(i), 60s) < 100ms)
      never = "never-" + std::to_string(i);
  write_services(
      dir,
      json::array({{{"name", "healthy"}, {"url", target.url("/ok")}, {"interval_seconds", 0.2}},
                   {{"name", never},
                    {"url", target.url("/hang?ms=60000")},
                    {"interval_seconds", 60},
                    {"timeout_seconds", 60}}}));
  VigilProcess vigil = start("run");
  const auto in_flight_probes = [&] {
    httplib::Client client("127.0.0.1", api_port);
    client.set_connection_timeout(1);
    client.set_read_timeout(5);
    const auto metrics = client.Get("/metrics");
    return metrics && metrics->body.find("\nvigil_probes_in_flight 0\n") == std::string::npos &&
           metrics->body.find("\nvigil_probes_in_flight ") != std::string::npos;
  };
  // The hanging probe is in flight and the healthy service has ticks stored.
  int stored = 0;
  ASSERT_TRUE(eventually(
      [&] {
        const auto listing = get_json(api_port, "/v1/services");
        if (!listing) return false;
        const json healthy = service_named(*listing, "healthy");
        if (healthy.is_null()) return false;
        stored = healthy["metric"]["data"]["tick_count"].get<int>();
        return stored >= 5 && in_flight_probes();
      },
      30s))
      << vigil.log();

  const auto t0 = std::chrono::steady_clock::now();
  vigil.process().signal(SIGTERM);
  const auto code = vigil.process().wait_for_exit(30s);
  const auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_TRUE(code) << vigil.log();
  EXPECT_EQ(*code, 0) << vigil.log();
  // The drain bound (3 s) and slack for a loaded machine; without the bound, a minute.
  EXPECT_LT(took, 15s) << vigil.log();
  const std::string log = vigil.log();
  EXPECT_NE(log.find("probes still in flight after 3000 ms aborted at shutdown"), std::string::npos)
      << log;
  EXPECT_NE(log.find("stopped cleanly"), std::string::npos) << log;

  // The queue was flushed: every tick seen before the signal is stored, none for the aborted
  // probe.
  VigilProcess api = start("api");
  std::optional<json> listing;
  ASSERT_TRUE(
      eventually([&] { return (listing = get_json(api_port, "/v1/services")).has_value(); }, 10s))
      << api.log();
  const json healthy = service_named(*listing, "healthy");
  const json hanging = service_named(*listing, never);
  ASSERT_FALSE(healthy.is_null()) << listing->dump();
  ASSERT_FALSE(hanging.is_null()) << listing->dump();
  EXPECT_GE(healthy["metric"]["data"]["tick_count"].get<int>(), stored);
  const auto ticks =
      get_json(api_port, "/v1/services/" + std::to_string(healthy["id"].get<int>()) + "/ticks");
  ASSERT_TRUE(ticks);
  EXPECT_EQ((*ticks)["data"]["ticks"]["data"].size(),
            healthy["metric"]["data"]["tick_count"].get<std::size_t>())
      << ticks->dump();
  EXPECT_EQ(hanging["metric"]["data"]["tick_count"].get<int>(), 0) << listing->dump();
  EXPECT_EQ(api.stop(), 0) << api.log();
}

}  // namespace
}  // namespace vigil::test

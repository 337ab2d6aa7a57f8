// End to end for what the views show: a service whose runner is gone turns stale (JSON, status
// filter, page, /metrics) under `vigil api` alone, and probe URLs never show their password or,
// to anyone but a writer, their query values (JSON, pages, `vigil beat`'s errors). The real
// vigil binary, a real target, a real database of each backend (a SQLite file, a PostgreSQL
// schema), real HTTP; `vigil beat`, which opens no database, on SQLite only.
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <csignal>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "support/process.h"
#include "support/receiver.h"
#include "support/store_backends.h"
#include "support/target_server.h"
#include "support/vigil_process.h"

namespace vigil::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

struct Reply {
  int status = 0;
  std::string body;
};

class ViewsEndToEnd : public StoreBackendTest {
 protected:
  void write_services(const json& services) {
    std::ofstream(dir.file("services.json")) << services.dump(2);
  }
  Reply get(const std::string& path, const std::string& token = "") {
    httplib::Client client("127.0.0.1", api_port);
    client.set_connection_timeout(1);
    client.set_read_timeout(5);
    httplib::Headers headers;
    if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
    const auto result = client.Get(path.c_str(), headers);
    if (!result) return {};
    return {result->status, result->body};
  }
  json services(const std::string& query = "", const std::string& token = "") {
    const Reply reply = get("/v1/services" + query, token);
    if (reply.status != 200) return json::array();
    return json::parse(reply.body)["data"]["services"]["data"];
  }

  TargetServer target;
  TempDir dir;
  int api_port = closed_port();
};

// The value of `family`{service="<service>"} in a /metrics text, or empty.
std::optional<double> sample(const std::string& metrics, const std::string& family,
                             const std::string& service) {
  const std::string prefix = family + "{service=\"" + service + "\"} ";
  const auto at = metrics.find(prefix);
  if (at == std::string::npos) return std::nullopt;
  return std::stod(metrics.substr(at + prefix.size()));
}

INSTANTIATE_TEST_SUITE_P(Backends, ViewsEndToEnd, kStoreBackends, backend_name);

// `vigil beat` opens no database: SQLite only.
class ViewsCommandEndToEnd : public ViewsEndToEnd {};
INSTANTIATE_TEST_SUITE_P(SqliteOnly, ViewsCommandEndToEnd, kSqliteOnly, backend_name);

TEST_P(ViewsEndToEnd, AServiceWhoseRunnerIsGoneTurnsStaleUnderVigilApi) {
  // Probed every 0.2 s with a 0.2 s timeout: stale 0.6 s after its last tick.
  write_services(json::array({{{"name", "orders"},
                               {"url", target.url("/ok")},
                               {"interval_seconds", 0.2},
                               {"timeout_seconds", 0.2}}}));
  // /healthz's own silence bound pushed far out: this is about the services' staleness, so the
  // page keeps its headline rather than the "Monitoring is down" banner.
  const std::map<std::string, std::string> env = {{"HEALTH_SILENT_AFTER_SECONDS", "600"}};
  VigilProcess runner(dir, "runner", api_port, database().vigil_environment(env));
  VigilProcess api(dir, "api", api_port, database().vigil_environment(env));
  ASSERT_TRUE(eventually([&] { return get("/healthz").status != 0; }, 10s)) << api.log();
  ASSERT_TRUE(eventually(
      [&] {
        const json list = services("?status=up");
        return list.size() == 1 && !list[0]["last_tick_at"].is_null();
      },
      10s))
      << runner.log();
  EXPECT_NE(get("/").body.find("All systems operational"), std::string::npos);
  EXPECT_EQ(sample(get("/metrics").body, "vigil_service_stale", "orders"), 0.0);

  // The runner dies without a word; `vigil api` alone must stop claiming "up".
  runner.process().signal(SIGKILL);
  ASSERT_TRUE(runner.process().wait_for_exit(10s));
  ASSERT_TRUE(eventually([&] { return services("?status=stale").size() == 1; }, 10s)) << api.log();
  const double stale_seen_at =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  EXPECT_TRUE(services("?status=up").empty());
  const json stale = services()[0];
  EXPECT_EQ(stale["status"], "stale");
  // Stale only once 2 x interval + timeout have passed since the last stored tick (measured from
  // that tick, not from the kill: the ticks still in the killed runner's write queue are gone).
  EXPECT_GE(stale_seen_at - stale["last_tick_at"].get<double>(), 0.6) << stale.dump();
  EXPECT_EQ(stale["current_status"]["event"], "uptime");

  const std::string page = get("/").body;
  EXPECT_EQ(page.find("All systems operational"), std::string::npos) << page;
  EXPECT_NE(page.find("1 service not checked recently (stale)"), std::string::npos) << page;
  EXPECT_NE(page.find("data-state=\"stale\""), std::string::npos);
  EXPECT_NE(page.find("last checked"), std::string::npos);

  // /metrics reads the database at most once a second.
  std::string metrics;
  EXPECT_TRUE(eventually(
      [&] {
        metrics = get("/metrics").body;
        return sample(metrics, "vigil_service_stale", "orders") == 1.0;
      },
      5s))
      << metrics;
  const auto last_tick = sample(metrics, "vigil_service_last_tick_timestamp_seconds", "orders");
  ASSERT_TRUE(last_tick);
  EXPECT_NEAR(*last_tick, stale["last_tick_at"].get<double>(), 1.0);
  EXPECT_EQ(api.stop(), 0) << api.log();
}

TEST_P(ViewsEndToEnd, ProbeUrlSecretsAreShownToNoReaderAndNoPasswordToAnyone) {
  const std::string url = "http://probe:hunter2@127.0.0.1:" + std::to_string(target.port()) +
                          "/ok?api_key=k3y-value&region=eu";
  write_services(json::array({{{"name", "secret"}, {"url", url}, {"interval_seconds", 0.2}}}));
  const std::string writer = "e2e-write-token-0123456789";
  const std::string reader = "e2e-read-token-0123456789";
  VigilProcess vigil(
      dir, "run", api_port,
      database().vigil_environment(
          {{"API_TOKEN", writer}, {"API_READ_TOKEN", reader}, {"STATUS_PAGE_PUBLIC", "true"}}));
  ASSERT_TRUE(eventually([&] { return services("", reader).size() == 1; }, 10s)) << vigil.log();
  const std::string port = std::to_string(target.port());
  const std::string for_readers =
      "http://probe:<redacted>@127.0.0.1:" + port + "/ok?api_key=<redacted>&region=<redacted>";
  const std::string for_writers =
      "http://probe:<redacted>@127.0.0.1:" + port + "/ok?api_key=k3y-value&region=eu";
  EXPECT_EQ(services("", reader)[0]["url"], for_readers);
  EXPECT_EQ(services("", writer)[0]["url"], for_writers);
  const std::string id = std::to_string(services("", reader)[0]["id"].get<std::int64_t>());
  const Reply one_for_reader = get("/v1/services/" + id, reader);
  EXPECT_EQ(json::parse(one_for_reader.body)["data"]["service"]["url"], for_readers);
  EXPECT_EQ(json::parse(get("/v1/services/" + id, writer).body)["data"]["service"]["url"],
            for_writers);
  // The probe itself still uses the credentials and the query.
  ASSERT_TRUE(eventually([&] { return services("?status=up", reader).size() == 1; }, 5s));

  for (const std::string& path : {std::string("/"), "/services/" + id}) {
    const Reply page = get(path);  // public: no token
    ASSERT_EQ(page.status, 200) << path;
    EXPECT_EQ(page.body.find("hunter2"), std::string::npos) << path;
    EXPECT_EQ(page.body.find("k3y-value"), std::string::npos) << path;
  }
  EXPECT_NE(get("/services/" + id).body.find("api_key=&lt;redacted&gt;"), std::string::npos);
  for (const std::string& token : {reader, writer})
    EXPECT_EQ(get("/v1/services/" + id, token).body.find("hunter2"), std::string::npos);
  EXPECT_EQ(vigil.stop(), 0) << vigil.log();
  EXPECT_EQ(vigil.log().find("hunter2"), std::string::npos) << vigil.log();

  // The operator's commands: query values shown, the password not.
  const std::string cd = "cd " + dir.path() + " && SERVICES_FILE=services.json ";
  CommandResult result = run_command(cd + VIGIL_BINARY + " check-config 2>&1");
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find(for_writers), std::string::npos) << result.output;
  EXPECT_EQ(result.output.find("hunter2"), std::string::npos) << result.output;
  result = run_command(cd + VIGIL_BINARY + " probe '" + url + "' 2>&1");
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find(for_writers), std::string::npos) << result.output;
  EXPECT_EQ(result.output.find("hunter2"), std::string::npos) << result.output;
}

TEST_P(ViewsCommandEndToEnd, VigilBeatNeverPrintsThePushUrlsPassword) {
  Receiver receiver;
  receiver.script("/v1/push/tok", {{500, "broken"}});
  const std::string origin = receiver.url("");
  const std::string with_password =
      "http://cron:hunter2@" + origin.substr(std::string("http://").size()) + "/v1/push/tok";
  const CommandResult result = run_command("cd " + dir.path() + " && " + VIGIL_BINARY + " beat '" +
                                           with_password + "' 2>&1");
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_EQ(result.output.find("hunter2"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("could not report to http://cron:<redacted>@127.0.0.1:"),
            std::string::npos)
      << result.output;
  EXPECT_NE(result.output.find("HTTP 500"), std::string::npos) << result.output;
  // The credentials still reach the server, as Basic authentication.
  const auto got = receiver.wait_for("/v1/push/tok", 1);
  ASSERT_GE(got.size(), 1u);
  const auto auth = got[0].headers.find("Authorization");
  ASSERT_NE(auth, got[0].headers.end());
  EXPECT_EQ(auth->second, "Basic Y3JvbjpodW50ZXIy");  // base64("cron:hunter2")
}

}  // namespace
}  // namespace vigil::test

// End-to-end: the real vigil binary refusing services files, API bodies and .env lines that it
// would otherwise crash on, read forever or misread silently, with exit code 2 (or a 400) and a
// message naming the file, the field or the key; and a .env quoted as dotenv users write it.
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "support/process.h"
#include "support/target_server.h"
#include "support/text.h"
#include "support/vigil_process.h"

namespace vigil::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

class ConfigInput : public ::testing::Test {
 protected:
  TempDir dir;

  void write(const std::string& name, const std::string& text) {
    std::ofstream(dir.file(name), std::ios::binary) << text;
  }
  // `vigil <command>` with SERVICES_FILE=<services_file> in dir; an unused API port. A vigil
  // that accepted the file would run on: it is killed after 30 s (exit 137).
  CommandResult vigil(const std::string& command, const std::string& services_file) {
    return run_command("cd " + dir.path() + " && DB_FILE=vigil.db API_PORT=" +
                       std::to_string(closed_port()) + " SERVICES_FILE='" + services_file +
                       "' timeout -s KILL 30 " + VIGIL_BINARY + " " + command + " 2>&1");
  }
  // check-config and run both exit 2 with every part in their message.
  void expect_refused(const std::string& services_file, const std::vector<std::string>& parts) {
    for (const char* command : {"check-config", "run"}) {
      const auto result = vigil(command, services_file);
      EXPECT_EQ(result.exit_code, 2) << command << ": " << result.output;
      EXPECT_TRUE(contains(result.output, "configuration error")) << result.output;
      for (const auto& part : parts)
        EXPECT_TRUE(contains(result.output, part)) << command << ": " << result.output;
    }
  }
};

TEST_F(ConfigInput, DeeplyNestedServicesFileIsRefusedNotACrash) {
  write("deep.json", std::string(100'000, '[') + std::string(100'000, ']'));
  expect_refused("deep.json", {"deep.json: nested deeper than 64 levels of arrays and objects"});
}

TEST_F(ConfigInput, EndlessOrDirectoryServicesFileIsNamed) {
  expect_refused("/dev/zero",
                 {"/dev/zero: the services file (SERVICES_FILE) is larger than 64 MiB, the limit"});
  expect_refused(dir.path(), {dir.path() + ": the services file (SERVICES_FILE) is a directory"});
}

TEST_F(ConfigInput, DuplicateKeysInTheServicesFileAreNamedWithTheirPlace) {
  write("dup.json", R"([{"name": "web", "url": "http://a.test/", "url": "http://b.test/"}])");
  expect_refused("dup.json", {"dup.json: duplicate key \"url\" at services[0]"});
  write("dup-headers.json", R"({"services": [{"name": "web", "url": "http://a.test/",
      "headers": {"X-Key": "1", "X-Key": "2"}}]})");
  expect_refused("dup-headers.json",
                 {"dup-headers.json: duplicate key \"X-Key\" at services[0].headers"});
}

TEST_F(ConfigInput, ControlCharactersInHeaderValuesAndNamesAreRefused) {
  write("nul.json",
        R"([{"name": "web", "url": "http://a.test/", "headers": {"X-Key": "abc\u0000def"}}])");
  expect_refused("nul.json", {"nul.json: services[0] (\"web\").headers.X-Key: must not contain "
                              "line breaks or other control characters"});
  write("crlf.json",
        R"([{"name": "web", "url": "http://a.test/", "headers": {"X-Key": "a\r\nX-Evil: 1"}}])");
  expect_refused("crlf.json", {"crlf.json: services[0] (\"web\").headers.X-Key: must not contain"});
  write("name.json", R"([{"name": "web\nERROR forged", "url": "http://a.test/"}])");
  expect_refused("name.json", {"name.json: services[0].name: \"web\\nERROR forged\"",
                               "without leading or trailing spaces or control characters"});
}

// The API reads bodies by the same rules, and answers 400 naming the field or key.
TEST_F(ConfigInput, TheApiRefusesTheSameInputWith400) {
  TargetServer target;
  write("services.json", json::array({{{"name", "alpha"}, {"url", target.url("/ok")}}}).dump());
  const int port = closed_port();
  VigilProcess vigil(dir, "run", port);
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(2);
  client.set_read_timeout(5);
  ASSERT_TRUE(eventually([&] { return bool(client.Get("/healthz")); }, 15s)) << vigil.log();

  const auto post = [&](const std::string& body) {
    auto result = client.Post("/v1/services", body, "application/json");
    EXPECT_TRUE(result);
    if (!result) return std::pair<int, std::string>{-1, ""};
    const json answer = json::parse(result->body, nullptr, false);
    return std::pair<int, std::string>{result->status,
                                       answer.is_object() ? answer.value("error", "") : ""};
  };
  auto [status, error] =
      post(R"({"name": "b", "url": "http://b.test/", "headers": {"X-Key": "a\u0000b"}})");
  EXPECT_EQ(status, 400);
  EXPECT_TRUE(contains(error, "headers.X-Key: must not contain line breaks or other control"))
      << error;
  std::tie(status, error) = post(R"({"name": "b\u001b[31m", "url": "http://b.test/"})");
  EXPECT_EQ(status, 400);
  EXPECT_TRUE(contains(error,
                       "name: \"b\\u001b[31m\" must be at most 200 characters without "
                       "leading or trailing spaces or control characters"))
      << error;
  std::tie(status, error) =
      post(R"({"name": "b", "url": "http://b.test/", "headers": {"X-A": "1", "X-A": "2"}})");
  EXPECT_EQ(status, 400);
  EXPECT_EQ(error, "body: duplicate key \"X-A\" at headers");
  std::tie(status, error) = post(std::string(1000, '[') + std::string(1000, ']'));
  EXPECT_EQ(status, 400);
  EXPECT_EQ(error, "body: nested deeper than 64 levels of arrays and objects");

  // None of it was created, and vigil still answers.
  const auto list = client.Get("/v1/services");
  ASSERT_TRUE(list);
  EXPECT_EQ(json::parse(list->body)["data"]["services"]["data"].size(), 1u) << list->body;
  EXPECT_EQ(vigil.stop(), 0) << vigil.log();
}

// PROBER_SOURCE_IP is where vigil's probes leave from, and a service's source_ip its own, as the
// target sees them.
TEST_F(ConfigInput, ProbesLeaveFromProberSourceIpOrTheServicesOwnSourceIp) {
  TargetServer target;
  write("services.json", json::array({{{"name", "runner-default"},
                                       {"url", target.url("/peer/runner-default")},
                                       {"interval_seconds", 1}},
                                      {{"name", "own"},
                                       {"url", target.url("/peer/own")},
                                       {"interval_seconds", 1},
                                       {"source_ip", "127.0.0.3"}}})
                             .dump());
  const int port = closed_port();
  VigilProcess vigil(dir, "run", port, {{"PROBER_SOURCE_IP", "127.0.0.2"}});
  const auto seen_from = [&](const std::string& name, const std::string& address) {
    const auto peers = target.peers(name);
    return peers.size() == 1 && peers.begin()->first == address;
  };
  ASSERT_TRUE(eventually([&] { return !target.peers("runner-default").empty(); }, 15s))
      << vigil.log();
  ASSERT_TRUE(eventually([&] { return !target.peers("own").empty(); }, 15s)) << vigil.log();
  EXPECT_TRUE(seen_from("runner-default", "127.0.0.2"));
  EXPECT_TRUE(seen_from("own", "127.0.0.3"));

  EXPECT_EQ(vigil.stop(), 0) << vigil.log();
}

// .env values quoted and commented as python-dotenv and docker compose read them: before, the
// quotes stayed in the value and API_PORT="..." was not a port.
TEST_F(ConfigInput, DotenvQuotedValuesWithCommentsAreUnquoted) {
  TargetServer target;
  write("services.json", json::array({{{"name", "alpha"}, {"url", target.url("/ok")}}}).dump());
  const int port = closed_port();
  write(".env", "API_PORT=\"" + std::to_string(port) +
                    "\"  # the API's port\n"
                    "export STATUS_PAGE_TITLE='Acme \"prod\" status' # single quotes\n"
                    "STATUS_PAGE_PUBLIC=true # unquoted, with a comment\n");
  // API_PORT comes from .env only: the real environment would win over it.
  ChildProcess vigil(VIGIL_BINARY, {"run"}, dir.path(),
                     {{"DB_FILE", dir.file("vigil.db")},
                      {"SERVICES_FILE", dir.file("services.json")},
                      {"API_HOST", "127.0.0.1"}},
                     dir.file("run.log"));
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(2);
  client.set_read_timeout(5);
  ASSERT_TRUE(eventually([&] { return bool(client.Get("/healthz")); }, 15s))
      << read_file(dir.file("run.log"));
  const auto page = client.Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_TRUE(contains(page->body, "Acme &quot;prod&quot; status")) << page->body.substr(0, 600);
  vigil.signal(SIGTERM);
  EXPECT_EQ(vigil.wait_for_exit(20s), 0) << read_file(dir.file("run.log"));

  write(".env", "STATUS_PAGE_TITLE=\"unclosed\n");
  const auto result = this->vigil("check-config", "services.json");
  EXPECT_EQ(result.exit_code, 2) << result.output;
  EXPECT_TRUE(contains(result.output,
                       ".env:1: STATUS_PAGE_TITLE: the value's opening \" is not "
                       "closed on this line"))
      << result.output;
}

// DATABASE_URL selects PostgreSQL: with the server unreachable (a closed loopback port) every
// command that opens the database exits 1 naming the server's host and port, never the
// password; check-config opens no database. With DB_FILE set as well it is a configuration
// error naming both.
TEST_F(ConfigInput, DatabaseUrlWithTheServerUnreachableExits1NamingTheHostWithThePasswordHidden) {
  write("services.json", "[]");
  const std::string port = std::to_string(closed_port());
  const std::string url = "postgresql://vigil:hunter2-pw@127.0.0.1:" + port + "/vigil";
  for (const char* command : {"run", "runner", "api"}) {
    // A vigil that ignored DATABASE_URL would run on SQLite until killed (exit 137).
    const auto result =
        run_command("cd " + dir.path() + " && env -u DB_FILE DATABASE_URL='" + url +
                    "' SERVICES_FILE=services.json API_PORT=" + std::to_string(closed_port()) +
                    " timeout -s KILL 20 " + VIGIL_BINARY + " " + command);
    EXPECT_EQ(result.exit_code, 1) << command << ": " << result.output;
    EXPECT_TRUE(contains(result.output, "cannot open database")) << result.output;
    EXPECT_TRUE(contains(result.output, "host=127.0.0.1 port=" + port)) << result.output;
    EXPECT_FALSE(contains(result.output, "hunter2")) << result.output;
    EXPECT_FALSE(std::filesystem::exists(dir.file("vigil.db"))) << command;
  }
  const auto check = run_command("cd " + dir.path() + " && env -u DB_FILE DATABASE_URL='" + url +
                                 "' SERVICES_FILE=services.json timeout -s KILL 10 " +
                                 VIGIL_BINARY + " check-config");
  EXPECT_EQ(check.exit_code, 0) << check.output;
  EXPECT_FALSE(contains(check.output, "hunter2")) << check.output;

  const auto both = run_command("cd " + dir.path() + " && DB_FILE=vigil.db DATABASE_URL='" + url +
                                "' timeout -s KILL 10 " + VIGIL_BINARY + " run");
  EXPECT_EQ(both.exit_code, 2) << both.output;
  EXPECT_TRUE(contains(both.output, "DATABASE_URL and DB_FILE are both set")) << both.output;
  EXPECT_FALSE(contains(both.output, "hunter2")) << both.output;
}

}  // namespace
}  // namespace vigil::test

#include "config/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "support/target_server.h"

namespace vigil {
namespace {

Settings defaults() { return Settings{}; }

std::vector<ServiceSpec> parse_services_text(const std::string& text) {
  return parse_services(text, "services.json", defaults());
}

// Expects parse_services_text() to fail with a message containing every one of `parts`.
void expect_settings_error(const std::string& text, std::initializer_list<std::string> parts) {
  try {
    parse_services_text(text);
    FAIL() << "expected a ConfigError for " << text;
  } catch (const ConfigError& e) {
    const std::string message = e.what();
    for (const auto& part : parts) EXPECT_NE(message.find(part), std::string::npos) << message;
  }
}

TEST(ServicesFile, ParsesAllFieldsAndDefaults) {
  const auto specs = parse_services_text(R"([
    {"name": "api", "url": "https://example.com/health", "interval_seconds": 0.5,
     "timeout_seconds": 0.25, "method": "HEAD", "headers": {"X-Token": "abc"},
     "expected_status": [204, "300-302"]},
    {"name": "web", "url": "http://127.0.0.1:8080/"}
  ])");
  ASSERT_EQ(specs.size(), 2u);
  EXPECT_EQ(specs[0].name, "api");
  EXPECT_EQ(specs[0].interval, Millis(500));
  EXPECT_EQ(specs[0].timeout, Millis(250));
  EXPECT_EQ(specs[0].method, "HEAD");
  ASSERT_EQ(specs[0].headers.size(), 1u);
  EXPECT_EQ(specs[0].headers[0].first, "X-Token");
  EXPECT_EQ(specs[0].expected_status, (std::vector<StatusRange>{{204, 204}, {300, 302}}));
  EXPECT_EQ(specs[1].interval, Millis(15'000));
  EXPECT_EQ(specs[1].timeout, Millis(15'000));
  EXPECT_EQ(specs[1].method, "GET");
  EXPECT_EQ(specs[1].expected_status, (std::vector<StatusRange>{{200, 399}}));
}

TEST(ServicesFile, AcceptsAnObjectWithServices) {
  const auto specs = parse_services_text(R"({"services": [{"name": "a", "url": "http://a/"}]})");
  ASSERT_EQ(specs.size(), 1u);
  EXPECT_EQ(specs[0].url, "http://a/");
}

TEST(ServicesFile, DefaultTimeoutNeverExceedsInterval) {
  const auto specs =
      parse_services_text(R"([{"name": "fast", "url": "http://a/", "interval_seconds": 0.2}])");
  EXPECT_EQ(specs[0].timeout, Millis(200));
}

TEST(ServicesFile, RejectsUnknownKey) {
  expect_settings_error(R"([{"name": "a", "url": "http://a/", "intervall": 3}])",
                        {"services.json", "services[0]", "\"a\"", "unknown key", "\"intervall\""});
}

TEST(ServicesFile, RejectsBadUrls) {
  expect_settings_error(R"([{"name": "a", "url": "ftp://a/"}])",
                        {"services[0]", ".url", "ftp://a/", "http://"});
  expect_settings_error(R"([{"name": "a", "url": "http:///path"}])", {".url", "no host"});
  expect_settings_error(R"([{"name": "a", "url": "http://a:99999/"}])", {".url", "invalid port"});
  expect_settings_error(R"([{"name": "a", "url": "http://a b/"}])", {".url", "whitespace"});
  expect_settings_error(R"([{"name": "a"}])", {".url", "required"});
}

TEST(ServicesFile, RejectsDuplicateNames) {
  expect_settings_error(R"([{"name": "a", "url": "http://a/"}, {"name": "a", "url": "http://b/"}])",
                        {"services[1]", "duplicate name", "\"a\""});
}

TEST(ServicesFile, RejectsNonNumberAndTooSmallIntervals) {
  expect_settings_error(R"([{"name": "a", "url": "http://a/", "interval_seconds": "10"}])",
                        {"interval_seconds", "expected a number", "\"10\""});
  expect_settings_error(R"([{"name": "a", "url": "http://a/", "interval_seconds": 0.05}])",
                        {"interval_seconds", "0.05", "minimum of 0.1"});
  expect_settings_error(R"([{"name": "a", "url": "http://a/", "interval_seconds": -1}])",
                        {"interval_seconds", "positive"});
  // Found by services_file_fuzzer's kin: a huge number of seconds overflowed the milliseconds.
  expect_settings_error(R"([{"name": "a", "url": "http://a/", "interval_seconds": 1e300}])",
                        {"interval_seconds", "1e+300", "above the maximum of 31536000"});
}

TEST(ServicesFile, RejectsTimeoutAboveInterval) {
  expect_settings_error(
      R"([{"name": "a", "url": "http://a/", "interval_seconds": 1, "timeout_seconds": 2}])",
      {"timeout_seconds", "2", "above the interval of 1 s"});
}

TEST(ServicesFile, RejectsBadMethodHeadersAndStatuses) {
  expect_settings_error(R"([{"name": "a", "url": "http://a/", "method": "FETCH"}])",
                        {".method", "FETCH"});
  expect_settings_error(R"([{"name": "a", "url": "http://a/", "headers": {"Bad Name": "x"}}])",
                        {".headers", "Bad Name"});
  expect_settings_error(R"([{"name": "a", "url": "http://a/", "headers": {"X": 1}}])",
                        {".headers.X", "string"});
  expect_settings_error(R"([{"name": "a", "url": "http://a/", "expected_status": ["299-200"]}])",
                        {"expected_status[0]", "299-200"});
  expect_settings_error(R"([{"name": "a", "url": "http://a/", "expected_status": [700]}])",
                        {"expected_status[0]", "700"});
}

TEST(ServicesFile, RejectsMalformedJsonAndWrongShapes) {
  expect_settings_error(R"([{"name": "a", "url": )", {"services.json", "not valid JSON"});
  expect_settings_error(R"({"servics": []})", {"unknown top-level key", "servics"});
  expect_settings_error(R"("hello")", {"must be a list"});
  expect_settings_error(R"([42])", {"services[0]", "expected an object"});
  expect_settings_error(R"([{"name": "", "url": "http://a/"}])", {".name", "non-empty"});
}

TEST(ServicesFile, MissingFileNamesThePath) {
  try {
    load_services_file("/nonexistent/services.json", defaults());
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/services.json"), std::string::npos);
  }
}

TEST(Settings, DefaultsWhenUnset) {
  const Settings s = load_settings({});
  EXPECT_EQ(s.api_host, "127.0.0.1");
  EXPECT_EQ(s.api_port, 9999);
  EXPECT_EQ(s.db_file, "vigil.db");
  EXPECT_EQ(s.services_file, "services.json");
  EXPECT_EQ(s.default_interval, Millis(15'000));
  EXPECT_EQ(s.default_timeout, Millis(15'000));
  EXPECT_EQ(s.log_level, LogLevel::info);
}

TEST(Settings, ReadsEveryVariable) {
  const Settings s = load_settings({{"API_HOST", "0.0.0.0"},
                                    {"API_PORT", "8080"},
                                    {"DB_FILE", "/tmp/x.db"},
                                    {"SERVICES_FILE", "s.json"},
                                    {"RUNNER_SCRAPE_INTERVAL_SECONDS", "2.5"},
                                    {"RUNNER_HTTP_TIMEOUT_SECONDS", "1"},
                                    {"RUNNER_MAX_CONCURRENCY", "50"},
                                    {"PROBER_REGION", "eu-west"},
                                    {"PROBER_SOURCE_IP", "127.0.0.2"},
                                    {"INSTANCE_NAME", "eu-1"},
                                    {"CLUSTER_LEASE_SECONDS", "4.5"},
                                    {"LOG_LEVEL", "DEBUG"},
                                    {"STORAGE_QUEUE_MAX_TICKS", "5000"}});
  EXPECT_EQ(s.api_host, "0.0.0.0");
  EXPECT_EQ(s.api_port, 8080);
  EXPECT_EQ(s.db_file, "/tmp/x.db");
  EXPECT_EQ(s.services_file, "s.json");
  EXPECT_EQ(s.default_interval, Millis(2500));
  EXPECT_EQ(s.default_timeout, Millis(1000));
  EXPECT_EQ(s.max_concurrency, 50u);
  EXPECT_EQ(s.region, "eu-west");
  EXPECT_EQ(s.source_ip, "127.0.0.2");
  EXPECT_EQ(s.instance_name, "eu-1");
  EXPECT_EQ(instance_name(s, true), "eu-1");
  EXPECT_EQ(instance_name(s, false), "eu-1");
  EXPECT_EQ(s.cluster_lease, Millis(4500));
  EXPECT_EQ(s.log_level, LogLevel::debug);
  EXPECT_EQ(s.storage_queue_max_ticks, 5000u);
}

TEST(Settings, BadValuesNameTheVariableAndValue) {
  const std::pair<const char*, const char*> cases[] = {{"API_PORT", "http"},
                                                       {"API_PORT", "70000"},
                                                       {"RUNNER_SCRAPE_INTERVAL_SECONDS", "abc"},
                                                       {"RUNNER_SCRAPE_INTERVAL_SECONDS", "0.01"},
                                                       {"RUNNER_SCRAPE_INTERVAL_SECONDS", "1e300"},
                                                       {"RUNNER_HTTP_TIMEOUT_SECONDS", "4e7"},
                                                       {"RUNNER_HTTP_TIMEOUT_SECONDS", "-3"},
                                                       {"RUNNER_MAX_CONCURRENCY", "0"},
                                                       {"STORAGE_QUEUE_MAX_TICKS", "0"},
                                                       {"STORAGE_QUEUE_MAX_TICKS", "1e9"},
                                                       {"PROBER_SOURCE_IP", "localhost"},
                                                       {"CLUSTER_LEASE_SECONDS", "0.5"},
                                                       {"CLUSTER_LEASE_SECONDS", "7200"},
                                                       {"LOG_LEVEL", "loud"}};
  for (const auto& [name, value] : cases) {
    try {
      load_settings({{name, value}});
      ADD_FAILURE() << name << "=" << value << " was accepted";
    } catch (const ConfigError& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find(name), std::string::npos) << message;
      EXPECT_NE(message.find(value), std::string::npos) << message;
    }
  }
}

TEST(Settings, AnInstanceIsNamedByItsHostAndApiPortUnlessNamed) {
  Settings s = load_settings({{"API_PORT", "8123"}});
  char host[256] = {};
  ASSERT_EQ(::gethostname(host, sizeof host - 1), 0);
  EXPECT_EQ(instance_name(s, true), std::string(host) + ":8123");
  EXPECT_EQ(instance_name(s, false), std::string(host) + ":8123/runner");
  EXPECT_EQ(s.cluster_lease, Millis(10'000));
  try {
    load_settings({{"INSTANCE_NAME", "eu\t1"}});
    ADD_FAILURE() << "a name with a tab was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("INSTANCE_NAME"), std::string::npos) << e.what();
  }
}

TEST(Settings, HealthBeatAndBoundDefaultToThreeBeatsWithATenSecondFloor) {
  Settings s = load_settings({});
  EXPECT_EQ(s.health_beat_period, Millis(2'000));
  EXPECT_EQ(s.health_silent_after, Millis(10'000));
  s = load_settings({{"HEALTH_BEAT_SECONDS", "5"}});
  EXPECT_EQ(s.health_silent_after, Millis(15'000));
  s = load_settings({{"HEALTH_BEAT_SECONDS", "0.5"}, {"HEALTH_SILENT_AFTER_SECONDS", "3"}});
  EXPECT_EQ(s.health_beat_period, Millis(500));
  EXPECT_EQ(s.health_silent_after, Millis(3'000));
  for (const EnvMap& env :
       {EnvMap{{"HEALTH_BEAT_SECONDS", "0.01"}}, EnvMap{{"HEALTH_SILENT_AFTER_SECONDS", "1"}},
        EnvMap{{"HEALTH_SILENT_AFTER_SECONDS", "5"}}}) {
    try {
      load_settings(env);
      ADD_FAILURE() << env.begin()->first << "=" << env.begin()->second << " was accepted";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(env.begin()->first), std::string::npos) << e.what();
    }
  }
  // Under 3 beats: the message says why.
  try {
    load_settings({{"HEALTH_SILENT_AFTER_SECONDS", "5"}});
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("at least 3 x HEALTH_BEAT_SECONDS (6 s)"),
              std::string::npos)
        << e.what();
  }
}

TEST(Dotenv, ReadsCommentsQuotesAndExport) {
  test::TempDir dir;
  std::ofstream(dir.file(".env")) << "# comment\n\nAPI_PORT=8081\nexport DB_FILE=\"my db.db\"\n"
                                     "PROBER_REGION=eu # trailing comment\n";
  const EnvMap env = read_dotenv(dir.file(".env"));
  EXPECT_EQ(env.at("API_PORT"), "8081");
  EXPECT_EQ(env.at("DB_FILE"), "my db.db");
  EXPECT_EQ(env.at("PROBER_REGION"), "eu");
  EXPECT_TRUE(read_dotenv(dir.file("absent")).empty());
}

TEST(Dotenv, MalformedLineIsNamed) {
  test::TempDir dir;
  std::ofstream(dir.file(".env")) << "API_PORT=1\nthis is not a variable\n";
  try {
    read_dotenv(dir.file(".env"));
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(".env:2"), std::string::npos) << e.what();
  }
}

TEST(Dotenv, RealEnvironmentOverridesFile) {
  ::setenv("PROBER_REGION", "from-env", 1);
  const EnvMap merged = merged_environment({{"PROBER_REGION", "from-file"}, {"API_PORT", "1"}});
  ::unsetenv("PROBER_REGION");
  EXPECT_EQ(merged.at("PROBER_REGION"), "from-env");
  EXPECT_EQ(merged.at("API_PORT"), "1");
}

}  // namespace
}  // namespace vigil

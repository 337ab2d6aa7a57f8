// Service management in config: heartbeat and metadata keys of a service object, the
// JSON form a PATCH merges onto, the merge itself, and the API_TOKEN / retention settings.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "config/config.h"

namespace vigil {
namespace {

using nlohmann::json;

Settings default_settings() { return Settings{}; }

ServiceSpec parse_one(const json& entry) {
  const auto specs =
      parse_services(json::array({entry}).dump(), "services.json", default_settings());
  EXPECT_EQ(specs.size(), 1u);
  return specs.at(0);
}

// The message parse_services gives for a one-service file holding `entry`.
std::string file_error(const json& entry) {
  try {
    parse_services(json::array({entry}).dump(), "services.json", default_settings());
  } catch (const ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "accepted " << entry.dump();
  return "";
}

void expect_entry_error(const json& entry, std::initializer_list<std::string> parts) {
  const std::string message = file_error(entry);
  for (const auto& part : parts)
    EXPECT_NE(message.find(part), std::string::npos) << entry.dump() << " -> " << message;
}

json heartbeat(double interval = 60) {
  return {{"name", "backup"}, {"kind", "heartbeat"}, {"interval_seconds", interval}};
}

TEST(ServiceManagementConfig, HeartbeatDefaultsToATenthOfTheIntervalAsGraceAndThresholdOne) {
  const ServiceSpec spec = parse_one(heartbeat(60));
  EXPECT_EQ(spec.kind, ServiceKind::heartbeat);
  EXPECT_EQ(spec.url, "");
  EXPECT_EQ(spec.interval, Millis(60'000));
  EXPECT_EQ(spec.grace, Millis(6'000));
  EXPECT_EQ(spec.threshold, 1);

  json custom = heartbeat(0.3);
  custom["grace_seconds"] = 0;
  custom["threshold"] = 3;
  const ServiceSpec tight = parse_one(custom);
  EXPECT_EQ(tight.interval, Millis(300));
  EXPECT_EQ(tight.grace, Millis(0));
  EXPECT_EQ(tight.threshold, 3);
}

TEST(ServiceManagementConfig, ProbedServicesStayHttpWithDefaultMetadata) {
  const ServiceSpec spec = parse_one({{"name", "web"}, {"url", "http://127.0.0.1/"}});
  EXPECT_EQ(spec.kind, ServiceKind::http);
  EXPECT_EQ(spec.priority, 3);
  EXPECT_TRUE(spec.team.empty());
  EXPECT_TRUE(spec.runbook.empty());
  EXPECT_TRUE(spec.tags.empty());
  EXPECT_FALSE(spec.muted);
  EXPECT_FALSE(spec.muted_until);
}

TEST(ServiceManagementConfig, HeartbeatRejectsProbeKeysAndNeedsAnInterval) {
  for (const char* key : {"url", "timeout_seconds", "method", "headers", "expected_status"}) {
    json entry = heartbeat();
    entry[key] = key == std::string("url") ? json("http://a/") : json(1);
    expect_entry_error(
        entry, {"services[0] (\"backup\")." + std::string(key), "not allowed for a heartbeat"});
  }
  expect_entry_error({{"name", "backup"}, {"kind", "heartbeat"}},
                     {"backup\").interval_seconds: required for a heartbeat"});
  expect_entry_error({{"name", "x"}, {"kind", "cron"}},
                     {".kind: expected \"http\" or \"heartbeat\"", "cron"});
  for (const char* key : {"grace_seconds", "threshold"})
    expect_entry_error({{"name", "web"}, {"url", "http://a/"}, {key, 1}},
                       {std::string(key) + ": only for a service of kind \"heartbeat\""});
  // A probed service still needs its url.
  expect_entry_error({{"name", "web"}}, {"web\").url: required"});
}

TEST(ServiceManagementConfig, HeartbeatFieldsAreChecked) {
  for (const json& bad : {json(-1), json("5"), json(nullptr)}) {
    json entry = heartbeat();
    entry["grace_seconds"] = bad;
    expect_entry_error(entry,
                       {".grace_seconds: expected a number of seconds, 0 or more", bad.dump()});
  }
  for (const json& bad : {json(0), json(1.5), json(1001), json("2")}) {
    json entry = heartbeat();
    entry["threshold"] = bad;
    expect_entry_error(
        entry,
        {".threshold: expected a whole number of missed intervals from 1 to 1000", bad.dump()});
  }
  expect_entry_error(heartbeat(0.05), {".interval_seconds", "below the minimum of 0.1"});
  expect_entry_error(heartbeat(31'536'001),
                     {".interval_seconds: 31536001.0 is above the maximum of 31536000 (365 days)"});
  json long_grace = heartbeat();
  long_grace["grace_seconds"] = 4e7;
  expect_entry_error(long_grace, {".grace_seconds:", "above the maximum of 31536000"});
  EXPECT_EQ(parse_one(heartbeat(31'536'000)).interval, Millis(31'536'000'000));
}

TEST(ServiceManagementConfig, ReadsEveryMetadataField) {
  const ServiceSpec spec = parse_one({{"name", "pay"},
                                      {"url", "https://pay.test/health"},
                                      {"team", "payments"},
                                      {"priority", "p1"},
                                      {"runbook", "https://wiki.test/pay"},
                                      {"tags", {"prod", "eu"}},
                                      {"muted", true},
                                      {"muted_until", 1'900'000'000}});
  EXPECT_EQ(spec.team, "payments");
  EXPECT_EQ(spec.priority, 1);
  EXPECT_EQ(spec.runbook, "https://wiki.test/pay");
  EXPECT_EQ(spec.tags, (std::vector<std::string>{"prod", "eu"}));
  EXPECT_TRUE(spec.muted);
  ASSERT_TRUE(spec.muted_until);
  EXPECT_EQ(to_unix_seconds(*spec.muted_until), 1'900'000'000);
  // muted_until alone is a snooze: muted until then.
  const ServiceSpec snoozed =
      parse_one({{"name", "s"}, {"url", "http://a/"}, {"muted_until", 1'900'000'000}});
  EXPECT_TRUE(snoozed.muted);
}

TEST(ServiceManagementConfig, MetadataErrorsNameTheField) {
  const json base = {{"name", "pay"}, {"url", "http://a/"}};
  const auto with = [&](const char* key, const json& value) {
    json entry = base;
    entry[key] = value;
    return entry;
  };
  expect_entry_error(with("team", 7), {"(\"pay\").team: expected a string, got 7"});
  expect_entry_error(with("team", ""), {".team:", "must be 1 to 200 characters"});
  expect_entry_error(with("team", " ops"), {".team:", "leading or trailing spaces"});
  expect_entry_error(with("team", std::string(201, 't')), {".team:", "1 to 200 characters"});
  expect_entry_error(with("priority", "p6"), {".priority: expected one of \"p1\"", "\"p6\""});
  expect_entry_error(with("priority", 1), {".priority: expected one of", "got 1"});
  expect_entry_error(with("runbook", "ftp://wiki/x"),
                     {".runbook: \"ftp://wiki/x\" must start with http"});
  expect_entry_error(with("runbook", "https://"), {".runbook:", "has no host"});
  expect_entry_error(with("runbook", 3), {".runbook: expected an http(s) URL"});
  expect_entry_error(with("tags", "prod"), {".tags: expected a list of at most 32 strings"});
  expect_entry_error(with("tags", json::array({"a", 1})), {".tags[1]: expected a string, got 1"});
  expect_entry_error(with("tags", json::array({"a", "a"})), {".tags[1]: duplicate tag \"a\""});
  expect_entry_error(with("tags", json(std::vector<std::string>(33, "x"))),
                     {".tags: expected a list"});
  expect_entry_error(with("muted", "yes"), {".muted: expected true or false, got \"yes\""});
  expect_entry_error(with("muted_until", "tomorrow"),
                     {".muted_until: expected a unix time in seconds"});
  expect_entry_error(with("muted_until", -5), {".muted_until: expected a unix time"});
  json contradicting = with("muted", false);
  contradicting["muted_until"] = 1'900'000'000;
  expect_entry_error(contradicting, {".muted_until: a snooze needs \"muted\": true"});
  // Unknown keys still fail, and the message lists the new ones.
  expect_entry_error(with("owner", "x"),
                     {"unknown key \"owner\"", "team", "priority", "muted_until"});
}

TEST(ServiceManagementConfig, TheSameFunctionGivesTheSameMessageWhateverTheWhere) {
  const json entry = {{"name", "pay"}, {"url", "http://a/"}, {"priority", "high"}};
  std::string api_message;
  try {
    parse_service_spec(entry, "service", default_settings());
  } catch (const ConfigError& e) {
    api_message = e.what();
  }
  const std::string file_message = file_error(entry);
  ASSERT_EQ(file_message.rfind("services.json: services[0]", 0), 0u) << file_message;
  EXPECT_EQ("service" + file_message.substr(std::string("services.json: services[0]").size()),
            api_message);
}

TEST(ServiceManagementConfig, JsonFormReadsBackToAnEqualSpec) {
  const json probed = {{"name", "pay"},
                       {"url", "https://pay.test/health"},
                       {"interval_seconds", 2.5},
                       {"timeout_seconds", 0.75},
                       {"method", "POST"},
                       {"headers", {{"X-A", "1"}, {"X-B", "2"}}},
                       {"expected_status", {200, "300-302"}},
                       {"team", "payments"},
                       {"priority", "p2"},
                       {"runbook", "https://wiki.test/pay"},
                       {"tags", {"prod", "eu"}},
                       {"muted_until", 1'900'000'000.5}};
  json beat = heartbeat(0.3);
  beat["grace_seconds"] = 0.05;
  beat["threshold"] = 4;
  beat["tags"] = {"cron"};
  for (const json& entry :
       {probed, beat, heartbeat(), json{{"name", "bare"}, {"url", "http://a/"}}}) {
    const ServiceSpec spec = parse_service_spec(entry, "service", default_settings());
    const json form = service_spec_json(spec);
    EXPECT_EQ(parse_service_spec(form, "service", default_settings()), spec) << form.dump();
  }
}

TEST(ServiceManagementConfig, PatchReplacesFieldsAndNullResetsThem) {
  const ServiceSpec current = parse_service_spec({{"name", "pay"},
                                                  {"url", "http://a/"},
                                                  {"interval_seconds", 10},
                                                  {"timeout_seconds", 2},
                                                  {"team", "payments"},
                                                  {"tags", {"a", "b"}},
                                                  {"headers", {{"X-A", "1"}}}},
                                                 "service", default_settings());
  const auto patched = [&](const json& patch) {
    return parse_service_spec(merge_service_patch(current, patch, "service", default_settings()),
                              "service", default_settings());
  };
  const ServiceSpec renamed = patched({{"name", "payments"}, {"tags", {"c"}}});
  EXPECT_EQ(renamed.name, "payments");
  EXPECT_EQ(renamed.tags, std::vector<std::string>{"c"});
  EXPECT_EQ(renamed.url, "http://a/");
  EXPECT_EQ(renamed.timeout, Millis(2000));
  EXPECT_EQ(renamed.team, "payments");
  EXPECT_EQ(renamed.headers, current.headers);

  const ServiceSpec reset = patched({{"team", nullptr}, {"headers", nullptr}});
  EXPECT_TRUE(reset.team.empty());
  EXPECT_TRUE(reset.headers.empty());

  // The same checks and messages as the file: the merged whole is validated.
  try {
    patched({{"interval_seconds", 1}});
    ADD_FAILURE() << "a timeout of 2 s above a 1 s interval was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("service (\"pay\").timeout_seconds: 2 is above the "
                                         "interval of 1 s"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(merge_service_patch(current, json::array(), "service", default_settings()),
               ConfigError);
  try {
    merge_service_patch(current, {{"kind", "heartbeat"}}, "service", default_settings());
    ADD_FAILURE() << "kind change accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("service.kind: cannot be changed"), std::string::npos);
  }
}

TEST(ServiceManagementConfig, DefaultsDerivedFromTheIntervalFollowANewInterval) {
  Settings settings;
  settings.default_timeout = Millis(5000);
  const ServiceSpec probed = parse_service_spec(
      {{"name", "p"}, {"url", "http://a/"}, {"interval_seconds", 30}}, "service", settings);
  ASSERT_EQ(probed.timeout, Millis(5000));
  const ServiceSpec faster = parse_service_spec(
      merge_service_patch(probed, {{"interval_seconds", 2}}, "service", settings), "service",
      settings);
  EXPECT_EQ(faster.timeout, Millis(2000));  // the default, cut to the new interval

  const ServiceSpec beat = parse_service_spec(heartbeat(60), "service", settings);
  const ServiceSpec hourly = parse_service_spec(
      merge_service_patch(beat, {{"interval_seconds", 3600}}, "service", settings), "service",
      settings);
  EXPECT_EQ(hourly.grace, Millis(360'000));
  // An explicit grace stays.
  json explicit_grace = heartbeat(60);
  explicit_grace["grace_seconds"] = 1;
  const ServiceSpec set = parse_service_spec(explicit_grace, "service", settings);
  EXPECT_EQ(parse_service_spec(
                merge_service_patch(set, {{"interval_seconds", 3600}}, "service", settings),
                "service", settings)
                .grace,
            Millis(1000));
}

TEST(ServiceManagementConfig, MutingAnewDropsTheOldSnooze) {
  const ServiceSpec snoozed =
      parse_service_spec({{"name", "p"}, {"url", "http://a/"}, {"muted_until", 1'900'000'000}},
                         "service", default_settings());
  const auto patched = [&](const json& patch) {
    return parse_service_spec(merge_service_patch(snoozed, patch, "service", default_settings()),
                              "service", default_settings());
  };
  const ServiceSpec unmuted = patched({{"muted", false}});
  EXPECT_FALSE(unmuted.muted);
  EXPECT_FALSE(unmuted.muted_until);
  const ServiceSpec forever = patched({{"muted", true}});
  EXPECT_TRUE(forever.muted);
  EXPECT_FALSE(forever.muted_until);
  const ServiceSpec later = patched({{"muted_until", 2'000'000'000}});
  EXPECT_TRUE(later.muted);
  EXPECT_EQ(to_unix_seconds(*later.muted_until), 2'000'000'000);
}

TEST(ServiceManagementConfig, MutedAtHonoursTheSnooze) {
  ServiceSpec spec;
  spec.muted = true;
  spec.muted_until = from_unix_ms(10'000);
  EXPECT_TRUE(spec.muted_at(from_unix_ms(9'999)));
  EXPECT_FALSE(spec.muted_at(from_unix_ms(10'000)));
  spec.muted_until.reset();
  EXPECT_TRUE(spec.muted_at(from_unix_ms(1'000'000'000'000)));
  spec.muted = false;
  EXPECT_FALSE(spec.muted_at(from_unix_ms(0)));
}

TEST(ServiceManagementSettings, DefaultsAndValues) {
  const Settings unset = load_settings({});
  EXPECT_TRUE(unset.api_token.empty());
  EXPECT_TRUE(unset.api_read_token.empty());
  EXPECT_EQ(unset.tick_retention, Millis(30LL * 86'400'000));
  EXPECT_EQ(unset.cleanup_interval, Millis(3'600'000));

  const Settings set = load_settings({{"API_TOKEN", "0123456789abcdef-write"},
                                      {"API_READ_TOKEN", "0123456789abcdef-read"},
                                      {"RETENTION_DAYS", "0.5"},
                                      {"CLEANUP_INTERVAL_SECONDS", "60"}});
  EXPECT_EQ(set.api_token, "0123456789abcdef-write");
  EXPECT_EQ(set.api_read_token, "0123456789abcdef-read");
  EXPECT_EQ(set.tick_retention, Millis(43'200'000));
  EXPECT_EQ(set.cleanup_interval, Millis(60'000));
  EXPECT_EQ(load_settings({{"RETENTION_DAYS", "0"}}).tick_retention, Millis(0));
}

TEST(ServiceManagementSettings, BadValuesNameTheVariableButNeverEchoAToken) {
  for (const char* name : {"API_TOKEN", "API_READ_TOKEN"}) {
    for (const char* value :
         {"short-secret", "has a space in it.....", "tab\there-is-long-enough"}) {
      try {
        load_settings({{name, value}});
        ADD_FAILURE() << name << " accepted " << value;
      } catch (const ConfigError& e) {
        const std::string message = e.what();
        EXPECT_NE(message.find(name), std::string::npos) << message;
        EXPECT_EQ(message.find(value), std::string::npos) << "the secret is echoed: " << message;
      }
    }
  }
  const std::pair<const char*, const char*> cases[] = {{"RETENTION_DAYS", "-1"},
                                                       {"RETENTION_DAYS", "thirty"},
                                                       {"CLEANUP_INTERVAL_SECONDS", "0.5"},
                                                       {"CLEANUP_INTERVAL_SECONDS", "x"}};
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

}  // namespace
}  // namespace vigil

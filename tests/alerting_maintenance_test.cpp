// Maintenance windows in time zones with DST: the TZif reader against the system's
// zoneinfo files (Debian package tzdata) and against TZif files built here byte by byte, the
// footer's POSIX TZ rule, recurring windows across DST changes, and per-service routing.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "alerting/alerting_config.h"
#include "alerting/maintenance.h"
#include "alerting/timezone.h"
#include "config/config.h"
#include "support/target_server.h"

namespace vigil {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr std::int64_t kHour = 3600;

void put32(std::string& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((v >> shift) & 0xff);
}
void put64(std::string& out, std::int64_t v) {
  put32(out, static_cast<std::uint32_t>(static_cast<std::uint64_t>(v) >> 32));
  put32(out, static_cast<std::uint32_t>(v));
}

// A version 2 TZif file (RFC 8536): a minimal version 1 block, then the 64-bit block with
// `transitions` (instant, index into `offsets`) and the footer TZ string.
std::string tzif(const std::vector<std::pair<std::int64_t, int>>& transitions,
                 const std::vector<std::int32_t>& offsets, const std::string& footer) {
  const auto header = [](std::string& out, std::uint32_t times, std::uint32_t types) {
    out += "TZif2";
    out += std::string(15, '\0');
    put32(out, 0);      // isutcnt
    put32(out, 0);      // isstdcnt
    put32(out, 0);      // leapcnt
    put32(out, times);  // timecnt
    put32(out, types);  // typecnt
    put32(out, 4);      // charcnt
  };
  std::string out;
  header(out, 0, 1);
  put32(out, 0);  // one type, UTC
  out += std::string("\0\0", 2);
  out += std::string("UTC\0", 4);
  header(out, static_cast<std::uint32_t>(transitions.size()),
         static_cast<std::uint32_t>(offsets.size()));
  for (const auto& [when, type] : transitions) put64(out, when);
  for (const auto& [when, type] : transitions) out += static_cast<char>(type);
  for (const auto offset : offsets) {
    put32(out, static_cast<std::uint32_t>(offset));
    out += std::string("\0\0", 2);
  }
  out += std::string("ABC\0", 4);
  out += "\n" + footer + "\n";
  return out;
}

std::shared_ptr<const TimeZone> rule_only(const std::string& rule) {
  return TimeZone::from_tzif(rule, tzif({}, {0}, rule));
}

TEST(TimeZoneTest, BerlinAndNewYorkChangeAtTheRightInstants) {
  const auto berlin = TimeZone::load("Europe/Berlin");
  EXPECT_EQ(berlin->name(), "Europe/Berlin");
  const std::int64_t spring = 1'711'846'800;  // 2024-03-31 01:00 UTC: 02:00 CET -> 03:00 CEST
  EXPECT_EQ(berlin->offset_at(spring - 1), kHour);
  EXPECT_EQ(berlin->offset_at(spring), 2 * kHour);
  const std::int64_t autumn = 1'729'990'800;  // 2024-10-27 01:00 UTC: 03:00 CEST -> 02:00 CET
  EXPECT_EQ(berlin->offset_at(autumn - 1), 2 * kHour);
  EXPECT_EQ(berlin->offset_at(autumn), kHour);

  const auto new_york = TimeZone::load("America/New_York");
  const std::int64_t ny_spring = 1'710'054'000;  // 2024-03-10 07:00 UTC
  EXPECT_EQ(new_york->offset_at(ny_spring - 1), -5 * kHour);
  EXPECT_EQ(new_york->offset_at(ny_spring), -4 * kHour);
  const std::int64_t ny_autumn = 1'730'613'600;  // 2024-11-03 06:00 UTC
  EXPECT_EQ(new_york->offset_at(ny_autumn - 1), -4 * kHour);
  EXPECT_EQ(new_york->offset_at(ny_autumn), -5 * kHour);
}

// The footer rule alone must say what the transition table says, hour by hour, for zones north
// and south of the equator: the rule is what a "slim" file and every date past 2037 rely on.
TEST(TimeZoneTest, TheFooterRuleAgreesWithTheTableHourByHour) {
  const std::pair<const char*, const char*> zones[] = {
      {"Europe/Berlin", "CET-1CEST,M3.5.0,M10.5.0/3"},
      {"America/New_York", "EST5EDT,M3.2.0,M11.1.0"},
      {"Australia/Sydney", "AEST-10AEDT,M10.1.0,M4.1.0/3"}};
  for (const auto& [name, rule] : zones) {
    const auto table = TimeZone::load(name);
    const auto footer = rule_only(rule);
    int changes = 0;
    for (std::int64_t t = 1'735'689'600; t < 2'114'380'800; t += kHour) {  // 2025 to 2037
      ASSERT_EQ(footer->offset_at(t), table->offset_at(t)) << name << " at " << t;
      changes += footer->offset_at(t) != footer->offset_at(t - kHour);
    }
    EXPECT_EQ(changes, 24) << name;  // two a year for twelve years
  }
}

TEST(TimeZoneTest, PastTheTableTheFooterRuleApplies) {
  const auto berlin = TimeZone::load("Europe/Berlin");
  EXPECT_EQ(berlin->offset_at(4'118'083'200), 2 * kHour);  // 2100-07-01
  EXPECT_EQ(berlin->offset_at(4'102'444'800), kHour);      // 2100-01-01

  // A table that ends in 2000 (as a slim file's does) hands over to its rule.
  const auto zone = TimeZone::from_tzif(
      "Test/Slim", tzif({{0, 1}, {946'684'800, 0}}, {3600, 7200}, "CET-1CEST,M3.5.0,M10.5.0/3"));
  EXPECT_EQ(zone->offset_at(-10), 3600);                 // before the first: type 0
  EXPECT_EQ(zone->offset_at(100), 7200);                 // from the table
  EXPECT_EQ(zone->offset_at(1'711'846'800 - 1), kHour);  // from the rule
  EXPECT_EQ(zone->offset_at(1'711'846'800), 2 * kHour);
  // A fixed-offset rule and an angle-bracket name.
  EXPECT_EQ(rule_only("<+0330>-3:30")->offset_at(1'711'846'800), 3 * kHour + 1800);
  // Julian-day rules: DST from day 60 to day 300 (no Feb 29 counted), at 02:00 local.
  const auto julian = rule_only("AAA0BBB,J60,J300");
  EXPECT_EQ(julian->offset_at(1'709'251'200 - 1), 0);  // 2024-03-01 00:00 UTC, leap year
  EXPECT_EQ(julian->offset_at(1'709'258'400), kHour);  // 02:00 on 1 March
}

TEST(TimeZoneTest, AVersionOneFileKeepsItsLastOffsetPastTheTable) {
  std::string v1 = "TZif";
  v1 += std::string(16, '\0');  // version 1 (NUL) and the reserved bytes
  for (const std::uint32_t count : {0u, 0u, 0u, 2u, 2u, 4u}) put32(v1, count);
  put32(v1, 1000);  // transitions, 32-bit
  put32(v1, 2000);
  v1 += std::string("\1\0", 2);  // to type 1, then type 0
  for (const std::int32_t offset : {-3600, 7200}) {
    put32(v1, static_cast<std::uint32_t>(offset));
    v1 += std::string("\0\0", 2);
  }
  v1 += std::string("ABC\0", 4);
  const auto zone = TimeZone::from_tzif("Test/V1", v1);
  EXPECT_EQ(zone->offset_at(999), -3600);  // type 0 before the first transition
  EXPECT_EQ(zone->offset_at(1000), 7200);
  EXPECT_EQ(zone->offset_at(2000), -3600);
  EXPECT_EQ(zone->offset_at(4'000'000'000), -3600);
}

TEST(TimeZoneTest, LocalTimesInAGapOrAnOverlap) {
  const auto berlin = TimeZone::load("Europe/Berlin");
  // 02:30 on 2024-03-31 does not exist: read as 03:30 CEST, 01:30 UTC.
  EXPECT_EQ(berlin->to_utc(1'711'852'200), 1'711'848'600);
  // 02:30 on 2024-10-27 happens twice: the first, 00:30 UTC.
  EXPECT_EQ(berlin->to_utc(1'729'996'200), 1'729'989'000);
  // An ordinary summer time.
  EXPECT_EQ(berlin->to_utc(1'719'835'200 + 2 * kHour), 1'719'835'200);  // 2024-07-01 00:00 UTC
  EXPECT_EQ(TimeZone::load("+05:30")->to_utc(5 * kHour + 1800), 0);
}

TEST(TimeZoneTest, BadNamesAndFilesAreErrors) {
  for (const std::string name : {"Mars/Olympus_Mons", "../../etc/passwd", "/etc/passwd", "Europe",
                                 "", "Europe/../UTC", "+25:00"}) {
    EXPECT_THROW(TimeZone::load(name), TimeZoneError) << name;
  }
  test::TempDir dir;
  std::ofstream(dir.file("Garbage")) << "not a time zone file at all, just text\n";
  std::ofstream(dir.file("Short")) << tzif({}, {0}, "CET-1CEST").substr(0, 50);
  ::setenv("TZDIR", dir.path().c_str(), 1);
  EXPECT_THROW(TimeZone::load("Garbage"), TimeZoneError);
  EXPECT_THROW(TimeZone::load("Short"), TimeZoneError);
  ::unsetenv("TZDIR");
  EXPECT_THROW(rule_only("CET-1CEST,M13.1.0,M10.5.0"), TimeZoneError);
  EXPECT_THROW(rule_only("C1"), TimeZoneError);
}

// ---- recurring windows in a zone with DST ----

MaintenanceWindow window(const json& entry) {
  return parse_maintenance_window(entry, "maintenance");
}

TEST(MaintenanceTimeZoneTest, ADailyWindowKeepsItsLocalTimeAcrossTheSpringChange) {
  const auto daily =
      window({{"every", "daily 09:00"}, {"duration_minutes", 60}, {"timezone", "Europe/Berlin"}});
  const TimePoint saturday = from_unix_ms(1'711'785'600'000);  // 2024-03-30 08:00 UTC = 09:00 CET
  const TimePoint sunday = from_unix_ms(1'711'868'400'000);    // 2024-03-31 07:00 UTC = 09:00 CEST
  EXPECT_FALSE(daily.active_at(saturday - 1s));
  EXPECT_TRUE(daily.active_at(saturday));
  EXPECT_TRUE(daily.active_at(saturday + 59min));
  EXPECT_FALSE(daily.active_at(saturday + 60min));
  EXPECT_FALSE(daily.active_at(sunday - 1s));
  EXPECT_TRUE(daily.active_at(sunday));
  EXPECT_FALSE(daily.active_at(sunday + 60min));
  EXPECT_FALSE(daily.active_at(sunday + 1h + 59min));  // would be inside at a fixed +01:00
  EXPECT_EQ(daily.next_start(saturday), sunday);
  EXPECT_EQ(daily.next_start(saturday - 1s), saturday);
}

TEST(MaintenanceTimeZoneTest, AWeeklyWindowInNewYorkAcrossTheChange) {
  const auto weekly =
      window({{"every", "sun 09:00"}, {"duration_minutes", 90}, {"timezone", "America/New_York"}});
  const TimePoint before = from_unix_ms(1'709'474'400'000);  // 2024-03-03 14:00 UTC (EST)
  const TimePoint after = from_unix_ms(1'710'075'600'000);   // 2024-03-10 13:00 UTC (EDT)
  EXPECT_TRUE(weekly.active_at(before));
  EXPECT_TRUE(weekly.active_at(before + 89min));
  EXPECT_FALSE(weekly.active_at(before + 90min));
  EXPECT_FALSE(weekly.active_at(after - 1s));
  EXPECT_TRUE(weekly.active_at(after));
  EXPECT_FALSE(weekly.active_at(after + std::chrono::hours(24)));
  EXPECT_EQ(weekly.next_start(from_unix_ms(1'709'596'800'000)), after);  // from Tue 5 March
  EXPECT_EQ(weekly.next_start(after), after + std::chrono::hours(24 * 7));
}

TEST(MaintenanceTimeZoneTest, AStartSkippedByTheChangeBeginsAfterIt) {
  const auto weekly =
      window({{"every", "sun 02:30"}, {"duration_minutes", 30}, {"timezone", "Europe/Berlin"}});
  const TimePoint gap = from_unix_ms(1'711'848'600'000);  // 2024-03-31 01:30 UTC = 03:30 CEST
  EXPECT_FALSE(weekly.active_at(gap - 1s));
  EXPECT_TRUE(weekly.active_at(gap));
  EXPECT_FALSE(weekly.active_at(gap + 30min));
  // On the autumn change 02:30 happens twice: the window is the first (CEST) one.
  const TimePoint first = from_unix_ms(1'729'989'000'000);  // 2024-10-27 00:30 UTC
  EXPECT_TRUE(weekly.active_at(first));
  EXPECT_FALSE(weekly.active_at(first + 1h));
}

TEST(MaintenanceTimeZoneTest, BadTimezoneIsAConfigErrorNamingTheField) {
  try {
    parse_maintenance(json::array({{{"every", "daily 01:00"},
                                    {"duration_minutes", 10},
                                    {"timezone", "Mars/Olympus_Mons"}}}),
                      "services.json: alerting.maintenance");
    ADD_FAILURE() << "accepted";
  } catch (const ConfigError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("services.json: alerting.maintenance[0].timezone: unknown time zone "
                           "\"Mars/Olympus_Mons\""),
              std::string::npos)
        << message;
  }
  EXPECT_THROW(window({{"every", "daily 01:00"}, {"duration_minutes", 10}, {"timezone", 2}}),
               ConfigError);
}

TEST(MaintenanceTimeZoneTest, TheStoredDefinitionReadsBackToTheSameWindow) {
  for (const json& entry :
       {json{{"every", "sat 23:15"},
             {"duration_minutes", 45},
             {"timezone", "Europe/Berlin"},
             {"services", {"db"}}},
        json{{"every", "daily 00:00"}, {"duration_minutes", 1440}, {"timezone", "UTC"}},
        json{{"start", 1'700'000'000}, {"end", 1'700'003'600}, {"tags", {"batch"}}}}) {
    const auto parsed = window(entry);
    const json stored = maintenance_definition_json(parsed);
    EXPECT_EQ(stored, entry);
    const json shown = maintenance_json(parsed, from_unix_ms(1'700'000'000'000));
    EXPECT_EQ(shown["source"], "file");
    EXPECT_TRUE(shown["id"].is_null());
  }
  const auto one_off = window({{"start", 1'700'000'000}, {"end", 1'700'003'600}});
  const json shown = maintenance_json(one_off, from_unix_ms(1'699'999'000'000));
  EXPECT_EQ(shown["active"], false);
  EXPECT_EQ(shown["next_start"], 1'700'000'000);
  EXPECT_EQ(maintenance_json(one_off, from_unix_ms(1'700'000'001'000))["active"], true);
}

// ---- per-service routing ----

TEST(AlertRoutingTest, AServiceListBeatsItsTeamWhichBeatsTheDefault) {
  const auto config = parse_alerting_config(
      {{"channels",
        {{"a", {{"type", "webhook"}, {"url", "http://127.0.0.1:1/a"}}},
         {"b",
          {{"type", "webhook"}, {"url", "http://127.0.0.1:1/b"}, {"repeat_every_seconds", 600}}},
         {"c", {{"type", "webhook"}, {"url", "http://127.0.0.1:1/c"}}}}},
       {"teams", {{"sre", {"b"}}}},
       {"default", {"c"}}},
      "alerting", {});
  ServiceSpec spec;
  spec.name = "api";
  spec.team = "sre";
  EXPECT_EQ(route_for(config, spec), std::vector<std::string>{"b"});
  EXPECT_EQ(repeat_for(config, spec, "b"), Millis(600'000));
  EXPECT_EQ(repeat_for(config, spec, "a"), std::nullopt);
  spec.alert_channels = {"a", "c"};
  EXPECT_EQ(route_for(config, spec), (std::vector<std::string>{"a", "c"}));
  spec.repeat_every = 30s;
  EXPECT_EQ(repeat_for(config, spec, "b"), Millis(30'000));
  spec.team.clear();
  spec.alert_channels.clear();
  EXPECT_EQ(route_for(config, spec), std::vector<std::string>{"c"});

  spec.alert_channels = {"a", "pager"};
  try {
    check_alert_routes(config, std::vector<ServiceSpec>{ServiceSpec{}, spec}, "services.json");
    ADD_FAILURE() << "accepted an unknown channel";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()),
              "services.json: services[1] (\"api\").alerts[1]: unknown channel \"pager\" (known: "
              "a, b, c)");
  }
}

TEST(AlertRoutingTest, TheServicesFileFieldsAreCheckedAndRoundTrip) {
  const Settings settings;
  const auto specs = parse_services(
      R"({"services": [{"name": "api", "url": "http://127.0.0.1:1/", "alerts": ["a", "b"],
                        "repeat_every_seconds": 90}]})",
      "services.json", settings);
  ASSERT_EQ(specs.size(), 1u);
  EXPECT_EQ(specs[0].alert_channels, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(specs[0].repeat_every, Millis(90'000));
  EXPECT_EQ(parse_service_spec(service_spec_json(specs[0]), "service", settings), specs[0]);
  for (const auto& [bad, field] : std::vector<std::pair<std::string, std::string>>{
           {R"("alerts": "a")", "services[0] (\"api\").alerts:"},
           {R"("alerts": ["a", "a"])", "services[0] (\"api\").alerts[1]: duplicate"},
           {R"("alerts": [3])", "services[0] (\"api\").alerts[0]:"},
           {R"("repeat_every_seconds": 0)", "services[0] (\"api\").repeat_every_seconds:"}}) {
    try {
      parse_services(
          R"({"services": [{"name": "api", "url": "http://127.0.0.1:1/", )" + bad + "}]}",
          "services.json", settings);
      ADD_FAILURE() << "accepted " << bad;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace vigil

// The JSON shapes every API route serves (seed 002): field names, nulls, unix seconds.
#include <gtest/gtest.h>

#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "api/json_views.h"
#include "support/parsed_json.h"

namespace vigil {
namespace {

using nlohmann::json;
using test::event_json;
using test::metric_json;
using test::service_json;
using test::tick_json;

// 2023-11-14T22:13:20.750Z: the .750 checks that seconds are truncated, not rounded or ms.
constexpr std::int64_t kMs = 1'700'000'000'750;
constexpr std::int64_t kSec = 1'700'000'000;

Event open_event() {
  Event event;
  event.id = 7;
  event.service_id = 3;
  event.kind = EventKind::downtime;
  event.date_started = from_unix_ms(kMs);
  event.created_at = from_unix_ms(kMs);
  event.updated_at = from_unix_ms(kMs + 5'000);
  return event;
}

ServiceView probed_view() {
  ServiceView view;
  view.service.id = 3;
  view.service.spec.name = "payments";
  view.service.spec.url = "https://example.test/health";
  view.service.spec.interval = Millis(30'000);
  view.service.created_at = from_unix_ms(kMs - 60'000);
  view.service.updated_at = from_unix_ms(kMs - 30'000);
  view.metric.add(true, 40);
  view.metric.add(false, 60);
  view.open_event = open_event();
  view.last_tick_at = from_unix_ms(kMs);
  return view;
}

// Rendered at the seed's instant, so that staleness does not depend on today's date.
json at_seed(const ServiceView& view, ServiceJsonOptions options = {}) {
  options.now = from_unix_ms(kMs);
  return service_json(view, options);
}

TEST(ApiJsonViews, EventHasSeedFieldsInSecondsAndNullEndWhileOpen) {
  const json j = event_json(open_event());
  EXPECT_EQ(j["id"], 7);
  EXPECT_EQ(j["event"], "downtime");
  EXPECT_EQ(j["date_started"], kSec);
  EXPECT_TRUE(j["date_ended"].is_null());
  EXPECT_EQ(j["created_at"], kSec);
  EXPECT_EQ(j["updated_at"], kSec + 5);
  EXPECT_TRUE(j["date_started"].is_number_integer());
  EXPECT_EQ(j.size(), 6u) << j.dump();
}

TEST(ApiJsonViews, ClosedEventHasEndInSecondsAndUptimeKind) {
  Event event = open_event();
  event.kind = EventKind::uptime;
  event.date_ended = from_unix_ms(kMs + 90'000);  // .750 past kSec + 90
  const json j = event_json(event);
  EXPECT_EQ(j["event"], "uptime");
  EXPECT_EQ(j["date_ended"], kSec + 90);
}

TEST(ApiJsonViews, MetricHasSeedFields) {
  Metric metric;
  metric.add(true, 10);
  metric.add(true, 20);
  metric.add(false, 60);
  const json j = metric_json(metric);
  EXPECT_EQ(j["tick_count"], 3);
  EXPECT_EQ(j["up_count"], 2);
  EXPECT_EQ(j["down_count"], 1);
  EXPECT_DOUBLE_EQ(j["average_response_time_ms"].get<double>(), 30.0);
  EXPECT_NEAR(j["uptime_percent"].get<double>(), 66.6667, 1e-3);
  EXPECT_EQ(j.size(), 5u) << j.dump();
}

TEST(ApiJsonViews, ServiceHasSeedShapeWithOpenEventTwice) {
  const json j = at_seed(probed_view());
  EXPECT_EQ(j["id"], 3);
  EXPECT_EQ(j["name"], "payments");
  EXPECT_EQ(j["url"], "https://example.test/health");
  EXPECT_EQ(j["created_at"], kSec - 60);
  EXPECT_EQ(j["updated_at"], kSec - 30);
  ASSERT_TRUE(j["current_status"].is_object());
  EXPECT_EQ(j["current_status"]["id"], 7);
  EXPECT_EQ(j["current_status"]["event"], "downtime");
  EXPECT_EQ(j["latest_event"]["data"], j["current_status"]);
  const json& metric = j["metric"]["data"];
  EXPECT_EQ(metric["tick_count"], 2);
  EXPECT_EQ(metric["up_count"], 1);
  EXPECT_EQ(metric["down_count"], 1);
  EXPECT_DOUBLE_EQ(metric["uptime_percent"].get<double>(), 50.0);
  EXPECT_DOUBLE_EQ(metric["average_response_time_ms"].get<double>(), 50.0);
  // Additions beyond the seed.
  EXPECT_EQ(j["status"], "down");
  EXPECT_EQ(j["active"], true);
  EXPECT_DOUBLE_EQ(j["interval_seconds"].get<double>(), 30.0);
}

TEST(ApiJsonViews, NeverProbedServiceHasNullStatusAndZeroMetric) {
  ServiceView view = probed_view();
  view.open_event.reset();
  view.metric = Metric{};
  view.service.spec.interval = Millis(1'500);
  view.last_tick_at.reset();
  view.service.updated_at = from_unix_ms(kMs);
  const json j = at_seed(view);
  ASSERT_TRUE(j.contains("current_status"));
  EXPECT_TRUE(j["current_status"].is_null());
  ASSERT_TRUE(j["latest_event"].contains("data"));
  EXPECT_TRUE(j["latest_event"]["data"].is_null());
  EXPECT_EQ(j["metric"]["data"]["tick_count"], 0);
  EXPECT_EQ(j["metric"]["data"]["uptime_percent"], 0);
  EXPECT_EQ(j["status"], "unknown");
  EXPECT_TRUE(j["last_tick_at"].is_null());
  EXPECT_DOUBLE_EQ(j["interval_seconds"].get<double>(), 1.5);
}

TEST(ApiJsonViews, UpServiceReportsUp) {
  ServiceView view = probed_view();
  view.open_event->kind = EventKind::uptime;
  EXPECT_EQ(at_seed(view)["status"], "up");
}

TEST(ApiJsonViews, LastTickAtInSecondsAndStaleOnceTheBoundHasPassed) {
  ServiceView view = probed_view();
  view.open_event->kind = EventKind::uptime;
  view.service.spec.interval = Millis(30'000);
  view.service.spec.timeout = Millis(5'000);
  view.service.updated_at = from_unix_ms(kMs - 120'000);
  view.last_tick_at = from_unix_ms(kMs - 65'000);  // exactly 2 x 30 s + 5 s before the seed
  json j = at_seed(view);
  EXPECT_EQ(j["last_tick_at"], kSec - 65);
  EXPECT_TRUE(j["last_tick_at"].is_number_integer());
  EXPECT_EQ(j["status"], "up");
  view.last_tick_at = from_unix_ms(kMs - 65'001);
  j = at_seed(view);
  EXPECT_EQ(j["status"], "stale");
  // It still says what the last event was.
  EXPECT_EQ(j["current_status"]["event"], "uptime");
}

TEST(ApiJsonViews, UrlShowsQueryValuesToWritersOnlyAndNeverThePassword) {
  ServiceView view = probed_view();
  view.service.spec.url = "http://user:hunter2@example.test/health?api_key=k3y&region=eu";
  EXPECT_EQ(at_seed(view)["url"],
            "http://user:<redacted>@example.test/health?api_key=<redacted>&region=<redacted>");
  EXPECT_EQ(at_seed(view, {.audience = UrlAudience::writer})["url"],
            "http://user:<redacted>@example.test/health?api_key=k3y&region=eu");
  std::string streamed;
  append_service_json(streamed, view);  // the list routes' form, reader by default
  EXPECT_EQ(streamed.find("hunter2"), std::string::npos) << streamed;
  EXPECT_EQ(streamed.find("k3y"), std::string::npos) << streamed;
}

TEST(ApiJsonViews, TickInSecondsWithMsAndNullsWhenAbsent) {
  Tick up;
  up.service_id = 3;
  up.ts = from_unix_ms(kMs);
  up.up = true;
  up.status_code = 204;
  up.response_ms = 12.5;
  up.region = "eu-west";
  json j = tick_json(up);
  EXPECT_EQ(j["ts"], kSec);
  EXPECT_EQ(j["ts_ms"], kMs);
  EXPECT_EQ(j["up"], true);
  EXPECT_EQ(j["status_code"], 204);
  EXPECT_DOUBLE_EQ(j["response_ms"].get<double>(), 12.5);
  EXPECT_TRUE(j["error"].is_null());
  EXPECT_EQ(j["region"], "eu-west");

  Tick down = up;
  down.up = false;
  down.status_code.reset();
  down.error = "connection refused";
  j = tick_json(down);
  EXPECT_EQ(j["up"], false);
  EXPECT_TRUE(j["status_code"].is_null());
  EXPECT_EQ(j["error"], "connection refused");
}

TEST(ApiJsonViews, EnvelopeCarriesStatusReasonAndData) {
  const json j = envelope(200, json{{"x", 1}});
  EXPECT_EQ(j["status"], 200);
  EXPECT_EQ(j["status_desc"], "OK");
  EXPECT_EQ(j["data"]["x"], 1);
  EXPECT_FALSE(j.contains("error"));
}

TEST(ApiJsonViews, ErrorEnvelopeAddsMessageAndEmptyData) {
  const json j = error_envelope(404, "service 9 not found");
  EXPECT_EQ(j["status"], 404);
  EXPECT_EQ(j["status_desc"], "Not Found");
  EXPECT_EQ(j["error"], "service 9 not found");
  EXPECT_TRUE(j["data"].is_object());
  EXPECT_TRUE(j["data"].empty());
}

TEST(ApiJsonViews, StatusDescriptions) {
  EXPECT_STREQ(status_desc(400), "Bad Request");
  EXPECT_STREQ(status_desc(405), "Method Not Allowed");
  EXPECT_STREQ(status_desc(413), "Payload Too Large");
  EXPECT_STREQ(status_desc(500), "Internal Server Error");
  EXPECT_STREQ(status_desc(503), "Service Unavailable");
  EXPECT_STREQ(status_desc(299), "Unknown");
}

TEST(ApiJsonViews, TextFormIsCompactSortedAndInSeconds) {
  std::string text;
  append_event_json(text, open_event());
  EXPECT_EQ(text, R"({"created_at":1700000000,"date_ended":null,"date_started":1700000000,)"
                  R"("event":"downtime","id":7,"updated_at":1700000005})");
}

TEST(ApiJsonViews, FloatFieldsStayFloatsAndRoundTripExactly) {
  Metric metric;
  metric.tick_count = metric.up_count = 75;
  metric.average_response_time_ms = 54.52497556578949;
  metric.uptime_percent = 100;
  std::string text;
  append_metric_json(text, metric);
  // 100 keeps its ".0": a client typing the field from the first value it sees stays right.
  EXPECT_NE(text.find(R"("uptime_percent":100.0)"), std::string::npos) << text;
  const json j = json::parse(text);
  EXPECT_TRUE(j["uptime_percent"].is_number_float());
  EXPECT_EQ(j["average_response_time_ms"].get<double>(), 54.52497556578949);
}

TEST(ApiJsonViews, NonFiniteNumbersBecomeNull) {
  Tick tick;
  tick.response_ms = std::numeric_limits<double>::quiet_NaN();
  EXPECT_TRUE(tick_json(tick)["response_ms"].is_null());
  tick.response_ms = std::numeric_limits<double>::infinity();
  EXPECT_TRUE(tick_json(tick)["response_ms"].is_null());
}

TEST(ApiJsonViews, StringsAreEscaped) {
  ServiceView view = probed_view();
  // Quote, backslash, newline, tab, control bytes, DEL and an embedded NUL.
  static constexpr char kRaw[] =
      "a\"b\\c\nd\te\x01"
      "f/\x7f\0g";
  view.service.spec.name = std::string(kRaw, sizeof kRaw - 1);
  ASSERT_EQ(view.service.spec.name.size(), 15u);
  const json j = service_json(view);
  EXPECT_EQ(j["name"].get<std::string>(), view.service.spec.name);
}

// The exact text, not only what a parser reads back: plain runs between escapes are copied
// whole, so each escape must start and end in the right place.
TEST(ApiJsonViews, StringEscapesAreExactBetweenPlainRuns) {
  ServiceView view = probed_view();
  static constexpr char kRaw[] =
      "ab\"cd\\\\e\n\r\tf\x01\x1fg/\x7f\0"
      "h\xffi caf\u00e9\"";
  view.service.spec.name = std::string(kRaw, sizeof kRaw - 1);
  std::string text;
  append_service_json(text, view);
  const std::string expected = R"("name":"ab\"cd\\\\e\n\r\tf\u0001\u001fg/)"
                               "\x7f"
                               R"(\u0000h)"
                               "\uFFFD"
                               "i caf\u00e9"
                               R"(\"",)";
  EXPECT_NE(text.find(expected), std::string::npos) << text;
}

TEST(ApiJsonViews, ValidUtf8IsKeptAndInvalidBytesBecomeReplacementCharacters) {
  ServiceView view = probed_view();
  view.service.spec.name = "caf\u00e9 \u20ac \U0001F600";
  EXPECT_EQ(service_json(view)["name"], view.service.spec.name);
  const std::string replacement = "\uFFFD";
  struct Case {
    std::string in;
    std::string out;
  };
  for (const Case& c : std::vector<Case>{
           {"a\xff"
            "b",
            "a" + replacement + "b"},                                  // never valid in UTF-8
           {"\xc0\xaf", replacement + replacement},                    // overlong '/'
           {"\xed\xa0\x80", replacement + replacement + replacement},  // surrogate
           {"x\xe2\x82", "x" + replacement + replacement},             // truncated euro sign
           {"\xf4\x90\x80\x80",
            replacement + replacement + replacement + replacement},  // > U+10FFFF
       }) {
    Tick tick;
    tick.error = c.in;
    EXPECT_EQ(tick_json(tick)["error"].get<std::string>(), c.out) << c.in;
  }
}

TEST(ApiJsonViews, TextEnvelopeMatchesEnvelope) {
  const json data = {{"services", {{"data", json::array({1, 2})}}}};
  const std::string text = envelope_text(200, data.dump());
  EXPECT_EQ(json::parse(text), envelope(200, data));
  EXPECT_EQ(json::parse(envelope_text(503, "{}"))["status_desc"], "Service Unavailable");
}

TEST(ApiJsonViews, EnvelopeWrittenInPlaceIsTheTextEnvelope) {
  for (const int status : {200, 201, 404}) {
    const std::string data = R"({"services":{"data":[1,2],"next":null}})";
    std::string in_place = "already there";
    append_envelope_begin(in_place);
    in_place += data;
    append_envelope_end(in_place, status);
    EXPECT_EQ(in_place, "already there" + envelope_text(status, data));
  }
}

}  // namespace
}  // namespace vigil

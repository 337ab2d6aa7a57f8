// The status page, a service's page and badges, against a real
// store of each backend (a SQLite file, a PostgreSQL schema) seeded through the Store API and over
// real HTTP. Every page and badge is parsed with the strict checker in tests/support/markup_check.h
// and its figures compared with what the test seeded.
#include <gtest/gtest.h>
#include <httplib.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <ctime>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "api/badges.h"
#include "api/server.h"
#include "api/status_page.h"
#include "storage/alert_store.h"
#include "storage/store.h"
#include "support/markup_check.h"
#include "support/store_backends.h"
#include "support/target_server.h"

namespace vigil {
namespace {

using nlohmann::json;
using test::MarkupMode;
using test::MarkupNode;
using test::parse_markup;

constexpr std::int64_t kMin = 60'000;
constexpr std::int64_t kHour = 60 * kMin;
constexpr std::int64_t kDay = 24 * kHour;
// Service names are hostile input: this one must show as text, never as markup.
const std::string kHostile = "<script>alert(\"x\")</script> & 'co' <b>";

std::string utc_date(std::int64_t ms) {
  const std::time_t s = ms / 1000;
  std::tm tm{};
  gmtime_r(&s, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
  return buf;
}

std::string percent(double p) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f%%", p);
  return buf;
}

struct Seeded {
  std::int64_t t;
  bool up;
  double ms;
};

class StatusPage : public test::StoreBackendTest {
 protected:
  void SetUp() override {
    StoreBackendTest::SetUp();
    if (IsSkipped()) return;
    store = database().open();
  }

  // Probed hourly, so that the seeded ticks (every 5 minutes up to now) keep it fresh.
  ServiceId create(const std::string& name, const std::string& team = "",
                   std::vector<std::string> tags = {},
                   std::optional<std::int64_t> created_at = std::nullopt) {
    ServiceSpec spec;
    spec.name = name;
    spec.url = "http://127.0.0.1:1/" + std::to_string(seeded.size());
    spec.interval = Millis(kHour);
    spec.team = team;
    spec.tags = std::move(tags);
    return store->create_service(spec, from_unix_ms(created_at.value_or(now - 100 * kDay))).id;
  }

  // Writes the ticks through Store::apply, with the metric and the events a runner would give.
  void seed(ServiceId id, const std::vector<Seeded>& ticks) {
    std::vector<TickRecord> batch;
    Metric metric;
    std::optional<bool> last;
    for (const auto& s : ticks) {
      TickRecord r;
      r.tick.service_id = id;
      r.tick.ts = from_unix_ms(s.t);
      r.tick.up = s.up;
      r.tick.status_code = s.up ? 200 : 503;
      r.tick.response_ms = s.ms;
      r.tick.phases = PhaseTimings{s.ms * 0.1, s.ms * 0.2, 0, s.ms * 0.6, s.ms * 0.1};
      if (!s.up) r.tick.error = "status 503";
      metric.add(s.up, s.ms);
      r.metric_after = metric;
      if (last != s.up) r.opens_event = s.up ? EventKind::uptime : EventKind::downtime;
      last = s.up;
      batch.push_back(r);
      seeded[id].push_back(s);
    }
    store->apply(batch);
  }

  // "api": 10 up ticks 3 days ago; then from 2 h ago every 5 min: 20 up, then 5 down (down
  // since 20 min ago, still open). "<hostile>": 12 up ticks in the last hour. "idle": none,
  // created a minute ago.
  void seed_standard() {
    api = create("api", "payments");
    hostile = create(kHostile, "", {"edge"});
    idle = create("idle", "", {}, now - kMin);
    std::vector<Seeded> ticks;
    for (int i = 0; i < 10; ++i) ticks.push_back({now - 3 * kDay + i * kMin, true, 40});
    for (int i = 0; i < 25; ++i)
      ticks.push_back({now - 2 * kHour + i * 5 * kMin, i < 20, i < 20 ? 50.0 + i : 900.0});
    seed(api, ticks);
    std::vector<Seeded> ok;
    for (int i = 0; i < 12; ++i) ok.push_back({now - 59 * kMin + i * 5 * kMin, true, 12});
    seed(hostile, ok);
  }

  // Probes up / probes of `id` over ticks with t > now - window.
  double uptime(ServiceId id, std::int64_t window) {
    int n = 0, up = 0;
    for (const auto& s : seeded[id])
      if (s.t > now - window) {
        ++n;
        up += s.up;
      }
    return 100.0 * up / n;
  }

  std::unique_ptr<Store> store;
  // Mid-hour, so the hour-aligned windows hold exactly the ticks of the last N days.
  std::int64_t now = (to_unix_ms(now_ms()) / kHour) * kHour + 30 * kMin;
  ServiceId api = 0, hostile = 0, idle = 0;
  std::map<ServiceId, std::vector<Seeded>> seeded;
};

const MarkupNode& row_of(const MarkupNode& page, ServiceId id) {
  const MarkupNode* row = page.by_id("svc-" + std::to_string(id));
  if (!row) throw std::runtime_error("no row for service " + std::to_string(id));
  return *row;
}

std::string class_text(const MarkupNode& node, const std::string& css) {
  const auto found = node.all("span", "class", css);
  return found.empty() ? std::string("<missing " + css + ">") : found.front()->all_text();
}

INSTANTIATE_TEST_SUITE_P(Backends, StatusPage, test::kStoreBackends, test::backend_name);

// Paging and grouping a thousand services, done in memory over one list_services (read on both
// backends by the other tests): SQLite only, where the thousand creations cost less.
class StatusPageLayout : public StatusPage {};
INSTANTIATE_TEST_SUITE_P(SqliteOnly, StatusPageLayout, test::kSqliteOnly, test::backend_name);

TEST_P(StatusPage, PageIsWellFormedAndShowsTheSeededFigures) {
  seed_standard();
  const StatusPageData data = load_status_page(*store, "Acme <status>", from_unix_ms(now), 1);
  const std::string html = render_status_page(data);
  const MarkupNode page = parse_markup(html, MarkupMode::html);

  EXPECT_EQ(page.all("title").at(0)->all_text(), "Acme <status>");
  const MarkupNode* overall = page.by_id("overall");
  ASSERT_NE(overall, nullptr);
  EXPECT_NE(overall->all_text().find("1 service down"), std::string::npos) << overall->all_text();
  EXPECT_NE(overall->all_text().find("1 not checked yet"), std::string::npos);

  const MarkupNode& row = row_of(page, api);
  EXPECT_EQ(*row.attribute("data-state"), "down");
  EXPECT_EQ(row.all("a", "class", "name").at(0)->all_text(), "api");
  EXPECT_EQ(class_text(row, "state s-down"), "down for 20m");
  EXPECT_EQ(class_text(row, "u-24h"), percent(uptime(api, kDay)));     // 20 of 25
  EXPECT_EQ(class_text(row, "u-7d"), percent(uptime(api, 7 * kDay)));  // 30 of 35
  EXPECT_EQ(class_text(row, "u-90d"), percent(uptime(api, 90 * kDay)));
  EXPECT_EQ(class_text(row, "u-24h"), "80.00%");

  // 90 daily cells, oldest first; each day's tooltip from the seeded ticks of that UTC day.
  const auto cells = row.all("i");
  ASSERT_EQ(cells.size(), 90u);
  std::map<std::string, std::pair<int, int>> by_day;
  for (const auto& s : seeded[api]) {
    auto& [n, up] = by_day[utc_date(s.t)];
    ++n;
    up += s.up;
  }
  for (const auto& [day, counts] : by_day) {
    const std::string& date = day;  // a lambda cannot capture a structured binding in clang 14
    const auto cell = std::find_if(cells.begin(), cells.end(), [&](const MarkupNode* c) {
      return c->attribute("title")->starts_with(date);
    });
    ASSERT_NE(cell, cells.end()) << day;
    EXPECT_NE(
        (*cell)->attribute("title")->find(percent(100.0 * counts.second / counts.first) + " up"),
        std::string::npos)
        << *(*cell)->attribute("title");
  }
  EXPECT_EQ(*cells.back()->attribute("title"),
            utc_date(now) + ": " +
                percent(by_day[utc_date(now)].second * 100.0 / by_day[utc_date(now)].first) +
                " up, 20 min down")
      << "today: the open downtime began 20 min ago";
  EXPECT_EQ(*cells.front()->attribute("title"),
            utc_date(now - 89 * kDay) + ": no data, 0 min down");

  // The sparkline: one polyline point per 15-minute bucket that had probes.
  const auto spark = row.all("svg", "class", "spark");
  ASSERT_EQ(spark.size(), 1u);
  const std::string points = *spark[0]->all("polyline").at(0)->attribute("points");
  std::set<std::int64_t> buckets;
  for (const auto& s : seeded[api])
    if (s.t > now - kDay) buckets.insert(s.t / (15 * kMin));
  EXPECT_EQ(std::count(points.begin(), points.end(), ','), std::int64_t(buckets.size()));

  // The hostile name is text, escaped: no script element but the page's own refresh script.
  const MarkupNode& bad = row_of(page, hostile);
  EXPECT_EQ(bad.all("a", "class", "name").at(0)->all_text(), kHostile);
  EXPECT_EQ(page.all("script").size(), 1u);
  EXPECT_EQ(page.all("b").size(), 3u * 4) << "only the uptime labels are bold";
  EXPECT_EQ(class_text(bad, "u-24h"), "100.00%");
  EXPECT_EQ(class_text(row_of(page, idle), "u-24h"), "no data");
  EXPECT_EQ(class_text(row_of(page, idle), "state s-unknown"), "unknown");

  // Groups: team "payments", tag "edge", then the ungrouped.
  const auto groups = page.all("summary");
  ASSERT_EQ(groups.size(), 3u);
  EXPECT_EQ(groups[0]->text.substr(0, 4), "edge");
  EXPECT_EQ(groups[1]->text.substr(0, 8), "payments");
  EXPECT_EQ(groups[2]->text.substr(0, 14), "Other services");
}

TEST_P(StatusPage, ServicesWithoutRecentTicksAreStaleAndTheHeadlineSaysSo) {
  seed_standard();
  // "api" ticked last at `now`, hourly with a 15 s timeout: stale after 2 h 15 s. "<hostile>"
  // ticked 4 minutes before, "idle" was created a minute before and never probed.
  const std::int64_t bound = 2 * kHour + 15'000;
  auto render = [&](std::int64_t at) {
    return parse_markup(render_status_page(load_status_page(*store, "t", from_unix_ms(at), 1)),
                        MarkupMode::html);
  };
  const MarkupNode fresh = render(now + kMin);
  EXPECT_EQ(class_text(row_of(fresh, api), "checked"), "last checked 1m ago");
  EXPECT_EQ(class_text(row_of(fresh, idle), "checked"), "never checked");

  const MarkupNode at_bound = render(now + bound);
  EXPECT_EQ(*row_of(at_bound, api).attribute("data-state"), "down");
  EXPECT_EQ(*row_of(at_bound, hostile).attribute("data-state"), "stale");
  EXPECT_EQ(class_text(row_of(at_bound, hostile), "state s-stale"), "stale");
  EXPECT_EQ(*row_of(at_bound, idle).attribute("data-state"), "stale");
  EXPECT_EQ(at_bound.by_id("overall")->all_text(),
            "1 service down, 2 services not checked recently (stale)");

  const MarkupNode past = render(now + bound + 1);
  EXPECT_EQ(*row_of(past, api).attribute("data-state"), "stale");
  EXPECT_EQ(class_text(row_of(past, api), "checked"), "last checked 2h 0m ago");
  const std::string headline = past.by_id("overall")->all_text();
  EXPECT_EQ(headline, "3 services not checked recently (stale)");
  EXPECT_EQ(headline.find("operational"), std::string::npos);
  EXPECT_EQ(*past.by_id("overall")->attribute("class"), "overall warn");
}

TEST_P(StatusPage, TheServicePageShowsNoPasswordNorQueryValue) {
  ServiceSpec spec;
  spec.name = "secret";
  spec.url = "https://probe:hunter2@example.test/health?api_key=k3y-value&region=eu";
  const ServiceId id = store->create_service(spec, from_unix_ms(now)).id;
  const auto data = load_service_page(*store, nullptr, "t", id, from_unix_ms(now));
  ASSERT_TRUE(data);
  const std::string html = render_service_page(*data);
  EXPECT_EQ(html.find("hunter2"), std::string::npos);
  EXPECT_EQ(html.find("k3y-value"), std::string::npos);
  const MarkupNode page = parse_markup(html, MarkupMode::html);
  EXPECT_EQ(page.all("code").at(0)->all_text(),
            "https://probe:<redacted>@example.test/health?api_key=<redacted>&region=<redacted>");
}

TEST_P(StatusPageLayout, AThousandServicesArePagedAndGroupsStayInOrder) {
  for (int i = 0; i < 1000; ++i)
    create("svc-" + std::to_string(1000 + i), i % 3 == 0 ? "team-" + std::to_string(i % 7) : "");
  std::size_t seen = 0;
  std::set<std::string> names;
  StatusPageData first = load_status_page(*store, "t", from_unix_ms(now), 1);
  ASSERT_EQ(first.pages, (1000 + kStatusPageSize - 1) / kStatusPageSize);
  for (int p = 1; p <= first.pages; ++p) {
    const StatusPageData data = load_status_page(*store, "t", from_unix_ms(now), p);
    EXPECT_EQ(data.total, 1000);
    const std::string html = render_status_page(data);
    EXPECT_LT(html.size(), 600'000u) << "page " << p;
    const MarkupNode page = parse_markup(html, MarkupMode::html);
    for (const auto* row : page.all("div", "class", "svc")) {
      ++seen;
      names.insert(row->all("a").at(0)->all_text());
    }
  }
  EXPECT_EQ(seen, 1000u);
  EXPECT_EQ(names.size(), 1000u);
  EXPECT_EQ(load_status_page(*store, "t", from_unix_ms(now), 999).page, first.pages);
}

TEST_P(StatusPage, ServicePageShowsEventsChartsAndBars) {
  seed_standard();
  const auto data = load_service_page(*store, nullptr, "Acme", api, from_unix_ms(now));
  ASSERT_TRUE(data);
  const MarkupNode page = parse_markup(render_service_page(*data), MarkupMode::html);
  EXPECT_EQ(page.by_id("service-name")->all_text(), "api");
  const MarkupNode* events = page.by_id("events");
  ASSERT_NE(events, nullptr);
  const auto rows = events->all("tr");
  ASSERT_EQ(rows.size(), 1u + 2u);  // header, the open downtime, the uptime before it
  EXPECT_NE(rows[1]->all_text().find("ongoing"), std::string::npos);
  EXPECT_NE(rows[1]->all_text().find("20m"), std::string::npos);
  // The uptime event: 3 days ago to 25 minutes ago.
  EXPECT_NE(rows[2]->all_text().find("2d 23h"), std::string::npos) << rows[2]->all_text();
  EXPECT_EQ(page.by_id("chart-24h")->all("polygon").size(), 5u) << "phases stacked";
  EXPECT_EQ(page.by_id("chart-24h")->all("polyline").size(), 2u) << "mean and p95";
  EXPECT_EQ(page.all("div", "class", "bar hours").at(0)->all("i").size(), 168u);
  EXPECT_EQ(page.all("div", "class", "bar big").at(0)->all("i").size(), 90u);
  EXPECT_FALSE(load_service_page(*store, nullptr, "Acme", 9999, from_unix_ms(now)));

  // Alerts of the service, newest first, their texts escaped.
  const auto alerts_store = database().database()->open_alert_store();
  AlertStore& alerts = *alerts_store;
  const auto none = [](const AlertRecord&) { return std::vector<NewNotification>{}; };
  const AlertRecord first = alerts.open_alert(api, "api down", "status <503>", std::nullopt,
                                              from_unix_ms(now - kDay), none);
  alerts.close_alert(first.alert_id, from_unix_ms(now - kDay + 10 * kMin), none);
  alerts.open_alert(api, "api down", "status 503 & timeout", std::string("up"),
                    from_unix_ms(now - 20 * kMin), none);
  const auto with_alerts = load_service_page(*store, &alerts, "Acme", api, from_unix_ms(now));
  const MarkupNode alert_page = parse_markup(render_service_page(*with_alerts), MarkupMode::html);
  const auto alert_rows = alert_page.by_id("alerts")->all("tr");
  ASSERT_EQ(alert_rows.size(), 3u);
  EXPECT_NE(alert_rows[1]->all_text().find("status 503 & timeout"), std::string::npos);
  EXPECT_NE(alert_rows[1]->all_text().find("active"), std::string::npos);
  EXPECT_NE(alert_rows[2]->all_text().find("status <503>"), std::string::npos);

  const auto hostile_page = load_service_page(*store, nullptr, "Acme", hostile, from_unix_ms(now));
  const MarkupNode parsed = parse_markup(render_service_page(*hostile_page), MarkupMode::html);
  EXPECT_EQ(parsed.by_id("service-name")->all_text(), kHostile);
}

TEST(Badges, ColoursChangeExactlyAtTheThresholds) {
  using namespace badges;
  EXPECT_STREQ(uptime_color(100.0), kBrightGreen);
  EXPECT_STREQ(uptime_color(99.9), kBrightGreen);
  EXPECT_STREQ(uptime_color(99.899), kGreen);
  EXPECT_STREQ(uptime_color(99.0), kGreen);
  EXPECT_STREQ(uptime_color(98.999), kYellow);
  EXPECT_STREQ(uptime_color(95.0), kYellow);
  EXPECT_STREQ(uptime_color(94.999), kOrange);
  EXPECT_STREQ(uptime_color(90.0), kOrange);
  EXPECT_STREQ(uptime_color(89.999), kRed);
  EXPECT_STREQ(uptime_color(std::nullopt), kGrey);
  EXPECT_STREQ(response_time_color(199.9), kBrightGreen);
  EXPECT_STREQ(response_time_color(200.0), kGreen);
  EXPECT_STREQ(response_time_color(499.9), kGreen);
  EXPECT_STREQ(response_time_color(500.0), kYellow);
  EXPECT_STREQ(response_time_color(1000.0), kOrange);
  EXPECT_STREQ(response_time_color(2000.0), kRed);
  EXPECT_STREQ(response_time_color(std::nullopt), kGrey);

  // The colour reaches the SVG, which is well-formed with escaped text.
  const std::string svg = render_svg(Badge{"a<b", "99.90% & up", kBrightGreen});
  const MarkupNode doc = parse_markup(svg, MarkupMode::xml);
  const auto rects = doc.all("rect");
  ASSERT_GE(rects.size(), 3u);
  EXPECT_EQ(*rects[2]->attribute("fill"), kBrightGreen);
  EXPECT_EQ(doc.all("text").at(0)->all_text(), "a<b");
  EXPECT_EQ(doc.all("text").at(1)->all_text(), "99.90% & up");
}

// Over HTTP against a running ApiServer.
class StatusHttp : public StatusPage {
 protected:
  void start(
      ApiOptions options = {}, HealthCheck health = [] { return HealthReport{}; }) {
    server = std::make_unique<ApiServer>(*store, registry, std::move(health), std::move(options));
    client = std::make_unique<httplib::Client>("127.0.0.1", server->start("127.0.0.1", 0));
  }
  httplib::Result get(const std::string& path, const std::string& token = "") {
    httplib::Headers headers;
    if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
    return client->Get(path.c_str(), headers);
  }
  std::string badge_fill(const std::string& path) {
    const auto res = get(path);
    if (!res || res->status != 200) return "status " + std::to_string(res ? res->status : 0);
    const MarkupNode doc = parse_markup(res->body, MarkupMode::xml);
    return *doc.all("rect").at(2)->attribute("fill");
  }
  std::string badge_value(const std::string& path) {
    const auto res = get(path);
    if (!res || res->status != 200) return "status " + std::to_string(res ? res->status : 0);
    return parse_markup(res->body, MarkupMode::xml).all("text").at(1)->all_text();
  }

  prometheus::Registry registry;
  std::unique_ptr<ApiServer> server;
  std::unique_ptr<httplib::Client> client;
};

INSTANTIATE_TEST_SUITE_P(Backends, StatusHttp, test::kStoreBackends, test::backend_name);

TEST_P(StatusHttp, PagesAreServedAsHtml) {
  now = to_unix_ms(now_ms());
  seed_standard();
  start();
  const auto res = get("/");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/html; charset=utf-8");
  const MarkupNode page = parse_markup(res->body, MarkupMode::html);
  EXPECT_EQ(*row_of(page, api).attribute("data-state"), "down");
  EXPECT_EQ(page.all("title").at(0)->all_text(), "vigil status");

  const auto service = get("/services/" + std::to_string(api));
  ASSERT_TRUE(service);
  EXPECT_EQ(service->status, 200);
  parse_markup(service->body, MarkupMode::html);
  const auto missing = get("/services/4242");
  EXPECT_EQ(missing->status, 404);
  EXPECT_NE(parse_markup(missing->body, MarkupMode::html).all_text().find("no service 4242"),
            std::string::npos);
  EXPECT_EQ(get("/services/abc")->status, 400);
  EXPECT_EQ(get("/?page=0")->status, 400);
  EXPECT_EQ(get("/?page=2")->status, 200);  // past the end: the last page
}

TEST_P(StatusHttp, ASilentRunnerReplacesTheHeadlineWithMonitoringIsDown) {
  now = to_unix_ms(now_ms());
  seed_standard();
  const TimePoint judged_at = from_unix_ms(now);
  std::atomic<std::int64_t> runner_progress_ms{now - 42'000};
  ApiOptions options;
  options.health_clock = [judged_at] { return judged_at; };
  options.health_silent_after = Millis(10'000);
  start(options, [&] {
    HealthReport report;
    report.parts = {PartProgress{"runner", "local", from_unix_ms(runner_progress_ms.load())},
                    PartProgress{"writer", "local", judged_at}};
    return report;
  });
  const auto headline = [&] {
    const auto res = get("/");
    EXPECT_TRUE(res && res->status == 200);
    const MarkupNode page = parse_markup(res ? res->body : "", MarkupMode::html);
    const MarkupNode* overall = page.by_id("overall");
    return overall ? overall->all_text() : std::string("<no #overall>");
  };
  EXPECT_EQ(headline(),
            "Monitoring is down (runner silent for 42.0 s): the states below may be out of date");
  // Within the bound the usual headline is back.
  runner_progress_ms = now - 9'000;
  EXPECT_NE(headline().find("1 service down"), std::string::npos) << headline();
}

TEST_P(StatusHttp, BadgesByIdAndByName) {
  now = to_unix_ms(now_ms());
  seed_standard();
  start();
  const std::string by_id = "/v1/services/" + std::to_string(api) + "/badges/";
  EXPECT_EQ(badge_value(by_id + "status.svg"), "down");
  EXPECT_EQ(badge_fill(by_id + "status.svg"), badges::kRed);
  EXPECT_EQ(badge_value(by_id + "uptime.svg"), "80.00%");
  EXPECT_EQ(badge_fill(by_id + "uptime.svg"), badges::kRed);
  EXPECT_EQ(badge_value(by_id + "uptime.svg?window=7d"), percent(uptime(api, 7 * kDay)));
  EXPECT_EQ(badge_fill(by_id + "response-time.svg?window=30d"), badges::kYellow)
      << "p95 of 30 probes of 40-69 ms and 5 of 900 ms: in [500, 1000)";
  // The same p95 as the metrics route (within the histogram's bound of the exact 900 ms).
  const double p95 = json::parse(get("/v1/services/" + std::to_string(api) + "/metrics?window=30d")
                                     ->body)["data"]["metrics"]["p95_ms"];
  EXPECT_NEAR(p95, 900, 900 * 0.096);
  char expected[32];
  std::snprintf(expected, sizeof expected, "%.0f ms", p95);
  EXPECT_EQ(badge_value(by_id + "response-time.svg?window=30d"), expected);

  const auto res = get(by_id + "status.svg");
  EXPECT_EQ(res->get_header_value("Content-Type"), "image/svg+xml; charset=utf-8");
  EXPECT_EQ(res->get_header_value("Cache-Control"), "private, max-age=60");
  EXPECT_EQ(get(by_id + "uptime.svg")->get_header_value("Cache-Control"), "private, max-age=300");

  // By name: URL-encoded, hostile characters included.
  std::string name;
  for (unsigned char c : kHostile) {
    char buf[4];
    std::snprintf(buf, sizeof buf, "%%%02X", c);
    name += std::isalnum(c) ? std::string(1, char(c)) : std::string(buf);
  }
  EXPECT_EQ(badge_value("/v1/badges/" + name + "/status.svg"), "up");
  EXPECT_EQ(badge_fill("/v1/badges/" + name + "/uptime.svg?window=24h"), badges::kBrightGreen);
  EXPECT_EQ(badge_value("/v1/badges/api/uptime.svg"), "80.00%");
  EXPECT_EQ(badge_value("/v1/badges/idle/response-time.svg"), "no data");
  EXPECT_EQ(badge_fill("/v1/badges/idle/status.svg"), badges::kGrey);

  EXPECT_EQ(get("/v1/badges/nope/status.svg")->status, 404);
  EXPECT_EQ(get("/v1/services/999/badges/status.svg")->status, 404);
  const auto bad_window = get(by_id + "uptime.svg?window=90d");
  EXPECT_EQ(bad_window->status, 400);
  EXPECT_NE(bad_window->body.find("window"), std::string::npos);
  EXPECT_EQ(get("/v1/badges/api/response-time.svg?window=1y")->status, 400);
}

TEST_P(StatusHttp, ThePageNeedsTheReadTokenUnlessPublic) {
  ApiOptions options;
  options.read_token = "read-token-0123456789";
  options.status_page_title = "Private";
  start(options);
  EXPECT_EQ(get("/")->status, 401);
  EXPECT_EQ(get("/v1/badges/x/status.svg")->status, 401);
  EXPECT_EQ(get("/", "read-token-0123456789")->status, 200);
  EXPECT_EQ(get("/openapi.json")->status, 200) << "the documentation is open";
  EXPECT_EQ(get("/docs")->status, 200);

  server.reset();
  options.status_page_public = true;
  start(options);
  const auto res = get("/");
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(parse_markup(res->body, MarkupMode::html).all("h1").at(0)->all_text(), "Private");
  EXPECT_EQ(get("/v1/badges/x/status.svg")->status, 404);
  EXPECT_EQ(get("/v1/services")->status, 401) << "the API stays protected";
}

TEST(MarkupCheck, RejectsBrokenMarkup) {
  EXPECT_THROW(parse_markup("<p><b>x</p></b>", MarkupMode::html), std::runtime_error);
  EXPECT_THROW(parse_markup("<p title=x>y</p>", MarkupMode::html), std::runtime_error);
  EXPECT_THROW(parse_markup("<p>a & b</p>", MarkupMode::html), std::runtime_error);
  EXPECT_THROW(parse_markup("<p>a < b</p>", MarkupMode::html), std::runtime_error);
  EXPECT_THROW(parse_markup("<svg><g></svg>", MarkupMode::xml), std::runtime_error);
  EXPECT_THROW(parse_markup("<meta charset=\"x\">", MarkupMode::xml), std::runtime_error);
  EXPECT_THROW(parse_markup("<a></a><b></b>", MarkupMode::xml), std::runtime_error);
  EXPECT_NO_THROW(
      parse_markup("<!DOCTYPE html><html><head><meta charset=\"utf-8\"></head>"
                   "<body><p>a &amp; b &#8592;</p></body></html>",
                   MarkupMode::html));
}

}  // namespace
}  // namespace vigil

// Reads are the same on both backends: the same history, written through the Store and
// AlertStore contracts to a SQLite file and to a PostgreSQL schema, is read through every route
// whose answer depends on the data only (not on when it is asked) of a real ApiServer on each,
// over real HTTP, and the two bodies must be equal byte for byte. Times with milliseconds,
// awkward floats, nulls, Unicode and several pages make differences in encoding, rounding or
// ordering show.
#include <gtest/gtest.h>
#include <httplib.h>
#include <prometheus/registry.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "api/server.h"
#include "api/status_data.h"
#include "api/status_page.h"
#include "core/logging.h"
#include "storage/alert_store.h"
#include "storage/store.h"
#include "support/store_backends.h"
#include "support/target_server.h"

namespace vigil {
namespace {

using test::StoreBackend;

constexpr std::int64_t kT0Ms = 1'700'000'000'123;  // not a whole second
constexpr const char* kWriteToken = "write-token-0123456789abcdef";

// A real ApiServer on a new database of one backend.
struct Served {
  explicit Served(StoreBackend backend)
      : database(backend),
        store(database.open()),
        alerts(database.database()->open_alert_store()) {}
  ~Served() {
    if (server) server->stop();
  }

  void start() {
    ApiOptions options;
    options.alerts = alerts.get();
    // With a write token, a reader without it is shown no push token (a random secret that
    // differs between the two databases).
    options.write_token = kWriteToken;
    server = std::make_unique<ApiServer>(
        *store, registry, [] { return HealthReport{}; }, options);
    client = std::make_unique<httplib::Client>("127.0.0.1", server->start("127.0.0.1", 0));
  }

  test::TestDatabase database;
  std::unique_ptr<Store> store;
  std::unique_ptr<AlertStore> alerts;
  prometheus::Registry registry;
  std::unique_ptr<ApiServer> server;
  std::unique_ptr<httplib::Client> client;
  // The alerts' external_reference_ids: random, so different in each database.
  std::vector<std::string> reference_ids;
};

TimePoint at(std::int64_t offset_ms) { return from_unix_ms(kT0Ms + offset_ms); }

// The same history on any backend: four services (one with every optional field set, one a
// heartbeat, one never probed, one from the services file and deactivated), ticks with phases and
// without, up and down, with errors, messages and awkward response times, the events they open, and
// two alerts with notifications in every state.
std::vector<ServiceId> seed(Served& served) {
  Store& store = *served.store;
  ServiceSpec full;
  full.name = "payments ✓ \"api\"";
  full.url = "https://user:secret@pay.test/health?key=value";
  full.interval = Millis(30'000);
  full.timeout = Millis(2'500);
  full.method = "POST";
  full.headers = {{"X-One", "1"}, {"Accept", "application/json"}};
  full.expected_status = {StatusRange{200, 204}, StatusRange{301, 301}};
  full.probe.body = R"({"ping":true})";
  full.probe.failure_threshold = 2;
  full.probe.retry_interval = Millis(5'000);
  full.team = "payments";
  full.priority = 1;
  full.runbook = "https://runbooks.test/payments";
  full.tags = {"prod", "eu-west", "édition"};
  full.muted = true;
  full.muted_until = at(86'400'000);
  full.alert_channels = {"hook"};
  full.repeat_every = Millis(600'000);
  ServiceSpec beat;
  beat.name = "nightly-backup";
  beat.kind = ServiceKind::heartbeat;
  beat.interval = Millis(86'400'000);
  beat.grace = Millis(1'800'000);
  ServiceSpec idle;
  idle.name = "idle";
  idle.url = "http://idle.test/";
  ServiceSpec from_file;
  from_file.name = "from the file";
  from_file.url = "tcp://127.0.0.1:5432";
  from_file.interval = Millis(1'500);
  store.sync_services({from_file}, at(-7'200'000));
  const ServiceId file_id = store.active_services().at(0).id;
  std::vector<ServiceId> ids = {store.create_service(full, at(-3'600'000)).id,
                                store.create_service(beat, at(-3'600'000)).id,
                                store.create_service(idle, at(-1'800'000)).id, file_id};

  const std::vector<double> response_ms = {0.001,   12.345678, 1e-3 * 7, 999.999, 120000.5, 0.1,
                                           33.3333, 2.5,       1.0,      0.0,     47.125};
  std::vector<TickRecord> batch;
  Metric metric;
  std::optional<bool> last;
  for (std::size_t i = 0; i < response_ms.size(); ++i) {
    TickRecord record;
    record.tick.service_id = ids[0];
    // Ticks 30 s apart, off whole seconds, but two in one millisecond (seq orders them).
    const auto slot = static_cast<std::int64_t>(i == 5 ? 4 : i);
    record.tick.ts = at(slot * 30'000 + (slot % 3) * 7);
    record.tick.up = i < 3 || i > 6;
    if (record.tick.up || i == 4) record.tick.status_code = record.tick.up ? 200 : 503;
    record.tick.response_ms = response_ms[i];
    if (!record.tick.up) record.tick.error = i == 4 ? "status 503 — «unavailable»" : "timeout";
    record.tick.region = i % 2 ? "eu-west" : "local";
    if (i % 2 == 0) record.tick.phases = PhaseTimings{0.012, 0.5, response_ms[i] / 4, 0.25, 0.125};
    metric.add(record.tick.up, record.tick.response_ms);
    record.metric_after = metric;
    if (last != record.tick.up)
      record.opens_event = record.tick.up ? EventKind::uptime : EventKind::downtime;
    last = record.tick.up;
    batch.push_back(record);
  }
  Metric beats;
  for (int i = 0; i < 3; ++i) {
    TickRecord record;
    record.tick.service_id = ids[1];
    record.tick.ts = at(i * 3'600'000 + 1);
    record.tick.up = i != 1;
    // A NUL, which PostgreSQL's text cannot hold: written as U+FFFD on both.
    record.tick.message = i == 1 ? "disk full\nline two" + std::string(1, '\0') : "";
    record.tick.region = "push";
    beats.add(record.tick.up, 0);
    record.metric_after = beats;
    record.opens_event = record.tick.up ? EventKind::uptime : EventKind::downtime;
    batch.push_back(record);
  }
  TickRecord file_tick;
  file_tick.tick.service_id = file_id;
  file_tick.tick.ts = at(-60'000);
  file_tick.tick.up = true;
  file_tick.tick.response_ms = 0.75;
  file_tick.tick.region = "local";
  file_tick.metric_after.add(true, 0.75);
  file_tick.opens_event = EventKind::uptime;
  batch.push_back(file_tick);
  store.apply(batch);
  // The file's service, deactivated: still readable by id, with its history.
  store.set_service_active(file_id, false, at(-30'000));

  AlertStore& alerts = *served.alerts;
  const auto notify = [](const AlertRecord& alert) {
    return std::vector<NewNotification>{
        {"hook", "trigger", R"({"alert":")" + alert.alert_name + "\"}", false},
        {"pager", "trigger", "{}", true}};
  };
  const auto none = [](const AlertRecord&) { return std::vector<NewNotification>{}; };
  const AlertRecord first =
      alerts.open_alert(ids[0], "payments down", "status 503 & <timeout>" + std::string(1, '\0'),
                        std::string("up"), at(90'000), notify);
  alerts.close_alert(first.alert_id, at(210'500), none);
  const AlertRecord second = alerts.open_alert(ids[1], "nightly-backup down", "no beat",
                                               std::nullopt, at(3'600'001), notify);
  for (const auto& notification : alerts.notifications(first.alert_id))
    if (notification.channel == "hook") alerts.record_sent(notification.id, 1, 204, at(91'250));
  for (const auto& notification : alerts.notifications(second.alert_id))
    if (notification.channel == "hook")
      alerts.record_failed(notification.id, 3, 500, std::string("server\0error", 12),
                           at(3'700'000));
  served.reference_ids = {first.external_reference_id, second.external_reference_id};
  return ids;
}

// `body` with each of `served`'s reference ids replaced by its place in the list.
std::string without_reference_ids(std::string body, const Served& served) {
  for (std::size_t i = 0; i < served.reference_ids.size(); ++i) {
    const std::string& id = served.reference_ids[i];
    for (auto at = body.find(id); at != std::string::npos; at = body.find(id))
      body.replace(at, id.size(), "<reference " + std::to_string(i) + ">");
  }
  return body;
}

// The same history seeded into a served store of each backend; skipped when there is no
// PostgreSQL server.
class ApiBackendParity : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto reason = test::unavailable(StoreBackend::postgres)) GTEST_SKIP() << *reason;
    set_log_level(LogLevel::error);
    sqlite_ = std::make_unique<Served>(StoreBackend::sqlite);
    postgres_ = std::make_unique<Served>(StoreBackend::postgres);
    ids_ = seed(*sqlite_);
    ASSERT_EQ(seed(*postgres_), ids_);
  }

  std::unique_ptr<Served> sqlite_;
  std::unique_ptr<Served> postgres_;
  std::vector<ServiceId> ids_;  // the seeded services, the same on both
};

TEST_F(ApiBackendParity, EveryDataRouteAnswersTheSameBytesOnBothBackends) {
  sqlite_->start();
  postgres_->start();

  const auto seconds = [](std::int64_t offset_ms) {
    const std::int64_t ms = kT0Ms + offset_ms;
    return std::to_string(ms / 1000) + "." + std::to_string(ms % 1000 + 1000).substr(1);
  };
  // The windows of /metrics and /series are whole seconds.
  const auto whole = [](std::int64_t offset_ms) {
    return std::to_string((kT0Ms + offset_ms) / 1000);
  };
  std::vector<std::string> routes = {
      "/v1/services",
      "/v1/services?limit=2",
      "/v1/services?team=payments",
      "/v1/services?tag=prod",
      "/v1/services?kind=heartbeat",
      "/v1/services?muted=true",
      "/v1/services?offset=1&limit=1",
      "/v1/alerts",
      "/v1/alerts?limit=1",
      "/v1/alerts?active=true",
      "/v1/alerts?service_id=" + std::to_string(ids_[0]),
      "/v1/uptime?from=" + whole(-3'600'000) + "&to=" + whole(7'200'000),
  };
  for (const ServiceId id : ids_) {
    const std::string service = "/v1/services/" + std::to_string(id);
    for (const std::string& rest :
         {std::string(), std::string("/events"), std::string("/events?limit=2"),
          std::string("/events?before=3"), std::string("/ticks"), std::string("/ticks?limit=3"),
          "/ticks?from=" + seconds(30'000) + "&to=" + seconds(150'007),
          "/metrics?from=" + whole(-60'000) + "&to=" + whole(7'200'000),
          "/series?from=" + whole(-60'000) + "&to=" + whole(7'200'000) + "&step=60",
          "/series?from=" + whole(-3'600'000) + "&to=" + whole(7'200'000) + "&step=3600",
          std::string("/badges/status.svg")})
      routes.push_back(service + rest);
  }
  for (const auto& alert : sqlite_->alerts->alerts(AlertQuery{}))
    routes.push_back("/v1/alerts/" + std::to_string(alert.alert_id));

  for (const std::string& route : routes) {
    const auto from_sqlite = sqlite_->client->Get(route.c_str());
    const auto from_postgres = postgres_->client->Get(route.c_str());
    ASSERT_TRUE(from_sqlite && from_postgres) << route;
    EXPECT_EQ(from_sqlite->status, 200) << route << ": " << from_sqlite->body;
    EXPECT_EQ(from_postgres->status, from_sqlite->status) << route;
    EXPECT_EQ(without_reference_ids(from_postgres->body, *postgres_),
              without_reference_ids(from_sqlite->body, *sqlite_))
        << route;
    // A paged list's next page too (a cursor does not combine with the older offset and before).
    const auto next = from_sqlite->body.find("\"next\":\"");
    const bool older_paging =
        route.find("offset=") != std::string::npos || route.find("before=") != std::string::npos;
    if (next != std::string::npos && !older_paging) {
      const auto start = next + 8;
      const std::string cursor =
          from_sqlite->body.substr(start, from_sqlite->body.find('"', start) - start);
      const std::string page =
          route + (route.find('?') == std::string::npos ? "?" : "&") + "cursor=" + cursor;
      const auto sqlite_page = sqlite_->client->Get(page.c_str());
      const auto postgres_page = postgres_->client->Get(page.c_str());
      ASSERT_TRUE(sqlite_page && postgres_page) << page;
      EXPECT_EQ(sqlite_page->status, 200) << page << ": " << sqlite_page->body;
      EXPECT_EQ(without_reference_ids(postgres_page->body, *postgres_),
                without_reference_ids(sqlite_page->body, *sqlite_))
          << page;
    }
  }
}

// The status page and a service's page are drawn for the time they are asked at: asked of each
// store for one instant, they must be the same HTML.
TEST_F(ApiBackendParity, ThePagesAtOneInstantAreTheSameHtmlOnBothBackends) {
  // Within the seeded hours, a day later (the 24 h columns and charts hold all of it), and
  // after the month-long windows have passed it.
  for (const TimePoint now : {at(7'200'000), at(86'400'000 + 1'234), at(40LL * 86'400'000)}) {
    EXPECT_EQ(render_status_page(load_status_page(*postgres_->store, "Acme", now, 1)),
              render_status_page(load_status_page(*sqlite_->store, "Acme", now, 1)))
        << to_unix_ms(now);
    for (const ServiceId id : ids_) {
      const auto from_sqlite =
          load_service_page(*sqlite_->store, sqlite_->alerts.get(), "Acme", id, now);
      const auto from_postgres =
          load_service_page(*postgres_->store, postgres_->alerts.get(), "Acme", id, now);
      ASSERT_TRUE(from_sqlite && from_postgres) << id;
      EXPECT_EQ(without_reference_ids(render_service_page(*from_postgres), *postgres_),
                without_reference_ids(render_service_page(*from_sqlite), *sqlite_))
          << id << " at " << to_unix_ms(now);
    }
  }
}

}  // namespace
}  // namespace vigil

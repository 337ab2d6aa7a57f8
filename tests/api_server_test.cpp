// The HTTP API end to end: a real ApiServer on 127.0.0.1, real HTTP calls, a real store of each
// backend (a SQLite file, a PostgreSQL schema) seeded through the Store contract (sync_services +
// apply).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <prometheus/collectable.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "api/server.h"
#include "storage/store.h"
#include "support/store_backends.h"
#include "support/target_server.h"

namespace vigil {
namespace {

using nlohmann::json;

// Seeded history, in unix seconds. "alpha" is up on every tick; "beta" goes up -> down at
// kT0 + 20, so it has one closed uptime event and one open downtime event.
constexpr std::int64_t kT0 = 1'700'000'000;
constexpr std::int64_t kSynced = kT0 - 60;

struct Reply {
  int status = 0;
  json body;
  std::string raw;
  httplib::Headers headers;
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

class ApiServerTest : public test::StoreBackendTest {
 protected:
  void SetUp() override {
    StoreBackendTest::SetUp();
    if (IsSkipped()) return;
    store_ = database().open();
    seed();
    ApiOptions options;
    options.health_clock = [this] { return from_unix_ms(clock_ms_.load()); };
    options.health_silent_after = Millis(10'000);
    server_ = std::make_unique<ApiServer>(
        *store_, registry_,
        [this] {
          HealthReport report;
          report.parts.push_back(
              PartProgress{"writer", "local", from_unix_ms(writer_progress_ms_.load())});
          std::lock_guard lock(storage_failure_mutex_);
          report.storage_failure = storage_failure_;
          return report;
        },
        options);
    port_ = server_->start("127.0.0.1", 0);
    ASSERT_GT(port_, 0);
    client_ = std::make_unique<httplib::Client>("127.0.0.1", port_);
    client_->set_read_timeout(std::chrono::seconds(5));
    // One connection: the server handles its requests in order, so a request's metrics are
    // recorded before the next request on it (the /metrics tests rely on this).
    client_->set_keep_alive(true);
  }

  void TearDown() override {
    client_.reset();
    if (server_) server_->stop();
  }

  void seed() {
    ServiceSpec alpha;
    alpha.name = "alpha";
    alpha.url = "http://alpha.test/health";
    alpha.interval = Millis(10'000);
    ServiceSpec beta;
    beta.name = "beta";
    beta.url = "http://beta.test/health";
    beta.interval = Millis(10'000);
    store_->sync_services({alpha, beta}, from_unix_ms(kSynced * 1000));
    for (const auto& service : store_->active_services())
      (service.spec.name == "alpha" ? alpha_id_ : beta_id_) = service.id;
    ASSERT_GT(alpha_id_, 0);
    ASSERT_GT(beta_id_, 0);

    std::vector<TickRecord> batch;
    Metric alpha_metric;
    Metric beta_metric;
    add(batch, alpha_id_, alpha_metric, 0, true, 40, EventKind::uptime);
    add(batch, beta_id_, beta_metric, 0, true, 50, EventKind::uptime);
    add(batch, alpha_id_, alpha_metric, 10, true, 60, std::nullopt);
    add(batch, beta_id_, beta_metric, 10, true, 70, std::nullopt);
    add(batch, alpha_id_, alpha_metric, 20, true, 50, std::nullopt);
    add(batch, beta_id_, beta_metric, 20, false, 1000, EventKind::downtime);
    add(batch, beta_id_, beta_metric, 30, false, 1200, std::nullopt);
    store_->apply(batch);
  }

  static void add(std::vector<TickRecord>& batch, ServiceId id, Metric& metric,
                  std::int64_t offset_s, bool up, double ms, std::optional<EventKind> opens) {
    TickRecord record;
    record.tick.service_id = id;
    record.tick.ts = from_unix_ms((kT0 + offset_s) * 1000);
    record.tick.up = up;
    if (up) record.tick.status_code = 200;
    if (!up) record.tick.error = "connection refused";
    record.tick.response_ms = ms;
    record.tick.region = "local";
    metric.add(up, ms);
    record.metric_after = metric;
    record.opens_event = opens;
    batch.push_back(record);
  }

  static Reply to_reply(const httplib::Result& result) {
    if (!result) throw std::runtime_error("request failed: " + httplib::to_string(result.error()));
    Reply reply;
    reply.status = result->status;
    reply.raw = result->body;
    reply.headers = result->headers;
    if (reply.header("Content-Type") == "application/json") reply.body = json::parse(result->body);
    return reply;
  }

  Reply get(const std::string& path) { return to_reply(client_->Get(path.c_str())); }

  std::string service_path(ServiceId id, const std::string& rest = "") const {
    return "/v1/services/" + std::to_string(id) + rest;
  }

  // Breaks the database under the open store, so every later read fails with StorageError and
  // ping_failure() names the database. SQLite: overwrites the file and its WAL and shm files
  // ("file is not a database"). PostgreSQL: drops every table of the test's schema.
  void corrupt_database() {
    if (backend() == test::StoreBackend::postgres) {
      database().exec(
          "DO $$ DECLARE t text; BEGIN FOR t IN SELECT tablename FROM pg_tables WHERE schemaname "
          "= current_schema() LOOP EXECUTE 'DROP TABLE IF EXISTS ' || quote_ident(t) || ' "
          "CASCADE'; END LOOP; END $$");
      return;
    }
    const auto folder = std::filesystem::path(database().location()).parent_path();
    for (const auto& entry : std::filesystem::directory_iterator(folder)) {
      const auto size = entry.file_size();
      std::ofstream file(entry.path(), std::ios::binary | std::ios::in | std::ios::out);
      file << std::string(size, '\xAB');
    }
  }

  // How ping_failure() names the database: the file, or the PostgreSQL database.
  std::string database_name() {
    return backend() == test::StoreBackend::sqlite ? database().location()
                                                   : test::kPostgresTestDatabase;
  }

  // Asserts the error envelope and returns its message.
  static std::string expect_error(const Reply& reply, int status) {
    EXPECT_EQ(reply.status, status) << reply.raw;
    EXPECT_EQ(reply.header("Content-Type"), "application/json");
    EXPECT_EQ(reply.body.value("status", 0), status) << reply.raw;
    EXPECT_TRUE(reply.body.contains("status_desc")) << reply.raw;
    EXPECT_TRUE(reply.body["data"].is_object()) << reply.raw;
    return reply.body.value("error", "<no error field>");
  }

  test::TempDir dir_;  // files of the test's own (promtool's input and output)
  std::unique_ptr<Store> store_;
  prometheus::Registry registry_;
  // The health clock, and when the writer last progressed by it (just now: alive).
  std::atomic<std::int64_t> clock_ms_{kT0 * 1000};
  std::atomic<std::int64_t> writer_progress_ms_{kT0 * 1000 - 400};
  std::mutex storage_failure_mutex_;
  std::string storage_failure_;  // what the Writer's failure() would say; guarded by the mutex
  std::unique_ptr<ApiServer> server_;
  std::unique_ptr<httplib::Client> client_;
  int port_ = 0;
  ServiceId alpha_id_ = 0;
  ServiceId beta_id_ = 0;
};

INSTANTIATE_TEST_SUITE_P(Backends, ApiServerTest, test::kStoreBackends, test::backend_name);

// The server's own behaviour (parsing, routing, methods, limits, health and metrics from its
// callbacks and registry), where the store is incidental: SQLite only.
class ApiHttpTest : public ApiServerTest {};
INSTANTIATE_TEST_SUITE_P(SqliteOnly, ApiHttpTest, test::kSqliteOnly, test::backend_name);

TEST_P(ApiServerTest, ListsServicesInSeedShape) {
  const Reply reply = get("/v1/services");
  ASSERT_EQ(reply.status, 200) << reply.raw;
  EXPECT_EQ(reply.header("Content-Type"), "application/json");
  EXPECT_EQ(reply.body["status"], 200);
  EXPECT_EQ(reply.body["status_desc"], "OK");
  EXPECT_FALSE(reply.body.contains("error"));
  const json& list = reply.body["data"]["services"]["data"];
  ASSERT_TRUE(list.is_array());
  ASSERT_EQ(list.size(), 2u);

  const json& alpha = list[0];
  EXPECT_EQ(alpha["id"], alpha_id_);
  EXPECT_EQ(alpha["name"], "alpha");
  EXPECT_EQ(alpha["url"], "http://alpha.test/health");
  EXPECT_EQ(alpha["created_at"], kSynced);
  EXPECT_EQ(alpha["updated_at"], kSynced);
  // The seeded ticks are from 2023, long past 2 x interval + timeout: stale, whatever the event.
  EXPECT_EQ(alpha["status"], "stale");
  EXPECT_EQ(alpha["last_tick_at"], kT0 + 20);
  EXPECT_EQ(alpha["active"], true);
  EXPECT_DOUBLE_EQ(alpha["interval_seconds"].get<double>(), 10.0);
  EXPECT_EQ(alpha["current_status"]["event"], "uptime");
  EXPECT_EQ(alpha["current_status"]["date_started"], kT0);
  EXPECT_TRUE(alpha["current_status"]["date_ended"].is_null());
  EXPECT_EQ(alpha["latest_event"]["data"], alpha["current_status"]);
  const json& am = alpha["metric"]["data"];
  EXPECT_EQ(am["tick_count"], 3);
  EXPECT_EQ(am["up_count"], 3);
  EXPECT_EQ(am["down_count"], 0);
  EXPECT_DOUBLE_EQ(am["uptime_percent"].get<double>(), 100.0);
  EXPECT_DOUBLE_EQ(am["average_response_time_ms"].get<double>(), 50.0);

  const json& beta = list[1];
  EXPECT_EQ(beta["id"], beta_id_);
  EXPECT_EQ(beta["name"], "beta");
  EXPECT_EQ(beta["status"], "stale");
  EXPECT_EQ(beta["last_tick_at"], kT0 + 30);
  EXPECT_EQ(beta["current_status"]["event"], "downtime");
  EXPECT_EQ(beta["current_status"]["date_started"], kT0 + 20);
  EXPECT_TRUE(beta["current_status"]["date_ended"].is_null());
  for (const char* key : {"id", "created_at", "updated_at"})
    EXPECT_TRUE(beta["current_status"].contains(key)) << key;
  EXPECT_EQ(beta["latest_event"]["data"], beta["current_status"]);
  const json& bm = beta["metric"]["data"];
  EXPECT_EQ(bm["tick_count"], 4);
  EXPECT_EQ(bm["up_count"], 2);
  EXPECT_EQ(bm["down_count"], 2);
  EXPECT_DOUBLE_EQ(bm["uptime_percent"].get<double>(), 50.0);
  EXPECT_DOUBLE_EQ(bm["average_response_time_ms"].get<double>(), 580.0);
}

TEST_P(ApiServerTest, NeverProbedServiceHasNullCurrentStatus) {
  ServiceSpec gamma;
  gamma.name = "gamma";
  gamma.url = "http://gamma.test/";
  ServiceSpec alpha, beta;
  for (const auto& s : store_->active_services()) (s.spec.name == "alpha" ? alpha : beta) = s.spec;
  store_->sync_services({alpha, beta, gamma}, from_unix_ms(kT0 * 1000));
  const Reply reply = get("/v1/services");
  ASSERT_EQ(reply.status, 200) << reply.raw;
  const json& list = reply.body["data"]["services"]["data"];
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[2]["name"], "gamma");
  EXPECT_TRUE(list[2]["current_status"].is_null());
  EXPECT_TRUE(list[2]["latest_event"]["data"].is_null());
  EXPECT_EQ(list[2]["metric"]["data"]["tick_count"], 0);
  EXPECT_EQ(list[2]["status"], "stale") << "never probed since it was added in 2023";
  EXPECT_TRUE(list[2]["last_tick_at"].is_null());
}

TEST_P(ApiServerTest, GetsOneService) {
  const Reply reply = get(service_path(beta_id_));
  ASSERT_EQ(reply.status, 200) << reply.raw;
  const json& service = reply.body["data"]["service"];
  EXPECT_EQ(service["id"], beta_id_);
  EXPECT_EQ(service["name"], "beta");
  EXPECT_EQ(service["current_status"]["event"], "downtime");
  EXPECT_EQ(service["metric"]["data"]["tick_count"], 4);
}

TEST_P(ApiServerTest, UnknownServiceIs404OnEveryServiceRoute) {
  const ServiceId unknown = beta_id_ + 1000;
  for (const std::string rest : {"", "/events", "/ticks"}) {
    const std::string message = expect_error(get(service_path(unknown, rest)), 404);
    EXPECT_NE(message.find(std::to_string(unknown)), std::string::npos) << rest << ": " << message;
  }
}

TEST_P(ApiHttpTest, BadServiceIdIs400) {
  for (const std::string id : {"abc", "-1", "0", "99999999999999999999", "1x", "+1", "%201"}) {
    const Reply reply = get("/v1/services/" + id);
    const std::string message = expect_error(reply, 400);
    EXPECT_NE(message.find("service id"), std::string::npos) << id << ": " << message;
    expect_error(get("/v1/services/" + id + "/events"), 400);
    expect_error(get("/v1/services/" + id + "/ticks"), 400);
  }
}

// Parameters reach the handlers percent-decoded: bytes that are not UTF-8 are refused for every
// route, before any handler quotes or looks them up, naming what was wrong.
TEST_P(ApiHttpTest, ParametersAndPathSegmentsThatAreNotUtf8Are400NamingThem) {
  const std::string alpha = std::to_string(alpha_id_);
  struct Case {
    std::string path;
    std::string error;
  };
  for (const Case& c : std::vector<Case>{
           {"/v1/services?team=%FF", "team: not valid UTF-8"},
           {"/v1/services?tag=a%C3", "tag: not valid UTF-8"},             // cut inside a character
           {"/v1/services?cursor=%ED%A0%80", "cursor: not valid UTF-8"},  // a surrogate
           {"/v1/services?limit=%C0%B1", "limit: not valid UTF-8"},       // overlong "1"
           {"/v1/services/" + alpha + "/ticks?from=%FF", "from: not valid UTF-8"},
           {"/v1/services/%FF", "{id} in the path: not valid UTF-8"},
           {"/v1/services/%FF/events", "{id} in the path: not valid UTF-8"},
           {"/v1/badges/%E9t%E9/status.svg", "{name} in the path: not valid UTF-8"},
           {"/v1/services?%FF=1", "query parameter \"\xEF\xBF\xBD\": name is not valid UTF-8"},
       }) {
    const Reply reply = get(c.path);
    EXPECT_EQ(expect_error(reply, 400), c.error) << c.path;
  }
  // Valid UTF-8 is a value like any other.
  EXPECT_EQ(get("/v1/services?team=%C3%A9quipe").status, 200);
}

TEST_P(ApiHttpTest, UnknownRouteIs404Envelope) {
  for (const std::string path : {"/nope", "/v1", "/v1/services/1/other", "/v1/services/"}) {
    const std::string message = expect_error(get(path), 404);
    EXPECT_EQ(message, "unknown route") << path;
  }
}

TEST_P(ApiServerTest, EventsNewestFirst) {
  const Reply reply = get(service_path(beta_id_, "/events"));
  ASSERT_EQ(reply.status, 200) << reply.raw;
  const json& events = reply.body["data"]["events"]["data"];
  ASSERT_EQ(events.size(), 2u) << reply.raw;
  EXPECT_EQ(events[0]["event"], "downtime");
  EXPECT_EQ(events[0]["date_started"], kT0 + 20);
  EXPECT_TRUE(events[0]["date_ended"].is_null());
  EXPECT_EQ(events[1]["event"], "uptime");
  EXPECT_EQ(events[1]["date_started"], kT0);
  EXPECT_EQ(events[1]["date_ended"], kT0 + 20);
  EXPECT_GT(events[0]["id"].get<std::int64_t>(), events[1]["id"].get<std::int64_t>());
  // Fewer than `limit`: nothing more to page.
  EXPECT_TRUE(reply.body["data"]["events"]["next"].is_null());
}

TEST_P(ApiServerTest, EventsPageWithLimitAndCursor) {
  const Reply first = get(service_path(beta_id_, "/events?limit=1"));
  ASSERT_EQ(first.status, 200) << first.raw;
  const json& page1 = first.body["data"]["events"];
  ASSERT_EQ(page1["data"].size(), 1u);
  EXPECT_EQ(page1["data"][0]["event"], "downtime");
  ASSERT_TRUE(page1["next"].is_string()) << first.raw;

  const Reply second =
      get(service_path(beta_id_, "/events?limit=1&cursor=" + page1["next"].get<std::string>()));
  ASSERT_EQ(second.status, 200) << second.raw;
  const json& page2 = second.body["data"]["events"];
  ASSERT_EQ(page2["data"].size(), 1u);
  EXPECT_EQ(page2["data"][0]["event"], "uptime");
  // The last page says so itself: no empty page after it.
  EXPECT_TRUE(page2["next"].is_null()) << second.raw;

  // The older `before` (an event id) still starts a page below that event.
  const Reply before =
      get(service_path(beta_id_, "/events?limit=1&before=" +
                                     std::to_string(page1["data"][0]["id"].get<std::int64_t>())));
  ASSERT_EQ(before.status, 200) << before.raw;
  EXPECT_EQ(before.body["data"]["events"]["data"], page2["data"]);
  EXPECT_TRUE(before.body["data"]["events"]["next"].is_null());
}

TEST_P(ApiHttpTest, EventsRejectBadLimitAndBefore) {
  for (const std::string query : {"limit=0", "limit=1001", "limit=x", "limit=", "limit=-5"}) {
    const std::string message = expect_error(get(service_path(beta_id_, "/events?" + query)), 400);
    EXPECT_NE(message.find("limit"), std::string::npos) << query << ": " << message;
  }
  EXPECT_EQ(get(service_path(beta_id_, "/events?limit=1000")).status, 200);
  const std::string message = expect_error(get(service_path(beta_id_, "/events?before=x")), 400);
  EXPECT_NE(message.find("before"), std::string::npos) << message;
}

TEST_P(ApiServerTest, TicksNewestFirstInRange) {
  const Reply all = get(service_path(beta_id_, "/ticks"));
  ASSERT_EQ(all.status, 200) << all.raw;
  const json& ticks = all.body["data"]["ticks"]["data"];
  ASSERT_EQ(ticks.size(), 4u);
  EXPECT_EQ(ticks[0]["ts"], kT0 + 30);
  EXPECT_EQ(ticks[0]["ts_ms"], (kT0 + 30) * 1000);
  EXPECT_EQ(ticks[0]["up"], false);
  EXPECT_TRUE(ticks[0]["status_code"].is_null());
  EXPECT_EQ(ticks[0]["error"], "connection refused");
  EXPECT_EQ(ticks[3]["ts"], kT0);
  EXPECT_EQ(ticks[3]["status_code"], 200);

  const Reply range = get(service_path(
      beta_id_, "/ticks?from=" + std::to_string(kT0 + 10) + "&to=" + std::to_string(kT0 + 20)));
  ASSERT_EQ(range.status, 200) << range.raw;
  const json& inside = range.body["data"]["ticks"]["data"];
  ASSERT_EQ(inside.size(), 2u) << range.raw;
  EXPECT_EQ(inside[0]["ts"], kT0 + 20);
  EXPECT_EQ(inside[1]["ts"], kT0 + 10);
}

TEST_P(ApiServerTest, TicksAcceptFractionalSecondsAsInclusiveBounds) {
  // 10.0005 s is after the tick at exactly 10 s; 20.25 s is after the tick at 20 s.
  const Reply reply =
      get(service_path(beta_id_, "/ticks?from=" + std::to_string(kT0 + 10) +
                                     ".0005&to=" + std::to_string(kT0 + 20) + ".25"));
  ASSERT_EQ(reply.status, 200) << reply.raw;
  const json& ticks = reply.body["data"]["ticks"]["data"];
  ASSERT_EQ(ticks.size(), 1u) << reply.raw;
  EXPECT_EQ(ticks[0]["ts"], kT0 + 20);
}

TEST_P(ApiServerTest, TicksLimit) {
  const Reply reply = get(service_path(beta_id_, "/ticks?limit=1"));
  ASSERT_EQ(reply.status, 200) << reply.raw;
  const json& ticks = reply.body["data"]["ticks"]["data"];
  ASSERT_EQ(ticks.size(), 1u);
  EXPECT_EQ(ticks[0]["ts"], kT0 + 30);
  expect_error(get(service_path(beta_id_, "/ticks?limit=0")), 400);
  expect_error(get(service_path(beta_id_, "/ticks?limit=1001")), 400);
}

TEST_P(ApiHttpTest, TicksRejectBadTimesNamingTheParameter) {
  for (const std::string name : {"from", "to"}) {
    for (const std::string value :
         {"abc", "1e9", "-5", "1.", ".5", "nan", "1%20", "99999999999999999"}) {
      const std::string message =
          expect_error(get(service_path(beta_id_, "/ticks?" + name + "=" + value)), 400);
      EXPECT_EQ(message.rfind(name + " ", 0), 0u) << name << "=" << value << ": " << message;
    }
  }
  const std::string message =
      expect_error(get(service_path(beta_id_, "/ticks?from=" + std::to_string(kT0 + 20) +
                                                  "&to=" + std::to_string(kT0 + 10))),
                   400);
  EXPECT_NE(message.find("from"), std::string::npos) << message;
}

TEST_P(ApiHttpTest, WrongMethodOnKnownPathIs405WithAllow) {
  const Reply put = to_reply(client_->Put("/v1/services", "{}", "application/json"));
  EXPECT_NE(expect_error(put, 405).find("PUT"), std::string::npos);
  EXPECT_EQ(put.header("Allow"), "GET, HEAD, POST");
  const Reply put_one =
      to_reply(client_->Put(service_path(alpha_id_).c_str(), "{}", "application/json"));
  expect_error(put_one, 405);
  EXPECT_EQ(put_one.header("Allow"), "GET, HEAD, PATCH, DELETE");
  const Reply post_events =
      to_reply(client_->Post(service_path(alpha_id_, "/events").c_str(), "{}", "application/json"));
  expect_error(post_events, 405);
  EXPECT_EQ(post_events.header("Allow"), "GET, HEAD");
  // An unknown path stays 404 whatever the method.
  expect_error(to_reply(client_->Post("/nope", "{}", "application/json")), 404);
}

// One raw HTTP/1.1 exchange, for requests httplib::Client cannot make (no Content-Length).
// Returns the status line, or "" when nothing arrives within `wait`.
std::string raw_status_line(int port, const std::string& request, std::chrono::milliseconds wait) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{static_cast<time_t>(wait.count() / 1000),
             static_cast<suseconds_t>(wait.count() % 1000 * 1000)};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string reply;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::send(fd, request.data(), request.size(), 0) == static_cast<ssize_t>(request.size())) {
    char buffer[512];
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n > 0) reply.assign(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return reply.substr(0, reply.find("\r\n"));
}

TEST_P(ApiHttpTest, WrongMethodWithoutDeclaredBodyIsAnsweredAtOnce) {
  // What `curl -X POST` sends: no Content-Length, so no body.
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(raw_status_line(port_, "PUT /v1/services HTTP/1.1\r\nHost: x\r\n\r\n",
                            std::chrono::milliseconds(2000)),
            "HTTP/1.1 405 Method Not Allowed");
  // A route that takes the method answers at once too (here: 400, the body is missing).
  EXPECT_EQ(raw_status_line(port_, "POST /v1/services HTTP/1.1\r\nHost: x\r\n\r\n",
                            std::chrono::milliseconds(2000)),
            "HTTP/1.1 400 Bad Request");
  EXPECT_EQ(raw_status_line(port_, "DELETE /nope HTTP/1.1\r\nHost: x\r\n\r\n",
                            std::chrono::milliseconds(2000)),
            "HTTP/1.1 404 Not Found");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
}

TEST_P(ApiHttpTest, OversizedBodyIs413) {
  const std::string body(100 * 1024, 'x');
  const Reply reply = to_reply(client_->Post("/v1/services", body, "application/json"));
  const std::string message = expect_error(reply, 413);
  EXPECT_NE(message.find("65536"), std::string::npos) << message;
}

TEST_P(ApiServerTest, HealthzOkWhenPartsAlive) {
  const Reply reply = get("/healthz");
  ASSERT_EQ(reply.status, 200) << reply.raw;
  EXPECT_EQ(reply.body["data"]["runner"], json({{"status", "not_running"}}));
  EXPECT_EQ(reply.body["data"]["alerter"], json({{"status", "not_running"}}));
  EXPECT_EQ(reply.body["data"]["writer"],
            json({{"status", "alive"}, {"age_seconds", 0.4}, {"instance", "local"}}));
  EXPECT_EQ(reply.body["data"]["silent_after_seconds"], 10.0);
  EXPECT_EQ(reply.body["data"]["storage"], "ok");
  EXPECT_FALSE(reply.body.contains("error"));
}

TEST_P(ApiHttpTest, HealthzIs503NamingASilentWriterAndForHowLong) {
  clock_ms_ += 9'600;  // exactly the bound since the writer's progress: still alive
  EXPECT_EQ(get("/healthz").status, 200);
  clock_ms_ += 2'000;
  Reply reply = get("/healthz");
  const std::string message = expect_error(reply, 503);
  EXPECT_EQ(message, "unhealthy: writer silent for 12.0 s");
  EXPECT_EQ(reply.body["data"]["writer"]["status"], "silent");
  EXPECT_EQ(reply.body["data"]["writer"]["age_seconds"], 12.0);
  EXPECT_EQ(reply.body["data"]["storage"], "ok");
  writer_progress_ms_ = clock_ms_.load();  // it committed again
  reply = get("/healthz");
  EXPECT_EQ(reply.status, 200) << reply.raw;
  EXPECT_EQ(reply.body["data"]["writer"]["age_seconds"], 0.0);
}

TEST_P(ApiHttpTest, HealthzIs503NamingTheErrorWhileStorageWritesFail) {
  {
    std::lock_guard lock(storage_failure_mutex_);
    storage_failure_ = "storage: apply: database or disk is full";
  }
  Reply reply = get("/healthz");
  const std::string message = expect_error(reply, 503);
  EXPECT_NE(message.find("storage writes failing (storage: apply: database or disk is full)"),
            std::string::npos)
      << message;
  EXPECT_EQ(reply.body["data"]["storage"], "failing");
  EXPECT_EQ(reply.body["data"]["storage_error"], "storage: apply: database or disk is full");
  {
    std::lock_guard lock(storage_failure_mutex_);
    storage_failure_.clear();  // a commit succeeded
  }
  reply = get("/healthz");
  EXPECT_EQ(reply.status, 200) << reply.raw;
  EXPECT_EQ(reply.body["data"]["storage"], "ok");
  EXPECT_FALSE(reply.body["data"].contains("storage_error"));
}

TEST_P(ApiServerTest, HealthzIs503WhenStorageFails) {
  corrupt_database();
  const Reply reply = get("/healthz");
  const std::string message = expect_error(reply, 503);
  EXPECT_NE(message.find("storage"), std::string::npos) << message;
  EXPECT_EQ(reply.body["data"]["storage"], "failed");
  // The database that cannot be read is named, in data.storage_error and in the message.
  const std::string path = database_name();
  EXPECT_NE(reply.body["data"].value("storage_error", "").find(path), std::string::npos)
      << reply.raw;
  EXPECT_NE(message.find(path), std::string::npos) << message;
  EXPECT_EQ(reply.body["data"]["writer"]["status"], "alive");
}

TEST_P(ApiServerTest, StorageFailureIs500WithGenericMessage) {
  corrupt_database();
  for (const std::string& path :
       {std::string("/v1/services"), service_path(beta_id_), service_path(beta_id_, "/events"),
        service_path(beta_id_, "/ticks")}) {
    const Reply reply = get(path);
    EXPECT_EQ(expect_error(reply, 500), "storage error") << path;
    // The database's message stays in the log.
    EXPECT_EQ(reply.raw.find("database"), std::string::npos) << reply.raw;
  }
  // The server survives and still answers.
  EXPECT_EQ(get("/nope").status, 404);
}

TEST_P(ApiHttpTest, KeepAliveRequestsAreNotDelayed) {
  // With Nagle on, each request after the first on a connection waits ~40 ms for the client's
  // delayed ACK (19 x 40 ms here); without it the whole loop takes a few milliseconds.
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 20; ++i) ASSERT_EQ(get("/healthz").status, 200);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_LT(elapsed, std::chrono::milliseconds(400));
}

TEST_P(ApiHttpTest, MetricsExposeApiCountersWithBoundedRouteLabels) {
  ASSERT_EQ(get("/v1/services").status, 200);
  ASSERT_EQ(get(service_path(alpha_id_)).status, 200);
  ASSERT_EQ(get("/no-such-route-xyz").status, 404);
  const Reply reply = get("/metrics");
  ASSERT_EQ(reply.status, 200);
  EXPECT_EQ(reply.header("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  const std::string& text = reply.raw;
  EXPECT_NE(text.find("# TYPE vigil_api_requests_total counter"), std::string::npos) << text;
  EXPECT_NE(text.find(R"(vigil_api_requests_total{code="200",route="/v1/services"} 1)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(vigil_api_requests_total{code="200",route="/v1/services/{id}"} 1)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(vigil_api_requests_total{code="404",route="unmatched"} 1)"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("no-such-route-xyz"), std::string::npos) << "raw path leaked into labels";
  EXPECT_NE(text.find("# TYPE vigil_api_request_duration_seconds histogram"), std::string::npos);
  EXPECT_NE(text.find(R"(vigil_api_request_duration_seconds_count{route="/v1/services"} 1)"),
            std::string::npos)
      << text;
}

TEST_P(ApiHttpTest, MetricsPassPromtool) {
  const char* promtool = "/usr/bin/promtool";
  if (!std::filesystem::exists(promtool)) GTEST_SKIP() << "promtool not installed";
  ASSERT_EQ(get("/v1/services").status, 200);
  ASSERT_EQ(get("/nope").status, 404);
  const Reply reply = get("/metrics");
  ASSERT_EQ(reply.status, 200);
  const std::string input = dir_.file("metrics.txt");
  const std::string output = dir_.file("promtool.out");
  std::ofstream(input) << reply.raw;
  const std::string command =
      std::string(promtool) + " check metrics < " + input + " > " + output + " 2>&1";
  const int rc = std::system(command.c_str());
  std::ifstream in(output);
  const std::string said((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(rc, 0) << said << "\n--- input ---\n" << reply.raw;
}

// Series kept outside the registry (the runner's per-service ones) are collected by /metrics
// too; a family name both have is exposed once, with every sample, so promtool accepts it.
TEST_P(ApiHttpTest, MetricsMergeCollectablesIntoTheRegistrysFamilies) {
  struct PerService final : prometheus::Collectable {
    std::vector<prometheus::MetricFamily> Collect() const override {
      prometheus::ClientMetric alpha;
      alpha.label = {{"service", "alpha"}};
      alpha.gauge.value = 0.75;
      prometheus::ClientMetric beta = alpha;
      beta.label = {{"service", "beta"}};
      beta.gauge.value = 1;
      return {{"vigil_service_uptime_ratio",
               "Up ticks over all ticks of the service.",
               prometheus::MetricType::Gauge,
               {alpha}},
              {"vigil_service_up",
               "Current status of the service.",
               prometheus::MetricType::Gauge,
               {beta}}};
    }
  };
  prometheus::Registry registry;
  prometheus::BuildGauge()
      .Name("vigil_service_uptime_ratio")
      .Help("Up ticks over all ticks of the service.")
      .Register(registry)
      .Add({{"service", "alpha"}, {"window", "1h"}})
      .Set(0.5);
  ApiOptions options;
  options.collectables.push_back(std::make_shared<PerService>());
  ApiServer server(
      *store_, registry, [] { return HealthReport{}; }, options);
  const int port = server.start("127.0.0.1", 0);
  httplib::Client client("127.0.0.1", port);
  const auto reply = client.Get("/metrics");
  ASSERT_TRUE(reply);
  ASSERT_EQ(reply->status, 200);
  const std::string& text = reply->body;
  const auto occurrences = [&](const std::string& needle) {
    std::size_t n = 0;
    for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
    return n;
  };
  EXPECT_EQ(occurrences("# TYPE vigil_service_uptime_ratio gauge"), 1u) << text;
  EXPECT_EQ(occurrences("vigil_service_uptime_ratio{service=\"alpha\",window=\"1h\"} 0.5"), 1u)
      << text;
  EXPECT_EQ(occurrences("vigil_service_uptime_ratio{service=\"alpha\"} 0.75"), 1u) << text;
  EXPECT_EQ(occurrences("vigil_service_up{service=\"beta\"} 1"), 1u) << text;

  const char* promtool = "/usr/bin/promtool";
  if (!std::filesystem::exists(promtool)) GTEST_SKIP() << "promtool not installed";
  const std::string input = dir_.file("merged.txt");
  std::ofstream(input) << text;
  const std::string command = std::string(promtool) + " check metrics < " + input + " > /dev/null";
  EXPECT_EQ(std::system(command.c_str()), 0) << text;
  server.stop();
}

TEST_P(ApiHttpTest, StartFailsOnBusyPortNamingTheAddress) {
  prometheus::Registry other_registry;
  ApiServer other(*store_, other_registry, {});
  try {
    other.start("127.0.0.1", port_);
    FAIL() << "bound a port already in use";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("127.0.0.1:" + std::to_string(port_)), std::string::npos)
        << e.what();
  }
}

TEST_P(ApiHttpTest, StopIsPromptWithIdleKeepAliveConnectionAndIdempotent) {
  // The fixture's client keeps its connection open after this request.
  ASSERT_EQ(get("/healthz").status, 200);
  const auto start = std::chrono::steady_clock::now();
  server_->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  server_->stop();
  httplib::Client fresh("127.0.0.1", port_);
  fresh.set_connection_timeout(std::chrono::seconds(1));
  EXPECT_FALSE(fresh.Get("/healthz"));
}

}  // namespace
}  // namespace vigil

// PostgreSQL faults under the real vigil binary, each test with a PostgreSQL server of its own
// (it is stopped, killed, paused or has its sessions ended): the connection lost while running, a
// restart (clean, and kill -9 of the postmaster), pg_terminate_backend on every vigil session, a
// stuck server, and the server gone during startup. What vigil answers is checked through its
// API; what it stored straight from the database: every tick probed during the fault is there
// (no gap in the ticks of a fast service), the events agree with each other, and the stored tick
// count is the one vigil acknowledged.
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <fstream>
#include <future>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "storage/postgres/connection.h"
#include "storage/postgres/postgres_store.h"
#include "support/postgres_server.h"
#include "support/receiver.h"
#include "support/target_server.h"
#include "support/text.h"
#include "support/vigil_process.h"

namespace vigil::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

std::int64_t wall_ms() { return to_unix_ms(now_ms()); }

// The probe interval of the fast service, and the longest gap its stored ticks may have: a
// few intervals, for a loaded machine's scheduling, never the length of a fault.
constexpr std::int64_t kIntervalMs = 200;
constexpr std::int64_t kLongestGapMs = 1500;

struct TimedReply {
  int status = 0;  // 0: no answer
  json body;
  SteadyClock::duration took{};
};

class PostgresFaults : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto reason = PostgresServer::unavailable_reason()) GTEST_SKIP() << *reason;
    server.emplace("vigil_e2e", PostgresServer::Lifetime::this_process, durability);
    where = "host=127.0.0.1 port=" + std::to_string(server->port());
  }

  // services.json: the fast service "healthy", and `more` after it.
  void write_services(json more = json::array(), json alerting = nullptr) {
    json services = json::array(
        {{{"name", "healthy"}, {"url", target.url("/hits/healthy")}, {"interval_seconds", 0.2}}});
    for (auto& service : more) services.push_back(std::move(service));
    json file = {{"services", services}};
    if (!alerting.is_null()) file["alerting"] = std::move(alerting);
    std::ofstream(dir.file("services.json")) << file.dump();
  }

  std::unique_ptr<VigilProcess> start_vigil() {
    return std::make_unique<VigilProcess>(dir, "run", api_port,
                                          std::map<std::string, std::string>{
                                              {"DATABASE_URL", server->url()},
                                              {"HEALTH_BEAT_SECONDS", "1"},
                                              // These faults are ridden out by probing on: a
                                              // member pauses only past its lease (the cluster
                                              // tests cover that), and a killed postmaster's
                                              // restart takes longer than the default 10 s.
                                              {"CLUSTER_LEASE_SECONDS", "120"},
                                          });
  }

  // GET `path`, or POST `body` to it when there is one.
  TimedReply call(const std::string& path, const json& body = nullptr) {
    httplib::Client client("127.0.0.1", api_port);
    client.set_connection_timeout(2);
    client.set_read_timeout(30s);
    const auto started = SteadyClock::now();
    const auto res = body.is_null() ? client.Get(path.c_str())
                                    : client.Post(path.c_str(), body.dump(), "application/json");
    TimedReply reply;
    reply.took = SteadyClock::now() - started;
    if (!res) return reply;
    reply.status = res->status;
    try {
      reply.body = json::parse(res->body);
    } catch (const json::exception&) {
      reply.body = res->body;
    }
    return reply;
  }

  // Until /healthz is 200 with the runner alive and "healthy" probed a few times.
  void wait_running(VigilProcess& vigil) {
    ASSERT_TRUE(eventually(
        [&] {
          const TimedReply health = call("/healthz");
          return health.status == 200 && health.body["data"]["runner"]["status"] == "alive" &&
                 target.hits("healthy") >= 3;
        },
        30s))
        << vigil.log();
  }

  // The integer `sql` answers, on a connection of its own (the server may have restarted since
  // the last one).
  std::int64_t count(const std::string& sql) {
    postgres::Connection connection(server->conninfo());
    return std::stoll(connection.exec(sql).get(0, 0).value_or("0"));
  }

  std::int64_t service_id(const std::string& name) {
    return count("SELECT id FROM services WHERE name = '" + name + "'");
  }

  // Nothing lost and nothing contradictory for the service `name`, from the database: every
  // tick vigil counted is stored, its ticks in [from_ms, to_ms] have no gap longer than
  // kLongestGapMs, and its events follow each other with one open.
  void expect_history_intact(const std::string& name, std::int64_t from_ms, std::int64_t to_ms) {
    const std::string id = std::to_string(service_id(name));
    // In one statement, so one snapshot: the writer commits meanwhile.
    EXPECT_EQ(count("SELECT (SELECT tick_count FROM service_metrics WHERE service_id = " + id +
                    ") - (SELECT COUNT(*) FROM service_ticks WHERE service_id = " + id + ")"),
              0)
        << name << ": the counted ticks are the stored ones";
    const std::string range =
        " AND ts BETWEEN " + std::to_string(from_ms) + " AND " + std::to_string(to_ms);
    EXPECT_LE(count("SELECT COALESCE(MAX(gap), 0) FROM (SELECT ts - LAG(ts) OVER (ORDER BY ts)"
                    " AS gap FROM service_ticks WHERE service_id = " +
                    id + range + ") AS gaps"),
              kLongestGapMs)
        << name << ": a gap in the ticks between " << from_ms << " and " << to_ms;
    EXPECT_GE(count("SELECT COUNT(*) FROM service_ticks WHERE service_id = " + id + range),
              (to_ms - from_ms) / kIntervalMs / 2)
        << name << ": too few ticks between " << from_ms << " and " << to_ms;
    EXPECT_EQ(count("SELECT COUNT(*) FROM service_events WHERE date_ended IS NULL AND"
                    " service_id = " +
                    id),
              1);
    // Each ended event ends where the next one starts.
    EXPECT_EQ(count("SELECT COUNT(*) FROM (SELECT date_ended, LEAD(date_started) OVER"
                    " (ORDER BY date_started) AS next FROM service_events WHERE service_id = " +
                    id + ") AS e WHERE date_ended IS DISTINCT FROM next"),
              0);
  }

  // Until the database holds a tick of `name` probed after `after_ms`: what was held during a
  // fault has been written by then (the writer commits in order).
  void wait_written_after(const std::string& name, std::int64_t after_ms, VigilProcess& vigil) {
    const std::string id = std::to_string(service_id(name));
    ASSERT_TRUE(eventually(
        [&] {
          return count("SELECT COUNT(*) FROM service_ticks WHERE service_id = " + id +
                       " AND ts > " + std::to_string(after_ms)) > 0;
        },
        30s))
        << vigil.log();
  }

  void expect_password_kept_out(const std::string& text) {
    EXPECT_FALSE(contains(text, server->password())) << text;
  }

  // Off: a crash may lose the last commits (synchronous_commit off), fine unless the test
  // crashes the server.
  PostgresServer::Durability durability = PostgresServer::Durability::off;
  std::optional<PostgresServer> server;
  std::string where;  // "host=127.0.0.1 port=N", as vigil names the server
  TargetServer target;
  TempDir dir;
  int api_port = closed_port();
};

// The server stops under a running vigil and comes back on the same port: probing goes on,
// /healthz and the reads are 503 naming it, and once it is back vigil reconnects by itself and
// writes every tick it held.
TEST_F(PostgresFaults, ConnectionLostWhileRunningLosesNothingAndReconnectsByItself) {
  write_services();
  auto vigil = start_vigil();
  wait_running(*vigil);
  const std::int64_t before = wall_ms();

  server->stop_server();
  const std::int64_t down_at = wall_ms();
  TimedReply health;
  ASSERT_TRUE(eventually(
      [&] {
        health = call("/healthz");
        return health.status == 503;
      },
      20s))
      << health.body.dump() << vigil->log();
  EXPECT_EQ(health.body["data"]["storage"], "failed") << health.body.dump();
  EXPECT_TRUE(contains(health.body["data"].value("storage_error", ""), where))
      << health.body.dump();
  expect_password_kept_out(health.body.dump());
  const TimedReply services = call("/v1/services");
  EXPECT_EQ(services.status, 503) << services.body.dump();
  EXPECT_EQ(services.body.value("error", ""), "storage unavailable") << services.body.dump();
  // Probing goes on without the database, for a few seconds of ticks held in memory.
  const int hits = target.hits("healthy");
  ASSERT_TRUE(eventually([&] { return target.hits("healthy") >= hits + 10; }, 20s));

  server->start_again();
  const std::int64_t up_at = wall_ms();
  ASSERT_TRUE(eventually([&] { return call("/healthz").status == 200; }, 20s)) << vigil->log();
  EXPECT_EQ(call("/v1/services").status, 200);
  wait_written_after("healthy", up_at + 500, *vigil);
  expect_history_intact("healthy", before, up_at + 500);
  // The outage itself is covered by ticks probed during it.
  EXPECT_GE(count("SELECT COUNT(*) FROM service_ticks WHERE ts BETWEEN " + std::to_string(down_at) +
                  " AND " + std::to_string(up_at)),
            (up_at - down_at) / kIntervalMs / 2);
  EXPECT_TRUE(contains(vigil->log(), "writes recovered")) << vigil->log();
  EXPECT_EQ(vigil->stop(), 0) << vigil->log();
  expect_password_kept_out(vigil->log());
}

// A server that keeps every commit it acknowledged through a crash (synchronous commit), for the
// tests that crash it.
class PostgresCrashFaults : public PostgresFaults {
 protected:
  PostgresCrashFaults() { durability = PostgresServer::Durability::on; }
};

// kill -9 of the postmaster, then a start on the same data dir and port: vigil recovers without
// a restart. A push is never 200 unless its beat is stored: 503 once the server is gone, 200
// again after, and every beat answered 200 is stored. (A push answered 503 while the token was
// cached may still be stored once the server is back: the writer kept its tick.)
TEST_F(PostgresCrashFaults, AKilledPostmasterIsRecoveredFromAndPushesAre503WhileItIsGone) {
  write_services(
      json::array({{{"name", "nightly"}, {"kind", "heartbeat"}, {"interval_seconds", 3600}}}));
  auto vigil = start_vigil();
  wait_running(*vigil);
  const std::int64_t before = wall_ms();
  std::string token;
  {
    postgres::Connection connection(server->conninfo());
    token = connection.exec("SELECT push_token FROM services WHERE name = 'nightly'")
                .get(0, 0)
                .value_or("");
  }
  ASSERT_FALSE(token.empty());
  std::vector<std::string> acknowledged;  // the msg of each push answered 200
  int pushed = 0;
  const auto push = [&] {
    const std::string msg = "push-" + std::to_string(++pushed);
    const int status = call("/v1/push/" + token + "?msg=" + msg).status;
    if (status == 200) acknowledged.push_back(msg);
    return status;
  };
  ASSERT_EQ(push(), 200);

  server->kill_postmaster();
  int status = 0;
  ASSERT_TRUE(eventually(
      [&] {
        status = push();
        return status == 503;
      },
      20s))
      << status << vigil->log();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(push(), 503);  // never 200 while it is gone
  EXPECT_EQ(call("/healthz").status, 503);
  EXPECT_EQ(call("/v1/services").status, 503);

  server->start_again();
  const std::int64_t up_at = wall_ms();
  ASSERT_TRUE(eventually([&] { return push() == 200; }, 20s)) << vigil->log();
  ASSERT_TRUE(eventually([&] { return call("/healthz").status == 200; }, 20s)) << vigil->log();
  const TimedReply services = call("/v1/services");
  EXPECT_EQ(services.status, 200) << services.body.dump();
  wait_written_after("healthy", up_at + 500, *vigil);
  expect_history_intact("healthy", before, up_at + 500);
  // Every beat answered 200 is a stored tick of the heartbeat, with its msg.
  const std::string nightly = std::to_string(service_id("nightly"));
  for (const std::string& msg : acknowledged) {
    EXPECT_EQ(count("SELECT COUNT(*) FROM service_ticks WHERE service_id = " + nightly +
                    " AND message = '" + msg + "'"),
              1)
        << msg << " was answered 200";
  }
  EXPECT_LE(count("SELECT COUNT(*) FROM service_ticks WHERE service_id = " + nightly), pushed);
  EXPECT_EQ(vigil->stop(), 0) << vigil->log();
  expect_password_kept_out(vigil->log());
}

// An operator ends every session of vigil's (pg_terminate_backend): the writer, the read pool,
// the alerts and the component beats each replace theirs, and alerting, /healthz and the history
// go on as if nothing happened.
TEST_F(PostgresFaults, EndedSessionsAreReplacedAndAlertingAndHealthKeepWorking) {
  Receiver receiver;
  write_services(
      json::array({{{"name", "flaky"}, {"url", target.url("/switch")}, {"interval_seconds", 0.2}}}),
      {{"channels", {{"hook", {{"type", "webhook"}, {"url", receiver.url("/hook")}}}}},
       {"default", {"hook"}}});
  auto vigil = start_vigil();
  wait_running(*vigil);
  // Every kind of session open: the API's alerts are read, the beats written.
  ASSERT_EQ(call("/v1/alerts").status, 200);
  ASSERT_TRUE(eventually([&] { return count("SELECT COUNT(*) FROM component_beats") >= 3; }, 10s));
  const std::int64_t before = wall_ms();

  const std::string vigils_sessions =
      " FROM pg_stat_activity WHERE datname = '" + server->database() +
      "' AND backend_type = 'client backend' AND pid <> pg_backend_pid()";
  // The writer, at least one reader, the alerter's and the API's alerts, the beats.
  const std::int64_t ended =
      count("SELECT COUNT(*) FILTER (WHERE pg_terminate_backend(pid, 10000))" + vigils_sessions);
  EXPECT_GE(ended, 5);
  const std::int64_t ended_at = wall_ms();

  target.set_switch_up(false);  // alerting must work on the new sessions
  ASSERT_TRUE(eventually([&] { return !receiver.bodies("/hook").empty(); }, 20s)) << vigil->log();
  EXPECT_EQ(json::parse(receiver.bodies("/hook").front())["service"], "flaky");
  EXPECT_TRUE(eventually(
      [&] { return count("SELECT COUNT(*) FROM notifications WHERE status = 'sent'") == 1; }, 10s));
  const TimedReply alerts = call("/v1/alerts");
  EXPECT_EQ(alerts.status, 200) << alerts.body.dump();
  EXPECT_EQ(alerts.body["data"]["alerts"].size(), 1u) << alerts.body.dump();
  const TimedReply health = call("/healthz");
  EXPECT_EQ(health.status, 200) << health.body.dump();
  // New beats were written on a new session.
  EXPECT_TRUE(eventually(
      [&] {
        return count("SELECT COUNT(*) FROM component_beats WHERE written_at > " +
                     std::to_string(ended_at)) >= 3;
      },
      10s));
  EXPECT_GE(count("SELECT COUNT(*)" + vigils_sessions), 4);
  wait_written_after("healthy", wall_ms(), *vigil);
  expect_history_intact("healthy", before, wall_ms() - 1000);
  EXPECT_EQ(vigil->stop(), 0) << vigil->log();
}

// Resumes a paused server whatever the test's outcome, so no process is left stopped.
class Resume {
 public:
  explicit Resume(PostgresServer& server) : server_(server) {}
  ~Resume() { server_.resume(); }
  Resume(const Resume&) = delete;
  Resume& operator=(const Resume&) = delete;

 private:
  PostgresServer& server_;
};

// A stuck server (its processes stopped: sockets open, nothing answered, no statement_timeout
// can fire): the API's reads and /healthz are 503 within seconds instead of holding their
// threads, routes that need no database answer at once, and after it resumes all is well.
TEST_F(PostgresFaults, AStuckServerMakesTheApiAnswer503WithinSecondsAndAllIsWellAfter) {
  write_services();
  auto vigil = start_vigil();
  wait_running(*vigil);
  ASSERT_EQ(call("/v1/services").status, 200);  // a read session is idle in the pool
  const std::int64_t before = wall_ms();

  std::optional<Resume> resume;
  server->pause();
  resume.emplace(*server);
  auto services = std::async(std::launch::async, [&] { return call("/v1/services"); });
  auto health = std::async(std::launch::async, [&] { return call("/healthz"); });
  const json added = {{"name", "added"}, {"url", target.url("/ok")}, {"interval_seconds", 1}};
  auto create = std::async(std::launch::async, [&] { return call("/v1/services", added); });
  // Meanwhile the API's other threads serve what needs no database.
  const TimedReply openapi = call("/openapi.json");
  EXPECT_EQ(openapi.status, 200);
  EXPECT_LT(openapi.took, 2s);
  const TimedReply listed = services.get();
  EXPECT_EQ(listed.status, 503) << listed.body.dump();
  EXPECT_EQ(listed.body.value("error", ""), "storage unavailable") << listed.body.dump();
  EXPECT_LT(listed.took, 12s);
  const TimedReply healthz = health.get();
  EXPECT_EQ(healthz.status, 503) << healthz.body.dump();
  EXPECT_TRUE(contains(healthz.body["data"].value("storage_error", ""), where))
      << healthz.body.dump();
  EXPECT_LT(healthz.took, 12s);
  // A write too: its wait for the write connection (which the writer holds, waiting on the
  // server) and its statements are bounded as a read's.
  const TimedReply created = create.get();
  EXPECT_EQ(created.status, 503) << created.body.dump();
  EXPECT_LT(created.took, 12s);
  resume.reset();

  ASSERT_TRUE(eventually([&] { return call("/healthz").status == 200; }, 20s)) << vigil->log();
  EXPECT_EQ(call("/v1/services").status, 200);
  const TimedReply created_after = call("/v1/services", added);
  EXPECT_EQ(created_after.status, 201) << created_after.body.dump();
  const std::int64_t resumed_at = wall_ms();
  wait_written_after("healthy", resumed_at + 500, *vigil);
  expect_history_intact("healthy", before, resumed_at + 500);
  EXPECT_EQ(vigil->stop(), 0) << vigil->log();
}

// The server reachable at the first connect but gone while vigil migrates (here: vigil waits on
// a lock the test holds when the server shuts down): exit 1 naming the server, no hang.
TEST_F(PostgresFaults, AServerGoneDuringStartupIsExit1NamingIt) {
  write_services();
  open_postgres_store(server->conninfo());  // migrated: vigil's startup reads schema_version
  postgres::Connection holder(server->conninfo());
  postgres::Transaction holding(holder);
  holder.exec("LOCK TABLE schema_version IN ACCESS EXCLUSIVE MODE");

  auto vigil = start_vigil();
  ASSERT_TRUE(eventually(
      [&] {
        return count("SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'") > 0;
      },
      20s))
      << vigil->log();
  server->stop_server();
  EXPECT_EQ(vigil->process().wait_for_exit(20s), 1) << vigil->log();
  const std::string log = vigil->log();
  EXPECT_TRUE(contains(log, "cannot open database")) << log;
  EXPECT_TRUE(contains(log, where)) << log;
  expect_password_kept_out(log);
}

}  // namespace
}  // namespace vigil::test

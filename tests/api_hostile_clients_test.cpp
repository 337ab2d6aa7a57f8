// Hostile clients of the API: a real ApiServer (and the GuardedServer under it) on
// 127.0.0.1 with a real SQLite store, driven by raw sockets that do what no polite client does:
// hold 200 connections open sending a header byte a second, send oversized request lines and
// headers, trickle a body, open more connections than the cap, hold 1,000 connections that send
// nothing and reconnect when cut (from several 127.0.0.x addresses), and send every kind of bad
// parameter and body. The API must keep answering normal requests in bounded time, answer
// 408/413/414/431/503 as documented, and answer bad input with 400 and a message, never 500.
// What is tested is the HTTP layer, not the storage: SQLite only (the suite takes half a minute;
// the storage-backed routes run on both backends in api_server_test and api_write_test).
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <prometheus/registry.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <filesystem>
#include <iostream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "api/guarded_server.h"
#include "api/server.h"
#include "storage/sqlite/sqlite_database.h"
#include "storage/store.h"
#include "support/idle_flood.h"
#include "support/target_server.h"

namespace vigil {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// A raw client connection to 127.0.0.1:port, from `source`; every wait is bounded.
class RawClient {
 public:
  explicit RawClient(int port, const std::string& source = "127.0.0.1") {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    const sockaddr_in addr = test::loopback_address(port);
    connected_ = fd_ >= 0 && test::bind_source(fd_, source) &&
                 ::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~RawClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool connected() const { return connected_; }
  bool send(const std::string& bytes) {
    std::size_t sent = 0;
    while (sent < bytes.size()) {
      const ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += std::size_t(n);
    }
    return true;
  }
  // Reads until the server closes the connection or `timeout`; what arrived.
  std::string read_until_closed(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (!closed_ && Clock::now() < deadline) poll_once(50ms);
    return received_;
  }
  // Reads until `text` has arrived, the server closes the connection or `timeout`; whether it
  // arrived.
  bool read_until_contains(const std::string& text, std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (received_.find(text) == std::string::npos && !closed_ && Clock::now() < deadline)
      poll_once(50ms);
    return received_.find(text) != std::string::npos;
  }
  // One bounded look for input: appends what arrived, notes a close.
  void poll_once(std::chrono::milliseconds wait) {
    if (closed_) return;
    pollfd pfd{fd_, POLLIN, 0};
    if (::poll(&pfd, 1, int(wait.count())) <= 0) return;
    char buffer[4096];
    const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
    if (n <= 0)
      closed_ = true;
    else
      received_.append(buffer, std::size_t(n));
  }
  bool closed() const { return closed_; }
  const std::string& received() const { return received_; }

 private:
  int fd_ = -1;
  bool connected_ = false;
  bool closed_ = false;
  std::string received_;
};

int status_of(const std::string& response) {
  if (response.rfind("HTTP/1.1 ", 0) != 0 || response.size() < 12) return 0;
  return std::stoi(response.substr(9, 3));
}

json body_of(const std::string& response) {
  const auto at = response.find("\r\n\r\n");
  if (at == std::string::npos) return json();
  return json::parse(response.substr(at + 4), nullptr, false);
}

// Raises the soft limit on open files to the hard one; the soft limit after.
rlim_t raise_open_file_limit() {
  rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = limit.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &limit);
  ::getrlimit(RLIMIT_NOFILE, &limit);
  return limit.rlim_cur;
}

class HostileClients : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = open_sqlite_store(dir_.file("vigil.db"));
    ServiceSpec spec;
    spec.name = "alpha";
    spec.url = "http://alpha.test/";
    spec.interval = Millis(10'000);
    store_->sync_services({spec}, now_ms());
    id_ = store_->active_services().at(0).id;
    server_ = std::make_unique<ApiServer>(*store_, registry_, [] {
      HealthReport report;
      report.parts.push_back(PartProgress{"writer", "local", now_ms()});
      return report;
    });
    port_ = server_->start("127.0.0.1", 0);
    ASSERT_GT(port_, 0);
  }

  // One request on a fresh connection, as a normal client does it.
  httplib::Result send(const std::string& method, const std::string& path,
                       const std::string& body = "") {
    httplib::Client client("127.0.0.1", port_);
    client.set_connection_timeout(2);
    client.set_read_timeout(5);
    if (method == "POST") return client.Post(path.c_str(), body, "application/json");
    if (method == "PATCH") return client.Patch(path.c_str(), body, "application/json");
    return client.Get(path.c_str());
  }

  // The whole response to `raw`, sent on a new connection.
  std::string exchange(const std::string& raw) {
    RawClient client(port_);
    EXPECT_TRUE(client.connected());
    client.send(raw);
    return client.read_until_closed(5s);
  }

  test::TempDir dir_;
  std::unique_ptr<Store> store_;
  prometheus::Registry registry_;
  std::unique_ptr<ApiServer> server_;
  int port_ = 0;
  ServiceId id_ = 0;
};

TEST_F(HostileClients, SlowlorisConnectionsDoNotTakeTheApiDown) {
  constexpr int kSlow = 200;
  std::vector<std::unique_ptr<RawClient>> slow;
  const auto connecting = Clock::now();
  for (int i = 0; i < kSlow; ++i) {
    slow.push_back(std::make_unique<RawClient>(port_));
    ASSERT_TRUE(slow.back()->connected()) << i;
    ASSERT_TRUE(slow.back()->send("GET /v1/services HTTP/1.1\r\nHost: x\r\nX-Slow: "));
  }
  // All 200 were accepted at once (a short listen backlog would drop SYNs, retried after 1 s+).
  EXPECT_LT(Clock::now() - connecting, 2s);
  const auto started = Clock::now();
  int normal_answered = 0;
  double slowest_ms = 0;
  // A header byte a second on every slow connection; a normal request every second beside them.
  for (int second = 0; second < 7; ++second) {
    for (auto& client : slow) client->send("a");
    const auto asked = Clock::now();
    const auto result = send("GET", "/v1/services");
    const double took_ms = std::chrono::duration<double, std::milli>(Clock::now() - asked).count();
    slowest_ms = std::max(slowest_ms, took_ms);
    if (result && result->status == 200) ++normal_answered;
    std::this_thread::sleep_until(asked + 1s);
  }
  EXPECT_EQ(normal_answered, 7);
  EXPECT_LT(slowest_ms, 2000) << "a normal request waited behind the slow connections";

  // Their heads never complete: each gets 408 and is closed once the 10 s head deadline passes,
  // although it never went 5 s (the read timeout) without sending.
  int cut = 0;
  while (Clock::now() - started < 14s && cut < kSlow) {
    for (auto& client : slow) client->send("a");
    cut = 0;
    for (auto& client : slow) {
      client->poll_once(0ms);
      if (client->closed()) ++cut;
    }
    std::this_thread::sleep_for(500ms);
  }
  EXPECT_EQ(cut, kSlow);
  EXPECT_EQ(status_of(slow.front()->received()), 408) << slow.front()->received();
  EXPECT_GE(Clock::now() - started, 9s);  // not cut before the deadline
}

// 1,000 connections that send nothing and reconnect as soon as they are cut, from one address
// and then from eight, while a client (at another address, and at an attacker's) checks
// /healthz and pushes a heartbeat: at least 99 % must answer 200 within a second.
TEST_F(HostileClients, IdleConnectionsThatReconnectDoNotStarveRequests) {
  ASSERT_GE(raise_open_file_limit(), rlim_t{4096});
  const auto created =
      send("POST", "/v1/services", R"({"name":"beat","kind":"heartbeat","interval_seconds":60})");
  ASSERT_TRUE(created);
  ASSERT_EQ(created->status, 201) << created->body;
  const std::string push =
      "/v1/push/" + json::parse(created->body)["data"]["service"]["push_token"].get<std::string>();

  struct Scenario {
    std::string name;
    std::vector<std::string> attackers;
    std::vector<std::string> clients;
  };
  const std::vector<Scenario> scenarios = {
      {"one address", {"127.0.0.2"}, {"127.0.0.1", "127.0.0.2"}},
      {"eight addresses",
       {"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6", "127.0.0.7", "127.0.0.8",
        "127.0.0.9"},
       {"127.0.0.1", "127.0.0.5"}},
  };
  constexpr std::size_t kAttackers = 1000;
  constexpr int kRequests = 300;
  for (const auto& scenario : scenarios) {
    test::IdleFlood flood(port_, scenario.attackers, kAttackers, 60s, 20'000'000);
    // The flood is on: every attacker connected, and the server has had to cut some.
    const auto warming = Clock::now() + 20s;
    while ((flood.connects() < kAttackers || flood.cuts() < kAttackers) && Clock::now() < warming)
      std::this_thread::sleep_for(10ms);
    ASSERT_GE(flood.connects(), kAttackers) << scenario.name;
    ASSERT_GE(flood.cuts(), kAttackers) << scenario.name;
    const std::size_t connects_before = flood.connects();
    const auto measuring = Clock::now();
    int ok = 0;
    std::vector<double> took_ms;
    std::string first_failure;
    for (int i = 0; i < kRequests; ++i) {
      const std::string& source = scenario.clients[std::size_t(i / 2) % scenario.clients.size()];
      const std::string path = i % 2 == 0 ? "/healthz" : push;
      const auto asked = Clock::now();
      RawClient client(port_, source);
      std::string response;
      if (client.connected() &&
          client.send("GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
        response = client.read_until_closed(1s);
      const double ms = std::chrono::duration<double, std::milli>(Clock::now() - asked).count();
      took_ms.push_back(ms);
      if (status_of(response) == 200 && ms <= 1000)
        ++ok;
      else if (first_failure.empty())
        first_failure = source + " " + path + " after " + std::to_string(ms) +
                        " ms: " + response.substr(0, 120);
      std::this_thread::sleep_until(asked + 10ms);
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - measuring).count();
    const double reconnects_per_second = double(flood.connects() - connects_before) / seconds;
    flood.stop();
    std::sort(took_ms.begin(), took_ms.end());
    std::cout << "[ figures  ] " << scenario.name << ": " << ok << "/" << kRequests
              << " answered 200 within 1 s; p50 " << took_ms[took_ms.size() / 2] << " ms, p99 "
              << took_ms[took_ms.size() * 99 / 100] << " ms, max " << took_ms.back()
              << " ms; attackers reconnected " << std::lround(reconnects_per_second) << "/s\n";
    EXPECT_GE(ok, kRequests * 99 / 100) << scenario.name << ": first failure " << first_failure;
  }
}

TEST_F(HostileClients, LongUrlsAre414AndLargeHeadersAre431) {
  const std::string long_url =
      "GET /v1/services?team=" + std::string(9000, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n";
  std::string response = exchange(long_url);
  EXPECT_EQ(status_of(response), 414) << response.substr(0, 200);
  EXPECT_NE(body_of(response).value("error", "").find("8192"), std::string::npos);

  const std::string one_large_header =
      "GET /v1/services HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(9000, 'a') + "\r\n\r\n";
  response = exchange(one_large_header);
  EXPECT_EQ(status_of(response), 431) << response.substr(0, 200);
  EXPECT_EQ(body_of(response).value("status", 0), 431);

  std::string many_headers = "GET /v1/services HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 10'000; ++i) many_headers += "X-" + std::to_string(i) + ": a\r\n";
  response = exchange(many_headers + "\r\n");
  EXPECT_EQ(status_of(response), 431) << response.substr(0, 200);

  // Within the limits: a few kilobytes of headers are fine.
  std::string fine = "GET /v1/services HTTP/1.1\r\nHost: x\r\nConnection: close\r\n";
  for (int i = 0; i < 8; ++i)
    fine += "X-" + std::to_string(i) + ": " + std::string(1000, 'b') + "\r\n";
  response = exchange(fine + "\r\n");
  EXPECT_EQ(status_of(response), 200) << response.substr(0, 200);
  // The guard's answers are counted like every other response.
  const auto metrics = send("GET", "/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find(R"(vigil_api_requests_total{code="414",route="unmatched"} 1)"),
            std::string::npos)
      << metrics->body;
  EXPECT_NE(metrics->body.find(R"(vigil_api_requests_total{code="431",route="unmatched"} 2)"),
            std::string::npos)
      << metrics->body;
}

TEST_F(HostileClients, KeepAliveAndPipelinedRequestsStillWork) {
  RawClient client(port_);
  ASSERT_TRUE(client.connected());
  // Two requests in one write: the second is already buffered when the first is answered.
  client.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/services/" + std::to_string(id_) +
              " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  const std::string both = client.read_until_closed(5s);
  EXPECT_EQ(status_of(both), 200) << both;
  const auto second = both.find("HTTP/1.1 ", 1);
  ASSERT_NE(second, std::string::npos) << both;
  EXPECT_EQ(status_of(both.substr(second)), 200) << both;
  EXPECT_NE(both.find("\"alpha\""), std::string::npos);
}

TEST_F(HostileClients, BadParametersAndBodiesAre400WithAMessage) {
  const std::string id = std::to_string(id_);
  // A service made through the API, so that PATCH may change it (alpha is the file's: 409).
  const auto created = send("POST", "/v1/services", R"({"name":"beta","url":"http://beta.test/"})");
  ASSERT_TRUE(created);
  ASSERT_EQ(created->status, 201) << created->body;
  const std::string beta =
      std::to_string(json::parse(created->body)["data"]["service"]["id"].get<ServiceId>());
  struct Case {
    std::string method;
    std::string path;
    std::string body;
  };
  const std::string deep(10'000, '[');
  const std::vector<Case> cases = {
      {"GET", "/v1/services/abc", ""},
      {"GET", "/v1/services/-5/events", ""},
      {"GET", "/v1/services/99999999999999999999999/ticks", ""},
      {"GET", "/v1/services?limit=-1", ""},
      {"GET", "/v1/services?limit=abc", ""},
      {"GET", "/v1/services?limit=99999999999999999999999", ""},
      {"GET", "/v1/services?offset=-3", ""},
      {"GET", "/v1/services?status=%FF%FE", ""},
      {"GET", "/v1/services/" + id + "/events?limit=0", ""},
      {"GET", "/v1/services/" + id + "/events?before=1e400", ""},
      {"GET", "/v1/services/" + id + "/ticks?from=nan", ""},
      {"GET", "/v1/services/" + id + "/ticks?from=1e300", ""},
      {"GET", "/v1/services/" + id + "/ticks?limit=1001", ""},
      {"GET", "/v1/alerts?limit=-7", ""},
      {"POST", "/v1/services", "{\"name\": \"\xff\xfe\", \"url\": \"http://x.test/\"}"},
      {"POST", "/v1/services", "{\"name\": 42, \"url\": \"http://x.test/\"}"},
      {"POST", "/v1/services", "{\"name\": \"a\", \"url\": [\"http://x.test/\"]}"},
      {"POST", "/v1/services",
       "{\"name\": \"a\", \"url\": \"http://x.test/\", \"interval_seconds\": \"5\"}"},
      {"POST", "/v1/services",
       "{\"name\": \"a\", \"url\": \"http://x.test/\", \"interval_seconds\": 1e308}"},
      {"POST", "/v1/services", "{\"name\": \"a\", \"name\": \"b\", \"url\": \"http://x.test/\"}"},
      {"POST", "/v1/services", deep},
      {"POST", "/v1/services", "{\"name\": \"a\", \"tags\": " + deep + "}"},
      {"POST", "/v1/services", "{\"name\": \"a\""},
      {"POST", "/v1/services", "[1, 2, 3]"},
      {"POST", "/v1/services", ""},
      {"PATCH", "/v1/services/" + beta, "{\"interval_seconds\": -1}"},
      {"PATCH", "/v1/services/" + beta, "{\"interval_seconds\": 2, \"interval_seconds\": 3}"},
      {"PATCH", "/v1/services/" + beta, "{\"tags\": {\"a\": 1, \"a\": 2}}"},
      {"PATCH", "/v1/services/" + beta, "null"},
      {"PATCH", "/v1/services/" + beta, "{\"url\": \"http://\xc3\x28.test/\"}"},
      {"PATCH", "/v1/services/x" + beta, "{}"},
  };
  for (const auto& c : cases) {
    const auto result = send(c.method, c.path, c.body);
    ASSERT_TRUE(result) << c.method << " " << c.path << " " << c.body.substr(0, 80);
    EXPECT_EQ(result->status, 400)
        << c.method << " " << c.path << " " << c.body.substr(0, 80) << " -> " << result->body;
    const json body = json::parse(result->body, nullptr, false);
    EXPECT_FALSE(body.value("error", "").empty()) << result->body;
  }
  // None of that changed anything, and the API still answers.
  const auto list = send("GET", "/v1/services");
  ASSERT_TRUE(list);
  const json services = json::parse(list->body)["data"]["services"]["data"];
  ASSERT_EQ(services.size(), 2u);
  EXPECT_EQ(services[1]["name"], "beta");
  EXPECT_EQ(services[1]["interval_seconds"], 15.0);
}

constexpr std::size_t kBigBody = 64 * 1024 * 1024;

// The GuardedServer alone, with small limits so the test is quick.
class GuardedServerLimits : public ::testing::Test {
 protected:
  void start(ConnectionLimits limits) {
    server_ = std::make_unique<GuardedServer>(limits);
    server_->Get("/ok", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("ok", "text/plain");
    });
    server_->Get("/big", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(std::string(kBigBody, 'x'), "text/plain");
    });
    server_->Post("/echo", [](const httplib::Request& req, httplib::Response& res) {
      res.set_content(req.body, "text/plain");
    });
    // Holds its worker until release_holds() (or 5 s), to fill the slots with requests.
    server_->Get("/hold", [this](const httplib::Request&, httplib::Response& res) {
      std::unique_lock lock(hold_mutex_);
      ++holding_;
      hold_released_.wait_for(lock, 5s, [this] { return holds_released_; });
      res.set_content("held", "text/plain");
    });
    server_->set_read_timeout(5, 0);
    port_ = server_->bind_to_any_port("127.0.0.1");
    ASSERT_GT(port_, 0);
    ASSERT_TRUE(server_->widen_listen_backlog());
    thread_ = std::thread([this] { server_->listen_after_bind(); });
    const auto deadline = Clock::now() + 5s;
    while (!server_->is_running() && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
    ASSERT_TRUE(server_->is_running());
  }
  void release_holds() {
    {
      std::lock_guard lock(hold_mutex_);
      holds_released_ = true;
    }
    hold_released_.notify_all();
  }
  void TearDown() override {
    release_holds();
    if (server_) server_->stop();
    if (thread_.joinable()) thread_.join();
  }

  std::unique_ptr<GuardedServer> server_;
  std::thread thread_;
  int port_ = 0;
  std::mutex hold_mutex_;
  std::condition_variable hold_released_;
  bool holds_released_ = false;  // guarded by hold_mutex_
  std::atomic<int> holding_{0};
};

// A connection that has had one answer and now waits, idle, in the server's event loop.
std::unique_ptr<RawClient> idle_keep_alive_client(int port,
                                                  const std::string& source = "127.0.0.1") {
  auto client = std::make_unique<RawClient>(port, source);
  EXPECT_TRUE(client->connected());
  client->send("GET /ok HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_TRUE(client->read_until_contains("\r\n\r\nok", 3s)) << client->received();
  return client;
}

// Whether the server closes `client` within `timeout`.
bool closed_within(RawClient& client, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!client.closed() && Clock::now() < deadline) client.poll_once(20ms);
  return client.closed();
}

// A connection that has sent nothing. Connections are accepted in the order they were made,
// so those made before another are held by the server when that one arrives.
std::unique_ptr<RawClient> idle_client(int port, const std::string& source = "127.0.0.1") {
  auto client = std::make_unique<RawClient>(port, source);
  EXPECT_TRUE(client->connected());
  return client;
}

TEST_F(GuardedServerLimits, PastTheCapTheOldestIdleConnectionMakesRoom) {
  start(ConnectionLimits{.max_connections = 4, .pressure_timeout = 5s});
  std::vector<std::unique_ptr<RawClient>> held;
  for (int i = 0; i < 4; ++i) held.push_back(idle_client(port_));
  // The oldest goes first, each time the cap is full again.
  for (std::size_t oldest = 0; oldest < 2; ++oldest) {
    if (oldest > 0) held.push_back(idle_client(port_));
    RawClient next(port_);
    ASSERT_TRUE(next.connected());
    next.send("GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    const auto asked = Clock::now();
    EXPECT_EQ(status_of(next.read_until_closed(3s)), 200);
    EXPECT_LT(Clock::now() - asked, 1s);
    EXPECT_TRUE(closed_within(*held[oldest], 2s)) << oldest << ": the oldest was kept";
    EXPECT_EQ(held[oldest]->received(), "") << "an idle connection is closed without an answer";
    for (std::size_t i = oldest + 1; i < held.size(); ++i) {
      held[i]->poll_once(0ms);
      EXPECT_FALSE(held[i]->closed()) << i;
    }
  }
}

TEST_F(GuardedServerLimits, PastTheCapAnIdleKeepAliveConnectionMakesRoom) {
  start(ConnectionLimits{.max_connections = 4, .pressure_timeout = 5s});
  std::vector<std::unique_ptr<RawClient>> held;
  for (int i = 0; i < 4; ++i) held.push_back(idle_keep_alive_client(port_));
  RawClient next(port_);
  ASSERT_TRUE(next.connected());
  next.send("GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(status_of(next.read_until_closed(3s)), 200);
  const auto deadline = Clock::now() + 2s;
  int closed = 0;
  while (closed == 0 && Clock::now() < deadline) {
    for (auto& client : held) client->poll_once(5ms);
    closed = int(std::count_if(held.begin(), held.end(), [](auto& c) { return c->closed(); }));
  }
  EXPECT_EQ(closed, 1);
}

TEST_F(GuardedServerLimits, ConnectionsPastTheCapAre503WhenEverySlotIsInARequest) {
  start(ConnectionLimits{.max_connections = 4});
  std::vector<std::unique_ptr<RawClient>> held;
  for (int i = 0; i < 4; ++i) {
    held.push_back(std::make_unique<RawClient>(port_));
    ASSERT_TRUE(held.back()->connected());
    held.back()->send("GET /hold HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  }
  const auto deadline = Clock::now() + 3s;
  while (holding_ < 4 && Clock::now() < deadline) std::this_thread::sleep_for(5ms);
  ASSERT_EQ(holding_, 4);
  RawClient extra(port_);
  ASSERT_TRUE(extra.connected());
  const auto asked = Clock::now();
  const std::string refused = extra.read_until_closed(3s);
  EXPECT_EQ(status_of(refused), 503) << refused;
  EXPECT_LT(Clock::now() - asked, 1s);

  release_holds();  // the requests end and their connections close: their slots are free
  for (auto& client : held) EXPECT_EQ(status_of(client->read_until_closed(3s)), 200);
  RawClient next(port_);
  next.send("GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(status_of(next.read_until_closed(3s)), 200);
}

TEST_F(GuardedServerLimits, AnAddressAtItsCapMakesRoomFromItsOwnConnections) {
  start(ConnectionLimits{
      .max_connections = 8, .max_connections_per_address = 2, .pressure_timeout = 5s});
  auto a1 = idle_client(port_, "127.0.0.2");
  auto a2 = idle_client(port_, "127.0.0.2");
  auto b1 = idle_client(port_, "127.0.0.3");
  auto b2 = idle_client(port_, "127.0.0.3");
  RawClient next(port_, "127.0.0.2");
  ASSERT_TRUE(next.connected());
  next.send("GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(status_of(next.read_until_closed(3s)), 200);
  EXPECT_TRUE(closed_within(*a1, 2s)) << "the address's oldest connection was kept";
  for (RawClient* kept : {a2.get(), b1.get(), b2.get()}) {
    kept->poll_once(0ms);
    EXPECT_FALSE(kept->closed());
  }
}

// Connections that send nothing and reconnect as soon as they are cut keep the slots full and
// the listen backlog long; a client whose request follows its connect by a few tens of
// milliseconds (a busy machine, a round trip) must still be served: the server does not cut a
// connection that has sent nothing before its grace is over, however fast others arrive.
TEST_F(GuardedServerLimits, AFloodOfSilentConnectionsDoesNotCutAClientSlowToSendItsRequest) {
  start(
      ConnectionLimits{.max_connections = 8, .pressure_timeout = 5s, .first_request_grace = 100ms});
  test::IdleFlood flood(port_, {"127.0.0.2"}, 32, 30s, 1'000'000);
  const auto warming = Clock::now() + 10s;
  while (flood.cuts() < 32 && Clock::now() < warming) std::this_thread::sleep_for(5ms);
  ASSERT_GE(flood.cuts(), 32u) << "the flood never filled the slots";
  int served = 0;
  std::string first_failure;
  for (int i = 0; i < 5; ++i) {
    RawClient client(port_);
    ASSERT_TRUE(client.connected());
    std::this_thread::sleep_for(30ms);  // connected, its request not sent yet
    client.send("GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    const std::string response = client.read_until_closed(5s);
    if (status_of(response) == 200)
      ++served;
    else if (first_failure.empty())
      first_failure = response.empty() ? "closed without an answer" : response.substr(0, 80);
  }
  EXPECT_EQ(served, 5) << first_failure;
}

// Near the limit on open files the server keeps descriptor_reserve descriptors free for the
// rest of the process (the store, the probes): 64 silent connections are held, then this
// process's limit is lowered below what it has open (the flood's sockets count here too); the
// server must give back enough of them that the process can open files again.
TEST_F(GuardedServerLimits, NearTheDescriptorLimitTheServerLeavesTheReserveToTheProcess) {
  start(ConnectionLimits{.pressure_timeout = 5s, .descriptor_reserve = 8});
  constexpr std::size_t kFlood = 64;
  test::IdleFlood flood(port_, {"127.0.0.2"}, kFlood, 30s, 1'000'000);
  const auto connecting = Clock::now() + 10s;
  while (flood.connects() < kFlood && Clock::now() < connecting) std::this_thread::sleep_for(5ms);
  ASSERT_GE(flood.connects(), kFlood);
  std::this_thread::sleep_for(200ms);  // the server has accepted them all
  rlimit original{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &original), 0);
  const auto open_now = std::distance(std::filesystem::directory_iterator("/proc/self/fd"), {});
  rlimit lowered = original;
  lowered.rlim_cur = rlim_t(open_now) - 32;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &lowered), 0);
  // The server gives back connections (the flood sees them cut and reconnects, which costs
  // this process nothing: it closes one socket for each it opens).
  // It does so within its recount period, not at the very cut that brings the process back
  // under the limit: wait (bounded) until the process can open four files at once.
  const auto shedding = Clock::now() + 5s;
  while (flood.cuts() < 32 && Clock::now() < shedding) std::this_thread::sleep_for(5ms);
  std::size_t opened = 0;
  while (true) {
    std::vector<int> files;
    for (int i = 0; i < 4; ++i) {
      const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      if (fd >= 0) files.push_back(fd);
    }
    opened = files.size();
    for (const int fd : files) ::close(fd);
    if (opened == 4 || Clock::now() >= shedding) break;
    std::this_thread::sleep_for(10ms);
  }
  std::string response;
  {
    RawClient client(port_);
    if (client.connected()) {
      client.send("GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
      response = client.read_until_closed(5s);
    }
  }
  flood.stop();
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &original), 0);
  EXPECT_GE(flood.cuts(), 32u) << "the server kept every connection";
  EXPECT_EQ(opened, 4u) << "the server left the process no descriptor";
  EXPECT_EQ(status_of(response), 200) << response;
}

TEST_F(GuardedServerLimits, IdleTimeoutsShrinkUnderPressure) {
  start(ConnectionLimits{.max_connections = 10, .pressure_timeout = 1s});  // read timeout 5 s
  // Below half the cap: idle connections keep the whole read timeout.
  std::vector<std::unique_ptr<RawClient>> idle;
  for (int i = 0; i < 4; ++i) idle.push_back(std::make_unique<RawClient>(port_));
  EXPECT_FALSE(closed_within(*idle.back(), 2s));
  // At the cap the idle timeout is down to pressure_timeout: the four, idle for 2 s, are closed
  // at once (the newer six are not yet 1 s old).
  for (int i = 0; i < 6; ++i) idle.push_back(std::make_unique<RawClient>(port_));
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(closed_within(*idle[std::size_t(i)], 500ms)) << i;
  idle.back()->poll_once(0ms);
  EXPECT_FALSE(idle.back()->closed());
  EXPECT_EQ(idle.front()->received(), "") << "an idle connection is closed without an answer";
}

TEST_F(GuardedServerLimits, ATrickledBodyIsCutAtTheRequestDeadline) {
  start(ConnectionLimits{.head_deadline = 1s, .request_deadline = 2s});
  RawClient client(port_);
  ASSERT_TRUE(client.connected());
  client.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n");
  const auto started = Clock::now();
  // A byte every 200 ms: never idle for the 5 s read timeout, but the whole request is too slow.
  while (!client.closed() && Clock::now() - started < 6s) {
    client.send("z");
    client.poll_once(200ms);
  }
  EXPECT_TRUE(client.closed());
  EXPECT_LT(Clock::now() - started, 3500ms);
  EXPECT_GE(Clock::now() - started, 1500ms);
}

TEST_F(GuardedServerLimits, AClientThatDoesNotReadIsCutAtTheRequestDeadline) {
  start(ConnectionLimits{.request_deadline = 2s});
  RawClient client(port_);
  ASSERT_TRUE(client.connected());
  client.send("GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
  // Not reading: the socket buffers fill long before 64 MiB and the server's writes stall.
  std::this_thread::sleep_for(3s);
  const std::string got = client.read_until_closed(5s);
  EXPECT_TRUE(client.closed());
  EXPECT_EQ(status_of(got), 200);
  EXPECT_LT(got.size(), kBigBody) << "the whole answer was written to a client not reading";
}

TEST_F(GuardedServerLimits, StopIsPromptWithSlowClientsConnected) {
  start(ConnectionLimits{});
  std::vector<std::unique_ptr<RawClient>> slow;
  for (int i = 0; i < 20; ++i) {
    slow.push_back(std::make_unique<RawClient>(port_));
    slow.back()->send("GET /ok HTTP/1.1\r\nHost");
  }
  std::this_thread::sleep_for(200ms);
  const auto asked = Clock::now();
  server_->stop();
  thread_.join();
  EXPECT_LT(Clock::now() - asked, 1s);
}

}  // namespace
}  // namespace vigil

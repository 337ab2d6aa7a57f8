// The write API and pushes, over real HTTP against a real ApiServer and a real store of each
// backend (a SQLite file, a PostgreSQL schema). These run the API the way `vigil api` does (no
// runner in the process): writes land in the store, pushed beats are queued there for the runner
// process. The runner following them is tested end to end (e2e_manage_test).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <prometheus/registry.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "api/auth.h"
#include "api/server.h"
#include "config/config.h"
#include "storage/store.h"
#include "support/store_backends.h"
#include "support/target_server.h"
#include "support/test_data.h"

namespace vigil {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kWriteToken = "write-token-0123456789abcdef";
constexpr const char* kReadToken = "read-token-0123456789abcdef";

struct WriteReply {
  int status = 0;
  json body;
  std::string raw;
  httplib::Headers headers;
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
  std::string error() const { return body.is_object() ? body.value("error", "") : ""; }
};

WriteReply to_reply(const httplib::Result& result) {
  if (!result) throw std::runtime_error("request failed: " + httplib::to_string(result.error()));
  WriteReply reply;
  reply.status = result->status;
  reply.raw = result->body;
  reply.headers = result->headers;
  if (result->get_header_value("Content-Type") == "application/json")
    reply.body = json::parse(result->body);
  return reply;
}

// The message parse_services gives for a services file holding just `entry`, with the file's
// prefix replaced by the API's: what the API must answer for the same object.
std::string file_message_as_api(const json& entry) {
  const std::string prefix = "services.json: services[0]";
  try {
    parse_services(json::array({entry}).dump(), "services.json", Settings{});
  } catch (const ConfigError& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.rfind(prefix, 0), 0u) << message;
    return "service" + message.substr(prefix.size());
  }
  ADD_FAILURE() << "the file accepted " << entry.dump();
  return "";
}

using test::probed;

// One raw HTTP/1.1 exchange (httplib::Client always sends a Content-Length with a body method):
// the whole reply, or "" when nothing arrives within `wait`.
std::string raw_exchange(int port, const std::string& request, std::chrono::milliseconds wait) {
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
    char buffer[2048];
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n > 0) reply.assign(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return reply;
}

// A local IPv4 address that is not loopback (to be a "remote" client of ourselves), if any.
std::optional<std::string> non_loopback_address() {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return std::nullopt;
  std::optional<std::string> found;
  for (ifaddrs* a = list; a && !found; a = a->ifa_next) {
    if (!a->ifa_addr || a->ifa_addr->sa_family != AF_INET) continue;
    char text[INET_ADDRSTRLEN];
    const auto* in = reinterpret_cast<sockaddr_in*>(a->ifa_addr);
    if (!::inet_ntop(AF_INET, &in->sin_addr, text, sizeof text)) continue;
    if (!is_loopback_address(text)) found = text;
  }
  ::freeifaddrs(list);
  return found;
}

class ApiWriteTest : public test::StoreBackendTest {
 protected:
  void SetUp() override {
    StoreBackendTest::SetUp();
    if (IsSkipped()) return;
    store_ = database().open();
  }
  void TearDown() override {
    client_.reset();
    if (server_) server_->stop();
  }

  void start(ApiOptions options = {}, const std::string& host = "127.0.0.1") {
    server_ = std::make_unique<ApiServer>(*store_, registry_, HealthCheck{}, std::move(options));
    port_ = server_->start(host, 0);
    host_ = host;
    client_ = std::make_unique<httplib::Client>(host, port_);
    client_->set_read_timeout(5s);
  }

  httplib::Headers auth(const char* token) const {
    if (!token) return {};
    return {{"Authorization", std::string("Bearer ") + token}};
  }

  WriteReply get(const std::string& path, const char* token = nullptr) {
    return to_reply(client_->Get(path.c_str(), auth(token)));
  }
  WriteReply post(const std::string& path, const std::string& body, const char* token = nullptr,
                  const char* type = "application/json") {
    return to_reply(client_->Post(path.c_str(), auth(token), body, type));
  }
  WriteReply post(const std::string& path, const json& body, const char* token = nullptr) {
    return post(path, body.dump(), token);
  }
  WriteReply patch(const std::string& path, const json& body, const char* token = nullptr) {
    return to_reply(client_->Patch(path.c_str(), auth(token), body.dump(), "application/json"));
  }
  WriteReply del(const std::string& path, const char* token = nullptr) {
    return to_reply(client_->Delete(path.c_str(), auth(token)));
  }

  json create(const json& body, const char* token = nullptr) {
    const WriteReply reply = post("/v1/services", body, token);
    EXPECT_EQ(reply.status, 201) << reply.raw;
    return reply.body["data"]["service"];
  }

  static std::string path_of(const json& service, const std::string& rest = "") {
    return "/v1/services/" + std::to_string(service["id"].get<ServiceId>()) + rest;
  }

  std::vector<std::string> names(const std::string& query) {
    const WriteReply reply = get("/v1/services" + query);
    EXPECT_EQ(reply.status, 200) << reply.raw;
    std::vector<std::string> out;
    for (const auto& s : reply.body["data"]["services"]["data"]) out.push_back(s["name"]);
    return out;
  }

  std::unique_ptr<Store> store_;
  prometheus::Registry registry_;
  std::unique_ptr<ApiServer> server_;
  std::unique_ptr<httplib::Client> client_;
  std::string host_;
  int port_ = 0;
};

INSTANTIATE_TEST_SUITE_P(Backends, ApiWriteTest, test::kStoreBackends, test::backend_name);

// Who may write and read, decided before the store is reached: SQLite only.
class ApiWriteAuthTest : public ApiWriteTest {};
INSTANTIATE_TEST_SUITE_P(SqliteOnly, ApiWriteAuthTest, test::kSqliteOnly, test::backend_name);

TEST_P(ApiWriteTest, CreateAnswers201WithTheStoredServiceAndListsIt) {
  start();
  const json created = create({{"name", "payments"},
                               {"url", "https://pay.test/health"},
                               {"interval_seconds", 30},
                               {"team", "payments"},
                               {"priority", "p1"},
                               {"runbook", "https://wiki.test/pay"},
                               {"tags", {"prod", "eu"}}});
  EXPECT_GT(created["id"].get<int>(), 0);
  EXPECT_EQ(created["name"], "payments");
  EXPECT_EQ(created["kind"], "http");
  EXPECT_EQ(created["source"], "api");
  EXPECT_EQ(created["team"], "payments");
  EXPECT_EQ(created["priority"], "p1");
  EXPECT_EQ(created["runbook"], "https://wiki.test/pay");
  EXPECT_EQ(created["tags"], json({"prod", "eu"}));
  EXPECT_EQ(created["muted"], false);
  EXPECT_TRUE(created["muted_until"].is_null());
  EXPECT_EQ(created["status"], "unknown");
  EXPECT_EQ(created["active"], true);
  EXPECT_FALSE(created.contains("push_token"));

  const auto stored = store_->get_service(created["id"].get<ServiceId>());
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->service.spec.url, "https://pay.test/health");
  EXPECT_EQ(stored->service.spec.interval, 30s);
  EXPECT_EQ(stored->service.source, ServiceSource::api);
  EXPECT_EQ(names(""), std::vector<std::string>{"payments"});
  const WriteReply one = get(path_of(created));
  EXPECT_EQ(one.body["data"]["service"]["team"], "payments");
}

TEST_P(ApiWriteTest, AHeartbeatShowsItsPushTokenOnCreateAndToAuthorisedReadersOnly) {
  ApiOptions options;
  options.write_token = kWriteToken;
  options.read_token = kReadToken;
  start(options);
  const json beat =
      create({{"name", "backup"}, {"kind", "heartbeat"}, {"interval_seconds", 60}}, kWriteToken);
  const std::string token = beat.value("push_token", "");
  EXPECT_EQ(token.size(), 32u) << beat.dump();
  EXPECT_TRUE(beat["url"].is_null());
  EXPECT_DOUBLE_EQ(beat["grace_seconds"].get<double>(), 6.0);
  EXPECT_EQ(beat["threshold"], 1);
  EXPECT_EQ(beat["kind"], "heartbeat");

  // Never in a listing, even for writers; in GET one to writers and read-token holders.
  const WriteReply listing = get("/v1/services", kWriteToken);
  EXPECT_FALSE(listing.body["data"]["services"]["data"][0].contains("push_token"));
  EXPECT_EQ(listing.raw.find(token), std::string::npos);
  EXPECT_EQ(get(path_of(beat), kWriteToken).body["data"]["service"]["push_token"], token);
  EXPECT_EQ(get(path_of(beat), kReadToken).body["data"]["service"]["push_token"], token);
}

TEST_P(ApiWriteTest, WithoutTokensALoopbackClientIsAnAuthorisedReader) {
  start();
  const json beat = create({{"name", "backup"}, {"kind", "heartbeat"}, {"interval_seconds", 60}});
  EXPECT_EQ(get(path_of(beat)).body["data"]["service"]["push_token"], beat["push_token"]);
}

TEST_P(ApiWriteTest, ReadersWithoutAWriteOrReadTokenDoNotSeePushTokens) {
  ApiOptions options;
  options.write_token = kWriteToken;
  start(options);  // reads open: anyone reads, but only writers see secrets
  const json beat =
      create({{"name", "b"}, {"kind", "heartbeat"}, {"interval_seconds", 60}}, kWriteToken);
  const WriteReply anonymous = get(path_of(beat));
  ASSERT_EQ(anonymous.status, 200);
  EXPECT_FALSE(anonymous.body["data"]["service"].contains("push_token"));
  EXPECT_EQ(anonymous.raw.find(beat["push_token"].get<std::string>()), std::string::npos);
}

TEST_P(ApiWriteTest, EveryValidationErrorIs400WithTheServicesFileMessage) {
  start();
  const std::vector<json> bad = {
      {{"url", "http://a/"}},
      {{"name", ""}, {"url", "http://a/"}},
      {{"name", " padded"}, {"url", "http://a/"}},
      {{"name", "x"}},
      {{"name", "x"}, {"url", "ftp://a/"}},
      {{"name", "x"}, {"url", "http://a:99999/"}},
      {{"name", "x"}, {"url", "http://a/"}, {"interval_seconds", "ten"}},
      {{"name", "x"}, {"url", "http://a/"}, {"interval_seconds", 0.01}},
      {{"name", "x"}, {"url", "http://a/"}, {"interval_seconds", 1}, {"timeout_seconds", 2}},
      {{"name", "x"}, {"url", "http://a/"}, {"method", "BREW"}},
      {{"name", "x"}, {"url", "http://a/"}, {"headers", {{"Bad Name", "v"}}}},
      {{"name", "x"}, {"url", "http://a/"}, {"expected_status", {700}}},
      {{"name", "x"}, {"url", "http://a/"}, {"surprise", 1}},
      {{"name", "x"}, {"kind", "cron"}},
      {{"name", "x"}, {"kind", "heartbeat"}},
      {{"name", "x"}, {"kind", "heartbeat"}, {"interval_seconds", 60}, {"url", "http://a/"}},
      {{"name", "x"}, {"kind", "heartbeat"}, {"interval_seconds", 60}, {"grace_seconds", -1}},
      {{"name", "x"}, {"kind", "heartbeat"}, {"interval_seconds", 60}, {"threshold", 0}},
      {{"name", "x"}, {"url", "http://a/"}, {"threshold", 2}},
      {{"name", "x"}, {"url", "http://a/"}, {"team", 5}},
      {{"name", "x"}, {"url", "http://a/"}, {"priority", "urgent"}},
      {{"name", "x"}, {"url", "http://a/"}, {"runbook", "wiki"}},
      {{"name", "x"}, {"url", "http://a/"}, {"tags", {"a", "a"}}},
      {{"name", "x"}, {"url", "http://a/"}, {"muted", "yes"}},
      {{"name", "x"}, {"url", "http://a/"}, {"muted_until", "soon"}},
  };
  for (const json& entry : bad) {
    const WriteReply reply = post("/v1/services", entry);
    EXPECT_EQ(reply.status, 400) << entry.dump() << " -> " << reply.raw;
    EXPECT_EQ(reply.error(), file_message_as_api(entry)) << entry.dump();
  }
  // Bodies that are not a service object at all.
  EXPECT_EQ(post("/v1/services", std::string("{not json")).error().rfind("body: not valid JSON", 0),
            0u);
  EXPECT_EQ(post("/v1/services", json::array({1})).error(),
            "body: expected a JSON object, got [1]");
  EXPECT_EQ(post("/v1/services", std::string("")).status, 400);
  EXPECT_TRUE(store_->list_services().empty());
}

TEST_P(ApiWriteTest, ADuplicateNameIs409AndABodyOver64KiBIs413) {
  start();
  store_->sync_services({probed("from-file")}, now_ms());
  const json first = create({{"name", "taken"}, {"url", "http://a/"}});
  const WriteReply again = post("/v1/services", json{{"name", "taken"}, {"url", "http://b/"}});
  EXPECT_EQ(again.status, 409) << again.raw;
  EXPECT_NE(again.error().find("\"taken\" is already taken by service " +
                               std::to_string(first["id"].get<int>())),
            std::string::npos)
      << again.error();
  EXPECT_EQ(post("/v1/services", json{{"name", "from-file"}, {"url", "http://b/"}}).status, 409);

  const json big = {{"name", "big"}, {"url", "http://a/"}, {"team", std::string(70 * 1024, 't')}};
  const WriteReply too_big = post("/v1/services", big);
  EXPECT_EQ(too_big.status, 413) << too_big.raw.substr(0, 200);
  EXPECT_NE(too_big.error().find("65536"), std::string::npos);
  EXPECT_EQ(store_->list_services().size(), 2u);
}

TEST_P(ApiWriteTest, PatchMergesOntoTheServiceAndValidatesTheWhole) {
  start();
  const json created = create({{"name", "pay"},
                               {"url", "http://a/"},
                               {"interval_seconds", 10},
                               {"timeout_seconds", 2},
                               {"team", "payments"},
                               {"tags", {"prod"}}});
  const std::string path = path_of(created);
  WriteReply reply =
      patch(path, {{"interval_seconds", 5}, {"tags", {"prod", "eu"}}, {"team", nullptr}});
  ASSERT_EQ(reply.status, 200) << reply.raw;
  const json& patched = reply.body["data"]["service"];
  EXPECT_EQ(patched["id"], created["id"]);
  EXPECT_DOUBLE_EQ(patched["interval_seconds"].get<double>(), 5.0);
  EXPECT_EQ(patched["tags"], json({"prod", "eu"}));
  EXPECT_TRUE(patched["team"].is_null());
  const auto stored = store_->get_service(created["id"].get<ServiceId>());
  EXPECT_EQ(stored->service.spec.url, "http://a/");
  EXPECT_EQ(stored->service.spec.timeout, 2s);

  // The whole result is checked, with the file's messages.
  reply = patch(path, {{"interval_seconds", 1}});
  EXPECT_EQ(reply.status, 400);
  EXPECT_EQ(reply.error(), "service (\"pay\").timeout_seconds: 2 is above the interval of 1 s");
  reply = patch(path, {{"url", "gopher://a/"}});
  EXPECT_EQ(reply.error(), file_message_as_api({{"name", "pay"}, {"url", "gopher://a/"}}));
  EXPECT_EQ(patch(path, {{"kind", "heartbeat"}}).error(),
            "service.kind: cannot be changed (create a new service of the other kind)");
  EXPECT_EQ(patch(path, {{"active", "no"}}).error(), "active: expected true or false, got \"no\"");
  EXPECT_EQ(patch(path, {{"bogus", 1}}).status, 400);
  EXPECT_EQ(store_->get_service(created["id"].get<ServiceId>())->service.spec.interval, 5s);

  // Renaming onto another service's name, unknown ids, bad ids.
  create({{"name", "other"}, {"url", "http://b/"}});
  EXPECT_EQ(patch(path, {{"name", "other"}}).status, 409);
  EXPECT_EQ(patch("/v1/services/999", {{"team", "x"}}).status, 404);
  EXPECT_EQ(patch("/v1/services/abc", {{"team", "x"}}).status, 400);
}

TEST_P(ApiWriteTest, SnoozeEndsByItselfAndMutingAnewDropsIt) {
  start();
  const json created = create({{"name", "noisy"}, {"url", "http://a/"}});
  const auto until = to_unix_seconds(now_ms()) + 2;
  WriteReply reply = patch(path_of(created), {{"muted_until", until}});
  ASSERT_EQ(reply.status, 200) << reply.raw;
  EXPECT_EQ(reply.body["data"]["service"]["muted"], true);
  EXPECT_EQ(reply.body["data"]["service"]["muted_until"], until);
  EXPECT_EQ(names("?muted=true"), std::vector<std::string>{"noisy"});
  // Past muted_until it reads as not muted, with no write in between.
  const auto deadline = std::chrono::steady_clock::now() + 4s;
  while (std::chrono::steady_clock::now() < deadline &&
         get(path_of(created)).body["data"]["service"]["muted"] == true)
    std::this_thread::sleep_for(100ms);
  const json after = get(path_of(created)).body["data"]["service"];
  EXPECT_EQ(after["muted"], false);
  EXPECT_TRUE(after["muted_until"].is_null());
  EXPECT_TRUE(names("?muted=true").empty());
  EXPECT_GE(to_unix_seconds(now_ms()), until);

  reply = patch(path_of(created), {{"muted", true}});
  EXPECT_EQ(reply.body["data"]["service"]["muted"], true);
  EXPECT_TRUE(reply.body["data"]["service"]["muted_until"].is_null());
}

TEST_P(ApiWriteTest, DeleteDeactivatesKeepingHistoryAndPurgeDeletesIt) {
  start();
  const json created = create({{"name", "old"}, {"url", "http://a/"}});
  const auto id = created["id"].get<ServiceId>();
  Metric metric;
  TickRecord record;
  record.tick.service_id = id;
  record.tick.ts = now_ms();
  record.tick.up = true;
  metric.add(true, 1);
  record.metric_after = metric;
  record.opens_event = EventKind::uptime;
  store_->apply({record});

  WriteReply reply = del(path_of(created));
  ASSERT_EQ(reply.status, 200) << reply.raw;
  EXPECT_EQ(reply.body["data"]["service"]["active"], false);
  EXPECT_TRUE(names("").empty());
  EXPECT_EQ(get(path_of(created)).body["data"]["service"]["metric"]["data"]["tick_count"], 1);
  // Reactivated by PATCH, then deactivated again.
  reply = patch(path_of(created), {{"active", true}});
  EXPECT_EQ(reply.body["data"]["service"]["active"], true);
  EXPECT_EQ(names(""), std::vector<std::string>{"old"});

  EXPECT_EQ(del(path_of(created) + "?purge=maybe").error(), "purge must be true or false");
  reply = del(path_of(created) + "?purge=true");
  ASSERT_EQ(reply.status, 200) << reply.raw;
  EXPECT_EQ(reply.body["data"]["purged"], true);
  EXPECT_EQ(get(path_of(created)).status, 404);
  EXPECT_TRUE(store_->ticks(id, {}).empty());
  EXPECT_EQ(del(path_of(created)).status, 404);
  // The name is free again.
  create({{"name", "old"}, {"url", "http://a/"}});
}

TEST_P(ApiWriteTest, FileServicesAreChangedInTheFileNotThroughTheApi) {
  start();
  store_->sync_services({probed("filed")}, now_ms());
  const ServiceId id = store_->list_services()[0].service.id;
  const std::string path = "/v1/services/" + std::to_string(id);
  WriteReply reply = patch(path, {{"team", "x"}});
  EXPECT_EQ(reply.status, 409);
  EXPECT_NE(reply.error().find("managed by the services file"), std::string::npos);
  EXPECT_EQ(del(path).status, 409);
  EXPECT_EQ(del(path + "?purge=true").status, 409);  // still in the file
  EXPECT_EQ(get(path).body["data"]["service"]["source"], "file");
  // Once the file drops it, its history can be purged.
  store_->sync_services({}, now_ms());
  EXPECT_EQ(del(path + "?purge=true").status, 200);
  EXPECT_FALSE(store_->get_service(id));
}

TEST_P(ApiWriteAuthTest, WritesNeedTheTokenWhenItIsSet) {
  ApiOptions options;
  options.write_token = kWriteToken;
  start(options);
  const json body = {{"name", "a"}, {"url", "http://a/"}};
  WriteReply reply = post("/v1/services", body);
  EXPECT_EQ(reply.status, 401);
  EXPECT_EQ(reply.header("WWW-Authenticate"), "Bearer");
  EXPECT_EQ(reply.error(), "this route needs Authorization: Bearer <API_TOKEN>");
  reply = post("/v1/services", body, "wrong-token-0123456789");
  EXPECT_EQ(reply.status, 403);
  EXPECT_EQ(reply.error(), "wrong token");
  // A prefix or an extension of the token is just as wrong.
  EXPECT_EQ(post("/v1/services", body, "write-token-0123456789abcde").status, 403);
  EXPECT_EQ(post("/v1/services", body, "write-token-0123456789abcdef0").status, 403);
  EXPECT_EQ(to_reply(client_->Post("/v1/services", {{"Authorization", "Basic abc"}}, body.dump(),
                                   "application/json"))
                .status,
            401);
  EXPECT_TRUE(store_->list_services().empty());
  EXPECT_EQ(to_reply(client_->Post("/v1/services",
                                   {{"Authorization", std::string("bearer ") + kWriteToken}},
                                   body.dump(), "application/json"))
                .status,
            201);
  const json created = get("/v1/services").body["data"]["services"]["data"][0];
  EXPECT_EQ(patch(path_of(created), {{"team", "x"}}).status, 401);
  EXPECT_EQ(del(path_of(created), "nope-nope-nope-nope").status, 403);
  EXPECT_EQ(patch(path_of(created), {{"team", "x"}}, kWriteToken).status, 200);
  EXPECT_EQ(del(path_of(created), kWriteToken).status, 200);
  // Reads stay open.
  EXPECT_EQ(get("/v1/services").status, 200);
  EXPECT_EQ(get("/metrics").status, 200);
}

TEST_P(ApiWriteAuthTest, WithoutATokenWritesAreAcceptedOnlyFromLoopback) {
  const auto address = non_loopback_address();
  if (!address) GTEST_SKIP() << "no non-loopback IPv4 address on this machine";
  // Listening on a non-loopback address of this machine and connecting to it makes this
  // process a client whose address is not loopback.
  start({}, *address);
  const json body = {{"name", "a"}, {"url", "http://a/"}};
  WriteReply reply = post("/v1/services", body);
  EXPECT_EQ(reply.status, 403) << reply.raw;
  EXPECT_EQ(reply.error(),
            "writes are accepted only from loopback clients while API_TOKEN is not set");
  // Even a token does not help when none is configured.
  EXPECT_EQ(post("/v1/services", body, kWriteToken).status, 403);
  EXPECT_EQ(get("/v1/services").status, 200);
  EXPECT_TRUE(store_->list_services().empty());
}

TEST_P(ApiWriteAuthTest, AReadTokenGuardsReadsButNotHealthOrPushes) {
  ApiOptions options;
  options.write_token = kWriteToken;
  options.read_token = kReadToken;
  start(options);
  const json beat =
      create({{"name", "b"}, {"kind", "heartbeat"}, {"interval_seconds", 60}}, kWriteToken);
  for (const std::string& path :
       std::vector<std::string>{"/v1/services", path_of(beat), path_of(beat, "/events"),
                                path_of(beat, "/ticks"), "/metrics"}) {
    EXPECT_EQ(get(path).status, 401) << path;
    EXPECT_EQ(get(path, "wrong-token-0123456789").status, 403) << path;
    EXPECT_EQ(get(path, kReadToken).status, 200) << path;
    EXPECT_EQ(get(path, kWriteToken).status, 200) << path;
  }
  EXPECT_EQ(get("/v1/services").error(), "this route needs Authorization: Bearer <API_READ_TOKEN>");
  EXPECT_EQ(get("/healthz").status, 200);
  const WriteReply pushed = get("/v1/push/" + beat["push_token"].get<std::string>());
  EXPECT_EQ(pushed.status, 200);
  // The read token does not write.
  EXPECT_EQ(post("/v1/services", json{{"name", "x"}, {"url", "http://a/"}}, kReadToken).status,
            403);
}

TEST_P(ApiWriteTest, ListFiltersAndPages) {
  start();
  create({{"name", "a"}, {"url", "http://a/"}, {"team", "payments"}, {"tags", {"prod"}}});
  create({{"name", "b"}, {"url", "http://b/"}, {"team", "payments"}, {"muted", true}});
  create({{"name", "c"}, {"kind", "heartbeat"}, {"interval_seconds", 60}, {"tags", {"prod"}}});
  const json d = create({{"name", "d"}, {"url", "http://d/"}, {"team", "search"}});
  Metric metric;
  TickRecord down;
  down.tick.service_id = d["id"].get<ServiceId>();
  down.tick.ts = now_ms();
  metric.add(false, 1);
  down.metric_after = metric;
  down.opens_event = EventKind::downtime;
  store_->apply({down});

  using Names = std::vector<std::string>;
  EXPECT_EQ(names(""), (Names{"a", "b", "c", "d"}));
  EXPECT_EQ(names("?team=payments"), (Names{"a", "b"}));
  EXPECT_EQ(names("?tag=prod"), (Names{"a", "c"}));
  EXPECT_EQ(names("?tag=prod&team=payments"), (Names{"a"}));
  EXPECT_EQ(names("?kind=heartbeat"), (Names{"c"}));
  EXPECT_EQ(names("?kind=http"), (Names{"a", "b", "d"}));
  EXPECT_EQ(names("?muted=true"), (Names{"b"}));
  EXPECT_EQ(names("?muted=false"), (Names{"a", "c", "d"}));
  EXPECT_EQ(names("?status=down"), (Names{"d"}));
  EXPECT_EQ(names("?status=up"), Names{});
  EXPECT_EQ(names("?limit=3"), (Names{"a", "b", "c"}));
  const json next = get("/v1/services?limit=3").body["data"]["services"]["next"];
  ASSERT_TRUE(next.is_string());  // a cursor (api/paging.h)
  EXPECT_EQ(names("?limit=3&cursor=" + next.get<std::string>()), (Names{"d"}));
  EXPECT_EQ(names("?limit=3&offset=3"), (Names{"d"}));
  EXPECT_TRUE(get("/v1/services?limit=3&offset=3").body["data"]["services"]["next"].is_null());
  EXPECT_TRUE(get("/v1/services").body["data"]["services"]["next"].is_null());

  for (const std::string bad : {"?status=sideways", "?muted=yes", "?kind=tcp2", "?limit=0",
                                "?limit=1001", "?offset=-1", "?offset=x", "?team="}) {
    const WriteReply reply = get("/v1/services" + bad);
    EXPECT_EQ(reply.status, 400) << bad;
    const std::string param = bad.substr(1, bad.find('=') - 1);
    EXPECT_NE(reply.error().find(param), std::string::npos) << bad << ": " << reply.error();
  }
}

// A job's output in a legacy encoding must not cost the beat: the msg is kept with every byte
// that is not UTF-8 replaced, never refused and never stored raw.
TEST_P(ApiWriteTest, APushMessageThatIsNotUtf8IsKeptWithReplacementCharacters) {
  start();
  const json beat = create({{"name", "job"}, {"kind", "heartbeat"}, {"interval_seconds", 60}});
  const std::string push = "/v1/push/" + beat["push_token"].get<std::string>();
  EXPECT_EQ(get(push + "/fail?msg=%FF").status, 200);
  EXPECT_EQ(
      post(push + "/fail", std::string("msg=caf%E9"), nullptr, "application/x-www-form-urlencoded")
          .status,
      200);
  // 1024 bytes, the most accepted, that grow when replaced: cut again on a character boundary.
  std::string long_message;
  for (int i = 0; i < 1024; ++i) long_message += "%FF";
  EXPECT_EQ(get(push + "/fail?msg=" + long_message).status, 200);
  const auto beats = store_->claim_beats("east", 100);
  ASSERT_EQ(beats.size(), 3u);
  const std::string fffd = "\xEF\xBF\xBD";
  EXPECT_EQ(beats[0].beat.message, fffd);
  EXPECT_EQ(beats[1].beat.message, "caf" + fffd);
  std::string cut;
  while (cut.size() + fffd.size() <= 1024) cut += fffd;
  EXPECT_EQ(beats[2].beat.message, cut);
  for (const auto& queued : beats) EXPECT_FALSE(queued.beat.up);
}

TEST_P(ApiWriteTest, PushesAreQueuedForTheRunnerProcessAndUnknownTokensWriteNothing) {
  start();
  const json beat = create({{"name", "job"}, {"kind", "heartbeat"}, {"interval_seconds", 60}});
  const std::string push = "/v1/push/" + beat["push_token"].get<std::string>();
  const ServiceId id = beat["id"].get<ServiceId>();

  WriteReply reply = get(push);
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.raw, "OK");
  EXPECT_EQ(to_reply(client_->Head(push.c_str())).status, 200);
  EXPECT_EQ(get(push + "?msg=nightly%20run&duration_ms=1500.5").status, 200);
  EXPECT_EQ(post(push, std::string("msg=from+a+form&status=down"), nullptr,
                 "application/x-www-form-urlencoded")
                .status,
            200);
  EXPECT_EQ(post(push + "/fail", json{{"msg", "disk full"}, {"duration_ms", 20}}).status, 200);
  // What `curl -X POST` sends: no body and no length; answered at once.
  const std::string raw =
      raw_exchange(port_, "POST " + push + "/fail HTTP/1.1\r\nHost: x\r\n\r\n", 2000ms);
  EXPECT_EQ(raw.substr(0, raw.find("\r\n")), "HTTP/1.1 200 OK");

  const auto beats = store_->claim_beats("east", 100);
  ASSERT_EQ(beats.size(), 6u);
  for (const auto& queued : beats) EXPECT_EQ(queued.service_id, id);
  EXPECT_TRUE(beats[0].beat.up);
  EXPECT_FALSE(beats[0].beat.duration_ms);
  EXPECT_TRUE(beats[1].beat.up);  // HEAD
  EXPECT_EQ(beats[2].beat.message, "nightly run");
  EXPECT_EQ(beats[2].beat.duration_ms, 1500.5);
  EXPECT_FALSE(beats[3].beat.up);
  EXPECT_EQ(beats[3].beat.message, "from a form");
  EXPECT_FALSE(beats[4].beat.up);
  EXPECT_EQ(beats[4].beat.message, "disk full");
  EXPECT_EQ(beats[4].beat.duration_ms, 20);
  EXPECT_FALSE(beats[5].beat.up);
  const auto now = now_ms();
  for (const auto& queued : beats) EXPECT_LE(now - queued.beat.at, 10s);

  // Unknown tokens: 404 and nothing queued, whatever else the request says.
  for (const std::string& path : std::vector<std::string>{
           "/v1/push/nope", "/v1/push/nope/fail", "/v1/push/" + std::string(32, 'A'), push + "x"}) {
    EXPECT_EQ(get(path).status, 404) << path;
    EXPECT_EQ(get(path).error(), "unknown push token");
    EXPECT_EQ(get(path + "?status=bogus").status, 404) << path;
  }
  EXPECT_TRUE(store_->claim_beats("east", 100).empty());
}

TEST_P(ApiWriteTest, BadPushFieldsAre400AndWriteNothing) {
  start();
  const json beat = create({{"name", "job"}, {"kind", "heartbeat"}, {"interval_seconds", 60}});
  const std::string push = "/v1/push/" + beat["push_token"].get<std::string>();
  const std::pair<std::string, std::string> cases[] = {
      {push + "?status=sideways", "status must be up or down"},
      {push + "/fail?status=up", "status: /fail always records a failure"},
      {push + "?duration_ms=fast", "duration_ms must be a number of milliseconds, 0 or more"},
      {push + "?duration_ms=-4", "duration_ms must be a number of milliseconds, 0 or more"},
      {push + "?msg=" + std::string(1025, 'm'), "msg: at most 1024 bytes, got 1025"},
  };
  for (const auto& [path, message] : cases) {
    const WriteReply reply = get(path);
    EXPECT_EQ(reply.status, 400) << path;
    EXPECT_EQ(reply.error(), message) << path;
  }
  EXPECT_EQ(post(push, json{{"when", "now"}}).error(),
            "body: unknown key \"when\" (known: status, msg, duration_ms)");
  EXPECT_EQ(post(push, json{{"msg", 5}}).error(), "msg: wrong type, got 5");
  EXPECT_EQ(get(push + "?msg=" + std::string(1024, 'm')).status, 200);  // exactly the limit
  EXPECT_EQ(store_->claim_beats("east", 100).size(), 1u);
}

TEST_P(ApiWriteTest, ADeactivatedOrProbedServiceTakesNoPushes) {
  start();
  const json beat = create({{"name", "job"}, {"kind", "heartbeat"}, {"interval_seconds", 60}});
  const std::string push = "/v1/push/" + beat["push_token"].get<std::string>();
  EXPECT_EQ(get(push).status, 200);
  EXPECT_EQ(del(path_of(beat)).status, 200);
  EXPECT_EQ(get(push).status, 404);
  EXPECT_EQ(patch(path_of(beat), {{"active", true}}).status, 200);
  EXPECT_EQ(get(push).status, 200);
  EXPECT_EQ(del(path_of(beat) + "?purge=true").status, 200);
  EXPECT_EQ(get(push).status, 404);
}

}  // namespace
}  // namespace vigil

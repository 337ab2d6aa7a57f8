// Text that is not clean UTF-8 end to end: the real vigil binary probes real targets on 127.0.0.1
// whose answers quote multibyte and invalid text in the reason, and a heartbeat pushed with a
// `%FF` message; each must still go down, open an alert and reach the webhook receiver as valid
// UTF-8 JSON, and what vigil stored must be valid UTF-8 too.
#include <gtest/gtest.h>
#include <httplib.h>
#include <sqlite3.h>

#include <chrono>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "support/raw_target.h"
#include "support/receiver.h"
#include "support/target_server.h"
#include "support/vigil_process.h"

namespace vigil::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// nlohmann's dump throws on invalid UTF-8: the very check the Alerter's JSON makes.
bool valid_utf8(const std::string& text) {
  try {
    (void)json(text).dump();
    return true;
  } catch (const json::exception&) {
    return false;
  }
}

std::string percent_encoded(const std::string& text) {
  static const char* const hex = "0123456789ABCDEF";
  std::string out;
  for (const unsigned char c : text) {
    if (std::isalnum(c)) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::string repeated(const std::string& unit, int times) {
  std::string out;
  for (int i = 0; i < times; ++i) out += unit;
  return out;
}

// Every text value of `sql`'s rows, read straight from the database file.
std::vector<std::string> column_texts(const std::string& db, const std::string& sql) {
  std::vector<std::string> out;
  sqlite3* connection = nullptr;
  if (sqlite3_open_v2(db.c_str(), &connection, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(connection);
    return out;
  }
  sqlite3_busy_timeout(connection, 5000);
  sqlite3_stmt* statement = nullptr;
  if (sqlite3_prepare_v2(connection, sql.c_str(), -1, &statement, nullptr) == SQLITE_OK) {
    while (sqlite3_step(statement) == SQLITE_ROW) {
      for (int i = 0; i < sqlite3_column_count(statement); ++i) {
        const auto* text = sqlite3_column_text(statement, i);
        if (text)
          out.emplace_back(reinterpret_cast<const char*>(text),
                           static_cast<std::size_t>(sqlite3_column_bytes(statement, i)));
      }
    }
  }
  sqlite3_finalize(statement);
  sqlite3_close(connection);
  return out;
}

TEST(EndToEndText, ReasonsThatAreNotCleanUtf8StillGoDownAlertAndNotify) {
  TempDir dir;
  Receiver receiver;
  TargetServer target;
  // A response header in Latin-1, quoted in the reason: 40 x e-acute, one byte each.
  RawTarget latin1([](RawConnection& c) {
    c.read_head();
    c.send("HTTP/1.1 200 OK\r\nX-Info: " + std::string(40, '\xE9') +
           "\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
  });
  const int api_port = closed_port();
  const std::string e_acute = "\xC3\xA9";
  const std::string cjk = "\xE4\xB8\xAD";  // U+4E2D
  const auto json_target = [&](const std::string& value) {
    return target.url("/text?type=application%2Fjson&body=" +
                      percent_encoded(json{{"v", value}}.dump()));
  };
  const json fails_unless_ok = {{"json", {{{"pointer", "/v"}, {"equals", "ok"}}}}};
  // Probed every 2 s with a 2 s timeout, not 0.5 s: a first probe of an ASan-built vigil on a
  // loaded machine can take over half a second, and its alert would then say "timeout", not the
  // text this test is about.
  const json services = {
      {"services",
       {{{"name", "push"}, {"kind", "heartbeat"}, {"interval_seconds", 3600}},
        // "x" first: the quoted value then has e-acutes at odd offsets, so a cut at a byte
        // count falls inside one.
        {{"name", "e-acute"},
         {"url", json_target("x" + repeated(e_acute, 60))},
         {"interval_seconds", 2},
         {"timeout_seconds", 2},
         {"conditions", fails_unless_ok}},
        {{"name", "cjk"},
         {"url", json_target(repeated(cjk, 40))},
         {"interval_seconds", 2},
         {"timeout_seconds", 2},
         {"conditions", fails_unless_ok}},
        {{"name", "latin1-header"},
         {"url", latin1.url("/")},
         {"interval_seconds", 2},
         {"timeout_seconds", 2},
         {"conditions", {{"header", {{"name", "x-info"}, {"contains", "ok"}}}}}}}},
      {"alerting",
       {{"channels", {{"hook", {{"type", "webhook"}, {"url", receiver.url("/hook")}}}}},
        {"default", {"hook"}}}}};
  std::ofstream(dir.file("services.json")) << services.dump(2);
  VigilProcess vigil(dir, "run", api_port);

  httplib::Client client("127.0.0.1", api_port);
  std::map<std::string, std::int64_t> ids;
  std::string token;
  std::string listing;
  ASSERT_TRUE(eventually(
      [&] {
        auto res = client.Get("/v1/services");
        if (!res) return false;
        listing = res->body;
        if (res->status != 200) return false;
        const json body = json::parse(res->body);
        for (const auto& s : body["data"]["services"]["data"])
          ids[s["name"].get<std::string>()] = s["id"].get<std::int64_t>();
        return ids.size() == 4;
      },
      15s))
      << listing << "\n"
      << vigil.log();
  {
    auto res = client.Get("/v1/services/" + std::to_string(ids["push"]));
    ASSERT_TRUE(res);
    token = json::parse(res->body)["data"]["service"]["push_token"].get<std::string>();
  }
  auto pushed = client.Post("/v1/push/" + token + "/fail?msg=%FF", "", "text/plain");
  ASSERT_TRUE(pushed);
  EXPECT_EQ(pushed->status, 200) << pushed->body;

  // One trigger per service, each a valid UTF-8 JSON document naming it.
  std::map<std::string, json> triggers;
  const bool all = eventually(
      [&] {
        for (const auto& body : receiver.bodies("/hook")) {
          const json message = json::parse(body);  // throws on invalid UTF-8
          if (message["kind"] == "trigger")
            triggers[message["service"].get<std::string>()] = message;
        }
        return triggers.size() == 4;
      },
      30s);
  ASSERT_TRUE(all) << triggers.size() << " triggers\n" << vigil.log();
  const std::string fffd = "\xEF\xBF\xBD";
  EXPECT_EQ(triggers["push"]["reason"], "reported down: " + fffd);
  EXPECT_NE(triggers["e-acute"]["reason"].get<std::string>().find("json /v is \"x" +
                                                                  repeated(e_acute, 3)),
            std::string::npos)
      << triggers["e-acute"];
  EXPECT_NE(triggers["cjk"]["reason"].get<std::string>().find(repeated(cjk, 3)), std::string::npos)
      << triggers["cjk"];
  EXPECT_NE(triggers["latin1-header"]["reason"].get<std::string>().find("header x-info is \"" +
                                                                        repeated(fffd, 3)),
            std::string::npos)
      << triggers["latin1-header"];

  // Each went down (a downtime event) and has its alert row.
  auto alerts = client.Get("/v1/alerts?active=true");
  ASSERT_TRUE(alerts);
  std::map<std::int64_t, int> alerted;
  const json alert_list = json::parse(alerts->body);
  for (const auto& a : alert_list["data"]["alerts"]) ++alerted[a["service_id"].get<std::int64_t>()];
  for (const auto& [name, service_id] : ids) {
    const std::int64_t id = service_id;  // a lambda cannot capture a structured binding in clang 14
    EXPECT_EQ(alerted[id], 1) << name;
    // The writer stores the event beside the Alerter's work, not before it.
    std::string events;
    EXPECT_TRUE(eventually(
        [&] {
          auto res = client.Get("/v1/services/" + std::to_string(id) + "/events");
          if (!res) return false;
          events = res->body;
          const json list = json::parse(events)["data"]["events"]["data"];
          return !list.empty() && list[0]["event"] == "downtime";
        },
        10s))
        << name << ": " << events;
  }

  // Stored as valid UTF-8 where it entered: the ticks' errors and messages, the alerts' reasons,
  // the notifications' payloads.
  EXPECT_EQ(vigil.stop(), 0) << vigil.log();
  const std::string db = dir.file("vigil.db");
  for (const auto* sql : {"SELECT error, message FROM service_ticks", "SELECT reason FROM alerts",
                          "SELECT payload FROM notifications"}) {
    const auto texts = column_texts(db, sql);
    EXPECT_FALSE(texts.empty()) << sql;
    for (const auto& text : texts) EXPECT_TRUE(valid_utf8(text)) << sql << ": " << text;
  }
}

}  // namespace
}  // namespace vigil::test

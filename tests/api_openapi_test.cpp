// api/openapi.json against the routes ApiServer actually registers (no route
// undocumented, no documented route missing), served at /openapi.json and rendered at /docs,
// whose HTML is parsed with the strict checker. The routes do not depend on the storage
// backend: SQLite only (the storage-backed routes run on both backends in api_server_test).
#include <gtest/gtest.h>
#include <httplib.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <cctype>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <utility>

#include "api/openapi.h"
#include "api/server.h"
#include "storage/sqlite/sqlite_database.h"
#include "storage/store.h"
#include "support/markup_check.h"
#include "support/target_server.h"

namespace vigil {
namespace {

using nlohmann::json;
using test::MarkupMode;
using test::MarkupNode;
using test::parse_markup;

class OpenApi : public ::testing::Test {
 protected:
  void SetUp() override {
    store = open_sqlite_store(dir.file("vigil.db"));
    server = std::make_unique<ApiServer>(*store, registry, [] { return HealthReport{}; });
    client = std::make_unique<httplib::Client>("127.0.0.1", server->start("127.0.0.1", 0));
  }
  httplib::Result get(const std::string& path) { return client->Get(path.c_str()); }

  test::TempDir dir;
  std::unique_ptr<Store> store;
  prometheus::Registry registry;
  std::unique_ptr<ApiServer> server;
  std::unique_ptr<httplib::Client> client;
};

// Every registered route is documented and every documented one registered.
TEST_F(OpenApi, DocumentsExactlyTheRegisteredRoutes) {
  const json doc = json::parse(openapi_document());
  ASSERT_TRUE(doc["openapi"].get<std::string>().starts_with("3."));
  std::set<std::pair<std::string, std::string>> registered, documented;
  for (const RouteInfo& route : server->routes()) {
    std::string method = route.method;
    for (char& c : method) c = char(std::tolower(static_cast<unsigned char>(c)));
    registered.emplace(method, route.path);
  }
  for (const auto& [path, item] : doc["paths"].items()) {
    // A path served by another registered route says which (/v1/push/{token}/fail).
    const std::string route = item.value("x-vigil-route", path);
    for (const auto& [key, operation] : item.items()) {
      if (key.starts_with("x-")) continue;
      ASSERT_TRUE(operation.contains("responses")) << key << " " << path;
      ASSERT_TRUE(operation.contains("summary")) << key << " " << path;
      documented.emplace(key, route);
    }
  }
  for (const auto& r : registered)
    EXPECT_TRUE(documented.count(r)) << "undocumented route: " << r.first << " " << r.second;
  for (const auto& d : documented)
    EXPECT_TRUE(registered.count(d))
        << "documented but not registered: " << d.first << " " << d.second;
  EXPECT_GE(registered.size(), 25u);

  // Every $ref resolves.
  std::function<void(const json&)> check_refs = [&](const json& node) {
    if (node.is_object()) {
      if (node.contains("$ref")) {
        const std::string ref = node["$ref"];
        EXPECT_NO_THROW(doc.at(json::json_pointer(ref.substr(1)))) << ref;
      }
      for (const auto& [k, v] : node.items()) check_refs(v);
    } else if (node.is_array()) {
      for (const auto& v : node) check_refs(v);
    }
  };
  check_refs(doc);

  // Served as is, and /docs lists every documented operation.
  const auto served = get("/openapi.json");
  EXPECT_EQ(json::parse(served->body), doc);
  const auto docs = get("/docs");
  EXPECT_EQ(docs->get_header_value("Content-Type"), "text/html; charset=utf-8");
  const MarkupNode page = parse_markup(docs->body, MarkupMode::html);
  std::size_t operations = 0;
  for (const auto& [path, item] : doc["paths"].items())
    for (const auto& [key, unused] : item.items())
      if (!key.starts_with("x-")) ++operations;
  EXPECT_EQ(page.all("section", "class", "op").size(), operations);
}

// /healthz's body as the server writes it, against its documented schema: no undocumented key.
TEST_F(OpenApi, DocumentsEveryFieldOfTheHealthBody) {
  const json doc = json::parse(openapi_document());
  const json& health = doc.at(json::json_pointer("/components/schemas/Health/properties"));
  const json& part = doc.at(json::json_pointer("/components/schemas/PartHealth/properties"));
  ApiServer live(*store, registry, [] {
    HealthReport report;
    report.parts.push_back(PartProgress{"runner", "local", now_ms() - Millis(60'000)});
    report.parts.push_back(PartProgress{"writer", "local", now_ms()});
    report.storage_failure = "storage: apply: database is locked";
    return report;
  });
  httplib::Client live_client("127.0.0.1", live.start("127.0.0.1", 0));
  const auto res = live_client.Get("/healthz");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503);
  const json body = json::parse(res->body);
  ASSERT_TRUE(body.contains("error"));
  for (const auto& [key, value] : body["data"].items()) {
    EXPECT_TRUE(health.contains(key)) << "undocumented /healthz field data." << key;
    if (!value.is_object()) continue;
    for (const auto& [field, unused] : value.items())
      EXPECT_TRUE(part.contains(field)) << "undocumented field data." << key << "." << field;
    EXPECT_NE(
        std::find(part["status"]["enum"].begin(), part["status"]["enum"].end(), value["status"]),
        part["status"]["enum"].end())
        << value;
  }
  EXPECT_EQ(body["data"]["runner"]["status"], "silent");
  EXPECT_EQ(body["data"]["storage"], "failing");
}

TEST(OpenApiDocs, RejectsADocumentWithoutPaths) {
  EXPECT_THROW(render_docs_html("{}"), std::invalid_argument);
  EXPECT_THROW(render_docs_html("not json"), std::invalid_argument);
  // Text from the document is escaped.
  const std::string page = render_docs_html(
      R"({"info":{"title":"<x>"},"paths":{"/a":{"get":{"summary":"a & b","responses":{}}}}})");
  const MarkupNode parsed = parse_markup(page, MarkupMode::html);
  EXPECT_EQ(parsed.all("h1").at(0)->all_text(), "<x>");
  EXPECT_NE(parsed.all_text().find("a & b"), std::string::npos);
}

}  // namespace
}  // namespace vigil

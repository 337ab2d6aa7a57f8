// What the services file, the API's bodies and .env refuse or read as a user means it: nesting
// depth, duplicate keys, file size and kind (core/json_input.h), control characters in header
// values, user agents and service names, and dotenv quoting.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "config/config.h"
#include "core/json_input.h"
#include "support/target_server.h"

namespace vigil {
namespace {

using nlohmann::json;

// The ConfigError's message for `call`, or a test failure when it does not throw.
template <typename F>
std::string error_of(F&& call) {
  try {
    call();
  } catch (const ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a ConfigError";
  return "";
}

std::string nested_arrays(std::size_t depth) {
  return std::string(depth, '[') + std::string(depth, ']');
}

TEST(JsonInput, NestingIsBoundedAtSixtyFourLevels) {
  EXPECT_NO_THROW(parse_json_input(nested_arrays(kMaxJsonDepth), "f.json"));
  EXPECT_EQ(error_of([] { parse_json_input(nested_arrays(kMaxJsonDepth + 1), "f.json"); }),
            "f.json: nested deeper than 64 levels of arrays and objects");
  // Deep enough to overflow the stack of anything that walks the value recursively; refused
  // while parsing, unterminated or not.
  EXPECT_EQ(error_of([] { parse_json_input(nested_arrays(100'000), "f.json"); }),
            "f.json: nested deeper than 64 levels of arrays and objects");
  std::string objects;
  for (int i = 0; i < 100'000; ++i) objects += "{\"a\":";
  EXPECT_EQ(error_of([&] { parse_json_input(objects, "body"); }),
            "body: nested deeper than 64 levels of arrays and objects");
}

TEST(JsonInput, DuplicateKeysAreRefusedWithTheirPath) {
  EXPECT_EQ(error_of([] { parse_json_input(R"({"a": 1, "a": 2})", "body"); }),
            "body: duplicate key \"a\"");
  EXPECT_EQ(error_of([] {
              parse_json_input(R"([{"name": "x"}, {"name": "y", "url": 1, "url": 2}])", "s.json",
                               "services");
            }),
            "s.json: duplicate key \"url\" at services[1]");
  EXPECT_EQ(error_of([] {
              parse_json_input(
                  R"({"services": [{"name": "x", "conditions": {"json": [1, {"pointer": "/a",
                      "equals": [[], {"k": 1, "k": 2}]}]}}]})",
                  "s.json", "services");
            }),
            "s.json: duplicate key \"k\" at services[0].conditions.json[1].equals[1]");
  // The same key in sibling objects, or in an object and the one inside it, is no duplicate.
  const json fine = parse_json_input(R"([{"a": {"a": 1}}, {"a": [{"a": 2}, {"a": 3}]}])", "f");
  EXPECT_EQ(fine[1]["a"][1]["a"], 3);
}

TEST(JsonInput, SyntaxErrorsAndHugeNumbersAreNotValidJson) {
  EXPECT_TRUE(error_of([] {
                parse_json_input(R"([{"name": )", "f.json");
              }).starts_with("f.json: not valid JSON: "));
  EXPECT_TRUE(
      error_of([] { parse_json_input("[1e400]", "body"); }).starts_with("body: not valid JSON: "));
  EXPECT_TRUE(error_of([] { parse_json_input("", "f.json"); }).starts_with("f.json: not valid"));
}

TEST(ConfigFile, DirectoryMissingAndOversizedFilesAreNamed) {
  test::TempDir dir;
  EXPECT_EQ(error_of([&] { read_config_file(dir.path(), kServicesFileWhat); }),
            dir.path() + ": the services file (SERVICES_FILE) is a directory, not a file");
  EXPECT_EQ(error_of([&] { read_config_file(dir.file("absent.json"), kServicesFileWhat); }),
            dir.file("absent.json") + ": cannot read the services file (SERVICES_FILE)");

  // Sparse files: exactly the limit is read, one byte more is refused.
  const std::string at_limit = dir.file("limit.json");
  std::ofstream(at_limit).close();
  std::filesystem::resize_file(at_limit, kMaxConfigFileBytes);
  EXPECT_EQ(read_config_file(at_limit, kServicesFileWhat).size(), kMaxConfigFileBytes);
  std::filesystem::resize_file(at_limit, kMaxConfigFileBytes + 1);
  EXPECT_EQ(error_of([&] { read_config_file(at_limit, kServicesFileWhat); }),
            at_limit + ": the services file (SERVICES_FILE) is larger than 64 MiB, the limit");
  // A device that never ends stops at the bound too.
  EXPECT_EQ(error_of([] { read_config_file("/dev/zero", kServicesFileWhat); }),
            "/dev/zero: the services file (SERVICES_FILE) is larger than 64 MiB, the limit");
}

std::string services_error(const json& service) {
  return error_of([&] { parse_services(json::array({service}).dump(), "s.json", Settings{}); });
}

TEST(ServicesFileRules, DuplicateKeysAreRefusedNamingKeyAndService) {
  EXPECT_EQ(error_of([] {
              parse_services(R"([{"name": "a", "url": "http://a.test/", "url": "http://b.test/"}])",
                             "s.json", Settings{});
            }),
            "s.json: duplicate key \"url\" at services[0]");
  EXPECT_EQ(error_of([] {
              parse_services(R"({"services": [{"name": "a", "url": "http://a.test/",
                                  "headers": {"X-Key": "1", "X-Key": "2"}}]})",
                             "s.json", Settings{});
            }),
            "s.json: duplicate key \"X-Key\" at services[0].headers");
}

TEST(ServicesFileRules, HeaderValuesRefuseNulAndLineBreaksButKeepTabs) {
  const json base = {{"name", "api"}, {"url", "http://a.test/"}};
  for (const std::string& bad : {std::string("a\0b", 3), std::string("a\rb"), std::string("a\nb"),
                                 std::string("a\x1b[31m"), std::string("a\x7f")}) {
    json service = base;
    service["headers"] = {{"X-Key", bad}};
    EXPECT_EQ(services_error(service),
              "s.json: services[0] (\"api\").headers.X-Key: must not contain line breaks or "
              "other control characters (NUL, CR, LF...; tab is allowed)")
        << json(bad).dump();
  }
  json service = base;
  service["headers"] = {{"X-Key", "a\tb"}};
  const auto specs = parse_services(json::array({service}).dump(), "s.json", Settings{});
  ASSERT_EQ(specs[0].headers.size(), 1u);
  EXPECT_EQ(specs[0].headers[0].second, "a\tb");
  // A header name is a token: a NUL, CR or LF in it is no token character.
  service["headers"] = {{std::string("X-\0Key", 6), "v"}};
  EXPECT_NE(services_error(service).find("is not a valid header name"), std::string::npos);
  service["headers"] = {{"X-Key\r\nInjected", "v"}};
  EXPECT_NE(services_error(service).find("is not a valid header name"), std::string::npos);

  // user_agent goes out as a header too.
  service = base;
  service["user_agent"] = std::string("vigil\0probe", 11);
  EXPECT_EQ(services_error(service),
            "s.json: services[0] (\"api\").user_agent: must not contain line breaks or other "
            "control characters (NUL, CR, LF...; tab is allowed)");
}

TEST(ServicesFileRules, ServiceNamesRefuseControlCharacters) {
  for (const std::string& bad :
       {std::string("web\nERROR forged line"), std::string("web\x1b[2J"), std::string("a\0b", 3),
        std::string("web\x7f"), std::string("web\tname")}) {
    const std::string message = services_error({{"name", bad}, {"url", "http://a.test/"}});
    EXPECT_TRUE(message.starts_with("s.json: services[0].name: ")) << message;
    EXPECT_NE(message.find("without leading or trailing spaces or control characters"),
              std::string::npos)
        << message;
  }
  EXPECT_NO_THROW(parse_services(R"([{"name": "café · prod", "url": "http://a.test/"}])", "s.json",
                                 Settings{}));
}

EnvMap dotenv(const std::string& text) {
  test::TempDir dir;
  std::ofstream(dir.file(".env")) << text;
  return read_dotenv(dir.file(".env"));
}

TEST(DotenvQuoting, QuotesAndCommentsAreReadAsDotenvToolsDo) {
  const EnvMap env = dotenv(
      "STATUS_PAGE_TITLE=\"a b\" # the page's title\n"
      "PROBER_REGION='eu west' # single quotes\n"
      "export DB_FILE=\"my db.db\"\n"
      "LOG_LEVEL=info # unquoted, with a comment\n"
      "API_HOST=host#1\n"
      "API_TOKEN=\"x\\\"y\\\\z\\n\"\n"
      "API_READ_TOKEN='x\\ny # not a comment'\n"
      "SERVICES_FILE=   # only a comment\n"
      "RETENTION_DAYS=\"\"\n");
  EXPECT_EQ(env.at("STATUS_PAGE_TITLE"), "a b");
  EXPECT_EQ(env.at("PROBER_REGION"), "eu west");
  EXPECT_EQ(env.at("DB_FILE"), "my db.db");
  EXPECT_EQ(env.at("LOG_LEVEL"), "info");
  EXPECT_EQ(env.at("API_HOST"), "host#1");
  EXPECT_EQ(env.at("API_TOKEN"), "x\"y\\z\n");
  EXPECT_EQ(env.at("API_READ_TOKEN"), "x\\ny # not a comment");
  EXPECT_EQ(env.at("SERVICES_FILE"), "");
  EXPECT_EQ(env.at("RETENTION_DAYS"), "");
}

TEST(DotenvQuoting, UnclosedQuotesAndTextAfterTheQuoteAreNamed) {
  const std::string unclosed = error_of([] { dotenv("API_PORT=1\nSTATUS_PAGE_TITLE=\"a b\n"); });
  EXPECT_NE(unclosed.find(".env:2: STATUS_PAGE_TITLE: the value's opening \" is not closed"),
            std::string::npos)
      << unclosed;
  const std::string after = error_of([] { dotenv("STATUS_PAGE_TITLE='a' b\n"); });
  EXPECT_NE(after.find(".env:1: STATUS_PAGE_TITLE: unexpected \"b\" after the closing quote"),
            std::string::npos)
      << after;
}

}  // namespace
}  // namespace vigil

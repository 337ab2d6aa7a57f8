// The services file's probe-depth keys: what they parse to, every way to get them
// wrong (each message names the service and the field), and their round trips through the
// service JSON the API builds on and the stored column.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "config/config.h"
#include "core/conditions.h"
#include "core/probe_options.h"
#include "support/target_server.h"

namespace vigil {
namespace {

using nlohmann::json;

std::vector<ServiceSpec> parse_services_json(const json& services) {
  return parse_services(services.dump(), "services.json", Settings{});
}

json service(json extra, const std::string& url = "https://example.com/health") {
  json s = {{"name", "api"}, {"url", url}};
  for (const auto& [key, value] : extra.items()) s[key] = value;
  return s;
}

void expect_options_error(const json& entry, std::initializer_list<std::string> parts) {
  try {
    parse_services_json(json::array({entry}));
    FAIL() << "expected a ConfigError for " << entry.dump();
  } catch (const ConfigError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("services[0] (\"api\")"), std::string::npos) << message;
    for (const auto& part : parts) EXPECT_NE(message.find(part), std::string::npos) << message;
  }
}

TEST(ProbeOptions, DefaultsWhenAbsent) {
  const auto specs = parse_services_json(json::array({service({})}));
  ASSERT_EQ(specs.size(), 1u);
  EXPECT_EQ(specs[0].probe, ProbeOptions{});
  EXPECT_TRUE(specs[0].probe.conditions.empty());
  EXPECT_FALSE(specs[0].probe.conditions.compiled);
}

TEST(ProbeOptions, ParsesEveryKey) {
  test::TempDir dir;
  const std::string pem = dir.file("ca.pem");
  std::ofstream(pem) << "not checked for content, only readability\n";
  const auto specs = parse_services_json(
      json::array({service({{"method", "POST"},
                            {"body", "{\"q\":1}"},
                            {"follow_redirects", false},
                            {"max_redirects", 3},
                            {"insecure_skip_verify", true},
                            {"ca_file", pem},
                            {"client_cert", pem},
                            {"client_key", pem},
                            {"proxy", "socks5h://127.0.0.1:1080"},
                            {"ip_version", 6},
                            {"user_agent", "checker/1"},
                            {"source_ip", "127.0.0.2"},
                            {"failure_threshold", 3},
                            {"success_threshold", 2},
                            {"interval_seconds", 60},
                            {"retry_interval_seconds", 5},
                            {"conditions",
                             {{"status", {200, "300-302"}},
                              {"body_contains", "ok"},
                              {"body_not_contains", "error"},
                              {"body_regex", "^\\{"},
                              {"json",
                               {{{"pointer", "/status"}, {"equals", "UP"}},
                                {{"pointer", "/n"}, {"lt", 5}, {"gt", 1}}}},
                              {"max_response_ms", 500},
                              {"header", {{"name", "Content-Type"}, {"contains", "json"}}},
                              {"cert_expires_in_days_min", 14}}}}),
                   service({{"name", "redis"}, {"send", "PING"}, {"expect", "+PONG"}},
                           "tcp://10.0.0.5:6379")}));
  const ProbeOptions& o = specs[0].probe;
  EXPECT_EQ(o.body, "{\"q\":1}");
  EXPECT_FALSE(o.follow_redirects);
  EXPECT_EQ(o.max_redirects, 3);
  EXPECT_TRUE(o.insecure_skip_verify);
  EXPECT_EQ(o.ca_file, pem);
  EXPECT_EQ(o.proxy, "socks5h://127.0.0.1:1080");
  EXPECT_EQ(o.ip_version, IpVersion::v6);
  EXPECT_EQ(o.user_agent, "checker/1");
  EXPECT_EQ(o.source_ip, "127.0.0.2");
  EXPECT_EQ(o.failure_threshold, 3);
  EXPECT_EQ(o.success_threshold, 2);
  EXPECT_EQ(o.retry_interval, Millis(5000));
  // conditions.status is the expected_status shorthand.
  EXPECT_EQ(specs[0].expected_status,
            (std::vector<StatusRange>{StatusRange{200, 200}, StatusRange{300, 302}}));
  ASSERT_TRUE(o.conditions.compiled);
  std::vector<std::string> described;
  for (const auto& check : o.conditions.compiled->checks) described.push_back(check.description);
  EXPECT_EQ(described, (std::vector<std::string>{
                           "body contains \"ok\"", "body does not contain \"error\"",
                           "body matches /^\\{/", "json /status equals \"UP\"", "json /n > 1",
                           "json /n < 5", "header content-type contains \"json\"",
                           "response within 500 ms", "certificate valid for at least 14 days"}));
  EXPECT_TRUE(o.conditions.compiled->needs_body);
  EXPECT_TRUE(o.conditions.compiled->needs_headers);
  EXPECT_TRUE(o.conditions.compiled->needs_certificate);

  EXPECT_EQ(specs[1].url, "tcp://10.0.0.5:6379");
  EXPECT_EQ(specs[1].probe.tcp_send, "PING");
  EXPECT_EQ(specs[1].probe.tcp_expect, "+PONG");
}

TEST(ProbeOptions, ConditionsCompareByMeaningNotByPointerOrKeyOrder) {
  const auto a = parse_services_json(json::parse(R"([{"name":"api","url":"http://h/","conditions":
      {"body_contains":"ok","max_response_ms":100}}])"));
  const auto b = parse_services_json(json::parse(R"([{"name":"api","url":"http://h/","conditions":
      {"max_response_ms":100,"body_contains":"ok"}}])"));
  EXPECT_NE(a[0].probe.conditions.compiled, b[0].probe.conditions.compiled);
  EXPECT_EQ(a[0], b[0]);
  const auto c = parse_services_json(json::parse(R"([{"name":"api","url":"http://h/","conditions":
      {"max_response_ms":101,"body_contains":"ok"}}])"));
  EXPECT_NE(a[0], c[0]);
}

TEST(ProbeOptions, BadConditionsNameTheServiceAndField) {
  expect_options_error(service({{"conditions", {{"body_regex", "([a-z"}}}}),
                       {".conditions.body_regex: \"([a-z\" is not a valid regular expression"});
  // RE2 refuses what it cannot match in linear time, and says why.
  expect_options_error(
      service({{"conditions", {{"body_regex", "(a)\\1"}}}}),
      {".conditions.body_regex: \"(a)\\\\1\" is not a valid regular expression: "
       "invalid escape sequence: \\1 (RE2 syntax: no back-references or look-around)"});
  expect_options_error(
      service({{"conditions", {{"body_regex", "a(?=b)"}}}}),
      {"is not a valid regular expression: invalid perl operator: (?= (RE2 syntax: no "
       "back-references or look-around)"});
  expect_options_error(
      service({{"conditions", {{"body_regex", "a{1,12345678}"}}}}),
      {"is not a valid regular expression: invalid repetition size: {1,12345678} (RE2 syntax: "
       "repeat counts up to 1000)"});
  expect_options_error(service({{"conditions", {{"body_regex", "((a{1000}){1000}){1000}"}}}}),
                       {".conditions.body_regex: ", "is not a valid regular expression"});
  EXPECT_NO_THROW(parse_services_json(
      json::array({service({{"conditions", {{"body_regex", "id,12345678"}}}})})));
  expect_options_error(service({{"conditions", {{"body_matches", "x"}}}}),
                       {".conditions: unknown condition \"body_matches\""});
  expect_options_error(service({{"conditions", "ok"}}), {".conditions: expected an object"});
  expect_options_error(service({{"conditions", {{"body_contains", ""}}}}),
                       {".conditions.body_contains: expected a non-empty string"});
  expect_options_error(service({{"conditions", {{"json", {{{"equals", 1}}}}}}}),
                       {".conditions.json[0].pointer: required"});
  expect_options_error(
      service({{"conditions", {{"json", {{{"pointer", "status"}, {"equals", 1}}}}}}}),
      {".conditions.json[0].pointer: \"status\" is not a JSON pointer"});
  expect_options_error(service({{"conditions", {{"json", {{{"pointer", "/a"}}}}}}}),
                       {".conditions.json[0]: needs one of equals, exists, lt, gt"});
  expect_options_error(service({{"conditions", {{"json", {{{"pointer", "/a"}, {"lt", "5"}}}}}}}),
                       {".conditions.json[0].lt: expected a number"});
  expect_options_error(
      service({{"conditions", {{"json", {{{"pointer", "/a"}, {"exists", "yes"}}}}}}}),
      {".conditions.json[0].exists: expected true or false"});
  expect_options_error(service({{"conditions", {{"json", json::array()}}}}),
                       {".conditions.json: expected a non-empty list"});
  expect_options_error(service({{"conditions", {{"max_response_ms", -1}}}}),
                       {".conditions.max_response_ms: expected a number of at least 0"});
  expect_options_error(service({{"conditions", {{"header", {{"contains", "json"}}}}}}),
                       {".conditions.header.name: required"});
  expect_options_error(service({{"conditions", {{"header", {{"name", "a"}, {"equals", "b"}}}}}}),
                       {".conditions.header: unknown key \"equals\""});
  expect_options_error(service({{"conditions", {{"cert_expires_in_days_min", "14"}}}}),
                       {".conditions.cert_expires_in_days_min: expected a number"});
  expect_options_error(service({{"conditions", {{"status", {700}}}}}),
                       {".conditions.status[0]: status code 700 is not in 100-599"});
  expect_options_error(service({{"expected_status", {200}}, {"conditions", {{"status", {204}}}}}),
                       {".conditions.status: disagrees with expected_status"});
}

TEST(ProbeOptions, BadOptionsNameTheField) {
  expect_options_error(service({{"max_redirects", 99}}),
                       {".max_redirects: expected a whole number from 0 to 50"});
  expect_options_error(service({{"follow_redirects", "yes"}}),
                       {".follow_redirects: expected true or false"});
  expect_options_error(service({{"failure_threshold", 0}}),
                       {".failure_threshold: expected a whole number from 1 to 100"});
  expect_options_error(service({{"success_threshold", 1.5}}),
                       {".success_threshold: expected a whole number"});
  expect_options_error(
      service({{"retry_interval_seconds", 0.01}}),
      {".retry_interval_seconds: expected a number of seconds from 0.1 to 31536000"});
  expect_options_error(service({{"interval_seconds", 10}, {"retry_interval_seconds", 10}}),
                       {".retry_interval_seconds: must be shorter than the interval of 10 s"});
  expect_options_error(service({{"ip_version", 5}}), {".ip_version: expected 4, 6 or \"any\""});
  expect_options_error(service({{"source_ip", "eth0"}}),
                       {".source_ip: \"eth0\" must be an IPv4 or IPv6 address"});
  expect_options_error(service({{"source_ip", "127.0.0.1:80"}}),
                       {".source_ip: \"127.0.0.1:80\" must be an IPv4 or IPv6 address"});
  expect_options_error(service({{"proxy", "ftp://p:21"}}),
                       {".proxy: \"ftp://p:21\" must be a URL starting with http://"});
  expect_options_error(service({{"user_agent", "a\r\nX-Injected: 1"}}),
                       {".user_agent: must not contain line breaks"});
  expect_options_error(service({{"body", "x"}}),
                       {".body: needs method POST, PUT, PATCH or DELETE (method is GET)"});
  expect_options_error(service({{"client_key", "/etc/hostname"}}),
                       {".client_key: needs client_cert as well"});
  expect_options_error(service({{"ca_file", "/nonexistent/ca.pem"}}),
                       {".ca_file: cannot read \"/nonexistent/ca.pem\""});
  expect_options_error(service({{"send", "PING"}}), {".send: only for a tcp:// service"});
  expect_options_error(service({{"expect", "PONG"}}), {".expect: only for a tcp:// service"});
}

TEST(ProbeOptions, TcpServicesTakeOnlyWhatAppliesToThem) {
  const std::string tcp = "tcp://127.0.0.1:5432";
  expect_options_error(service({{"method", "POST"}}, tcp),
                       {".method: does not apply to a tcp:// service"});
  expect_options_error(service({{"headers", {{"A", "b"}}}}, tcp), {".headers: does not apply"});
  expect_options_error(service({{"expected_status", {204}}}, tcp),
                       {".expected_status: does not apply"});
  expect_options_error(service({{"insecure_skip_verify", true}}, tcp),
                       {".insecure_skip_verify: does not apply"});
  expect_options_error(service({{"conditions", {{"body_contains", "x"}}}}, tcp),
                       {".conditions: a tcp:// service only takes max_response_ms"});
  EXPECT_NO_THROW(parse_services_json(
      json::array({service({{"conditions", {{"max_response_ms", 50}}}}, tcp)})));
  // Explicit defaults (as service_spec_json writes them) are fine.
  EXPECT_NO_THROW(parse_services_json(
      json::array({service({{"method", "GET"}, {"expected_status", {"200-399"}}}, tcp)})));
}

TEST(ProbeOptions, UrlSchemes) {
  expect_options_error(service({}, "tcp://db.internal"),
                       {".url: \"tcp://db.internal\" needs a port"});
  expect_options_error(service({}, "tcp://db.internal:5432/x"), {"takes nothing after the port"});
  expect_options_error(service({}, "tcp://db.internal:0"), {"has an invalid port"});
  expect_options_error(service({}, "ftp://example.com/"),
                       {"must start with http://, https:// or tcp://"});
  EXPECT_NO_THROW(parse_services_json(json::array({service({}, "tcp://[::1]:22/")})));
}

TEST(ProbeOptions, HeartbeatsTakeNone) {
  json beat = {
      {"name", "api"}, {"kind", "heartbeat"}, {"interval_seconds", 60}, {"failure_threshold", 2}};
  expect_options_error(beat, {".failure_threshold: not allowed for a heartbeat"});
}

TEST(ProbeOptions, RoundTripThroughServiceJsonAndTheStoredForm) {
  const auto specs = parse_services_json(json::array(
      {service({{"method", "PUT"},
                {"body", "x"},
                {"max_redirects", 0},
                {"ip_version", 4},
                {"interval_seconds", 30},
                {"retry_interval_seconds", 2.5},
                {"failure_threshold", 2},
                {"conditions",
                 {{"status", {200}}, {"json", {{{"pointer", "/a"}, {"exists", true}}}}}}}),
       service({{"name", "tcp"}, {"send", "PING\r\n"}, {"expect", "PONG"}, {"source_ip", "::1"}},
               "tcp://127.0.0.1:1")}));
  for (const auto& spec : specs) {
    const json object = service_spec_json(spec);
    const ServiceSpec again = parse_service_spec(object, "round trip", Settings{});
    EXPECT_EQ(again, spec) << object.dump();
    ASSERT_EQ(again.probe.conditions.compiled != nullptr,
              spec.probe.conditions.compiled != nullptr);

    const std::string stored = encode_probe_options(spec.probe);
    EXPECT_EQ(decode_probe_options(stored), spec.probe) << stored;
  }
  EXPECT_EQ(encode_probe_options(ProbeOptions{}), "");
  EXPECT_EQ(decode_probe_options(""), ProbeOptions{});
  EXPECT_THROW(decode_probe_options("{\"max_redirects\": \"x\"}"), ConfigError);
}

}  // namespace
}  // namespace vigil

// The write API's JSON bodies, handled as api/service_routes.cpp handles them: the body is read by
// parse_json_input (core/json_input.h), a POST /v1/services body is checked by
// parse_service_spec, and a PATCH body is merged onto an existing service by merge_service_patch
// and then checked the same way. Bad input must end as a ConfigError (the API's 400); an
// accepted spec must read back equal through service_spec_json (what the database and the next
// PATCH start from).
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "core/json_input.h"
#include "fuzz_check.h"

namespace {

using nlohmann::json;
using namespace vigil;

const Settings& settings() {
  static const Settings defaults;
  return defaults;
}

void check_round_trip(const ServiceSpec& spec) {
  ServiceSpec again;
  try {
    again = parse_service_spec(service_spec_json(spec), "service", settings());
  } catch (const ConfigError& e) {
    FUZZ_CHECK(false, std::string("an accepted spec does not read back: ") + e.what());
  }
  FUZZ_CHECK(again == spec, "read back differently: " + service_spec_json(spec).dump() +
                                " became " + service_spec_json(again).dump());
}

// Services a PATCH may be applied to: plain HTTP, HTTP with options, a heartbeat.
const std::vector<ServiceSpec>& patch_bases() {
  static const std::vector<ServiceSpec> bases = [] {
    std::vector<ServiceSpec> out;
    for (const char* text : {
             R"({"name": "plain", "url": "http://127.0.0.1:8080/health"})",
             R"({"name": "detailed", "url": "https://example.com/ready", "interval_seconds": 30,
                 "timeout_seconds": 5, "method": "POST", "headers": {"X-Key": "v"},
                 "expected_status": [200, "300-399"], "team": "payments", "priority": "p1",
                 "tags": ["prod", "eu"], "muted": true})",
             R"({"name": "nightly", "kind": "heartbeat", "interval_seconds": 86400,
                 "grace_seconds": 600})",
         })
      out.push_back(parse_service_spec(json::parse(text), "base", settings()));
    return out;
  }();
  return bases;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  json body;
  try {
    body = parse_json_input(std::string_view(reinterpret_cast<const char*>(data), size), "body");
  } catch (const ConfigError&) {
    // Not JSON, a number beyond double, a duplicate key or nesting past the bound: the API's
    // 400 from body_object, which reads bodies by these rules.
    return 0;
  }
  if (!body.is_object()) return 0;  // the API's 400 "body: expected a JSON object"

  // POST /v1/services
  try {
    check_round_trip(parse_service_spec(body, "service", settings()));
  } catch (const ConfigError&) {
  }

  // PATCH /v1/services/{id}: "active" is taken out first, as the API does.
  body.erase("active");
  for (const ServiceSpec& base : patch_bases()) {
    try {
      const ServiceSpec patched = parse_service_spec(
          merge_service_patch(base, body, "service", settings()), "service", settings());
      if (body.empty()) FUZZ_CHECK(patched == base, "an empty PATCH changed " + base.name);
      check_round_trip(patched);
    } catch (const ConfigError&) {
    }
  }
  return 0;
}

// Conditions: what "up" means for a service beyond its HTTP status. The services file's
// "conditions" object is parsed here once, at load, into a small list of checks (regexes
// compiled, JSON pointers parsed); runner/conditions.h evaluates that list against each response.
// Parsing lives in config/ because storage (reading a spec back) and `vigil probe` build the same
// structure, and both already depend on config.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/model.h"

namespace re2 {
class RE2;
}

namespace vigil {

struct BodyContainsCheck {
  std::string text;
  bool negated = false;  // body_not_contains
};
// RE2 syntax, matched anywhere in the kept body in time linear in its length (no
// back-references or look-around, so no backtracking). The compiled RE2 is immutable and safe to
// use from any thread; it is shared by copies of the check.
struct BodyRegexCheck {
  std::string pattern;
  std::shared_ptr<const re2::RE2> regex;  // never null once parse_conditions returns
};
struct JsonCheck {
  enum class Op { equals, exists, absent, less, greater };
  std::string pointer_text;
  nlohmann::json::json_pointer pointer;
  Op op = Op::exists;
  nlohmann::json value;  // equals: the expected value; less/greater: the bound (a number)
};
struct MaxResponseCheck {
  double ms = 0;
};
struct HeaderCheck {
  std::string name;  // lower case
  std::string contains;
};
struct CertExpiryCheck {
  double min_days = 0;
};

struct ConditionCheck {
  std::string description;  // what holds when it passes: `body contains "ok"`
  std::variant<BodyContainsCheck, BodyRegexCheck, JsonCheck, MaxResponseCheck, HeaderCheck,
               CertExpiryCheck>
      check;
};

struct CompiledConditions {
  std::vector<ConditionCheck> checks;  // in a fixed order: body, json, header, time, certificate
  bool needs_body = false;             // body_* or json: the probe keeps the body
  bool needs_headers = false;          // header: the probe keeps the final response's headers
  bool needs_certificate = false;      // cert_expires_in_days_min: the probe asks for certinfo
};

// Parses a services-file "conditions" object. Keys: body_contains, body_not_contains,
// body_regex, json, max_response_ms, header, cert_expires_in_days_min; "status" is skipped (the
// caller turns it into expected_status with parse_status_ranges). Throws ConfigError naming
// `where` and the field for anything else or any bad value (a regex RE2 cannot compile
// included, with RE2's reason).
Conditions parse_conditions(const nlohmann::json& object, const std::string& where);

// A non-empty list of status codes and inclusive ranges: [200, "300-399"]. Throws ConfigError.
std::vector<StatusRange> parse_status_ranges(const nlohmann::json& list, const std::string& where);

// 14, 0.5, 1000: a number as a person writes it (no ".0"), for messages and descriptions.
std::string format_number(double value);

// "200-399,404": the ranges as text, for messages and reports. It is also the stored form of
// services.expected_status (the SQLite backend reads it back), so its format is fixed.
std::string format_status_ranges(const std::vector<StatusRange>& ranges);

}  // namespace vigil

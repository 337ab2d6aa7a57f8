// The condition parser and evaluator. The input is a services-file "conditions" object, a line
// "====", and a response body. The object is parsed by parse_conditions (a ConfigError is the
// only allowed failure: bad keys, values, regexes); accepted conditions are evaluated against the
// body, as the probe does after a response: one outcome per check, a failure text exactly when
// it failed, and no exception, crash, sanitizer report or hang (a regex on a hostile body must
// stay bounded).
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.h"
#include "core/conditions.h"
#include "fuzz_check.h"
#include "runner/conditions.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace vigil;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  constexpr std::string_view kSeparator = "\n====\n";
  const auto split = input.find(kSeparator);
  const std::string_view conditions_text = input.substr(0, split);
  const std::string_view body = split == std::string_view::npos
                                    ? std::string_view()
                                    : input.substr(split + kSeparator.size());

  nlohmann::json object;
  try {
    object = nlohmann::json::parse(conditions_text);
  } catch (const nlohmann::json::exception&) {  // not JSON, or a number beyond double
    return 0;
  }
  Conditions conditions;
  try {
    conditions = parse_conditions(object, "conditions");
  } catch (const ConfigError&) {
    return 0;
  }
  if (!conditions.compiled) return 0;  // no checks

  const std::vector<std::pair<std::string, std::string>> headers = {
      {"content-type", "application/json"}, {"x-fuzz", std::string(body.substr(0, 64))}};
  ResponseFacts facts;
  facts.body = body;
  facts.headers = &headers;
  facts.response_ms = double(size);
  facts.leaf_cert_days_left = double(size % 400) - 10;
  const auto outcomes = evaluate_conditions(*conditions.compiled, facts);
  FUZZ_CHECK(outcomes.size() == conditions.compiled->checks.size(), "one outcome per check");
  bool any_failed = false;
  for (const auto& outcome : outcomes) {
    FUZZ_CHECK(outcome.passed == outcome.failure.empty(), outcome.condition);
    any_failed = any_failed || !outcome.passed;
  }
  FUZZ_CHECK(failed_conditions_text(outcomes).empty() == !any_failed, "failed_conditions_text");
  return 0;
}

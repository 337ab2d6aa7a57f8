// Evaluates a service's conditions (core/conditions.h) against what one probe observed. Pure:
// no I/O, so the HTTP probe, the TCP probe and `vigil probe` all judge a response the same way.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/conditions.h"

namespace vigil {

// What the conditions look at. Fields a probe did not gather stay empty.
struct ResponseFacts {
  std::string_view body;
  const std::vector<std::pair<std::string, std::string>>* headers = nullptr;  // lower-case names
  double response_ms = 0;
  std::optional<double> leaf_cert_days_left;  // absent without TLS
};

struct ConditionOutcome {
  std::string condition;  // the check's description: `body contains "ok"`
  bool passed = false;
  std::string failure;  // why it failed, empty when passed: `body does not contain "ok"`
};

// Every check, in order, with its outcome.
std::vector<ConditionOutcome> evaluate_conditions(const CompiledConditions& conditions,
                                                  const ResponseFacts& facts);

// "condition failed: A; condition failed: B" for the failed outcomes; empty when all passed.
std::string failed_conditions_text(const std::vector<ConditionOutcome>& outcomes);

}  // namespace vigil

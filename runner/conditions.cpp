#include "runner/conditions.h"

#include <re2/re2.h>

#include <cmath>
#include <cstdio>
#include <variant>

#include "core/json_input.h"
#include "core/text.h"

namespace vigil {
namespace {

using nlohmann::json;

// The body parsed as JSON once per evaluation, and only when a json check asks.
class LazyJson {
 public:
  explicit LazyJson(std::string_view body) : body_(body) {}
  const json* get() {
    if (!parsed_) {
      parsed_ = true;
      value_ = json::parse(body_.begin(), body_.end(), nullptr, /*allow_exceptions=*/false);
    }
    return value_.is_discarded() ? nullptr : &value_;
  }

 private:
  std::string_view body_;
  bool parsed_ = false;
  json value_;
};

// The value at `pointer`, or null when the document has nothing there (a missing key, an index
// out of range or not a number).
const json* find(const json& document, const json::json_pointer& pointer) {
  try {
    if (!document.contains(pointer)) return nullptr;
    return &document.at(pointer);
  } catch (const json::exception&) {
    return nullptr;
  }
}

std::string check_json(const JsonCheck& check, LazyJson& body) {
  const std::string at = "json " + (check.pointer_text.empty() ? "(root)" : check.pointer_text);
  const json* document = body.get();
  if (!document) return at + ": body is not JSON";
  const json* value = find(*document, check.pointer);
  switch (check.op) {
    case JsonCheck::Op::exists:
      return value ? "" : at + " is missing";
    case JsonCheck::Op::absent:
      return value ? at + " exists (" + shown(*value) + ")" : "";
    case JsonCheck::Op::equals:
      if (!value) return at + " is missing";
      return *value == check.value
                 ? ""
                 : at + " is " + shown(*value) + ", expected " + shown(check.value);
    case JsonCheck::Op::less:
    case JsonCheck::Op::greater: {
      if (!value) return at + " is missing";
      if (!value->is_number()) return at + " is " + shown(*value) + ", not a number";
      const bool less = check.op == JsonCheck::Op::less;
      const double have = value->get<double>();
      const double bound = check.value.get<double>();
      if (less ? have < bound : have > bound) return "";
      return at + " is " + shown(*value) + ", expected " + (less ? "< " : "> ") +
             check.value.dump();
    }
  }
  return "";
}

std::string check_header(const HeaderCheck& check, const ResponseFacts& facts) {
  const std::string at = "header " + check.name;
  if (facts.headers) {
    // A repeated header counts when any of its values matches.
    bool present = false;
    std::string first_value;
    for (const auto& [name, value] : *facts.headers) {
      if (name != check.name) continue;
      if (value.find(check.contains) != std::string::npos) return "";
      if (!present) first_value = value;
      present = true;
    }
    if (present)
      return at + " is " + shown(json(first_value)) + ", expected to contain " +
             shown(json(check.contains));
  }
  return at + " is missing";
}

}  // namespace

std::vector<ConditionOutcome> evaluate_conditions(const CompiledConditions& conditions,
                                                  const ResponseFacts& facts) {
  std::vector<ConditionOutcome> outcomes;
  outcomes.reserve(conditions.checks.size());
  LazyJson body_json(facts.body);
  for (const auto& item : conditions.checks) {
    std::string failure = std::visit(
        [&](const auto& check) -> std::string {
          using T = std::decay_t<decltype(check)>;
          if constexpr (std::is_same_v<T, BodyContainsCheck>) {
            const bool found = facts.body.find(check.text) != std::string_view::npos;
            if (found == !check.negated) return "";
            return std::string(found ? "body contains " : "body does not contain ") +
                   shown(json(check.text));
          } else if constexpr (std::is_same_v<T, BodyRegexCheck>) {
            if (RE2::PartialMatch(re2::StringPiece(facts.body.data(), facts.body.size()),
                                  *check.regex))
              return "";
            return "body does not match /" + check.pattern + "/";
          } else if constexpr (std::is_same_v<T, JsonCheck>) {
            return check_json(check, body_json);
          } else if constexpr (std::is_same_v<T, MaxResponseCheck>) {
            if (facts.response_ms <= check.ms) return "";
            return "response took " + std::to_string(std::llround(facts.response_ms)) +
                   " ms, more than " + format_number(check.ms) + " ms";
          } else if constexpr (std::is_same_v<T, HeaderCheck>) {
            return check_header(check, facts);
          } else {
            static_assert(std::is_same_v<T, CertExpiryCheck>);
            if (!facts.leaf_cert_days_left) return "no TLS certificate";
            if (*facts.leaf_cert_days_left >= check.min_days) return "";
            return "certificate expires in " + fixed(*facts.leaf_cert_days_left, 1) +
                   " days, less than " + format_number(check.min_days);
          }
        },
        item.check);
    const bool passed = failure.empty();
    outcomes.push_back({item.description, passed, std::move(failure)});
  }
  return outcomes;
}

std::string failed_conditions_text(const std::vector<ConditionOutcome>& outcomes) {
  std::string text;
  for (const auto& outcome : outcomes) {
    if (outcome.passed) continue;
    if (!text.empty()) text += "; ";
    text += "condition failed: " + outcome.failure;
  }
  return text;
}

}  // namespace vigil

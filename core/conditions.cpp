#include "core/conditions.h"

#include <re2/re2.h>

#include <cctype>
#include <charconv>
#include <cmath>
#include <set>
#include <string_view>

#include "core/config_error.h"
#include "core/json_input.h"
#include "core/text.h"

namespace vigil {
namespace {

using nlohmann::json;

// A JSON value as the user wrote it, for messages.
std::string quote_text(const std::string& text) { return shown(json(text)); }

std::optional<long long> parse_integer(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  long long value = 0;
  const auto* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end || text.empty()) return std::nullopt;
  return value;
}

StatusRange parse_status_item(const json& item, const std::string& where) {
  auto valid = [](long long code) { return code >= 100 && code <= 599; };
  if (item.is_number_integer()) {
    const auto code = item.get<long long>();
    if (!valid(code))
      throw ConfigError(where + ": status code " + shown(item) + " is not in 100-599");
    return {int(code), int(code)};
  }
  if (item.is_string()) {
    const auto text = item.get<std::string>();
    const auto dash = text.find('-');
    const auto lo = parse_integer(std::string_view(text).substr(0, dash));
    const auto hi =
        dash == std::string::npos ? lo : parse_integer(std::string_view(text).substr(dash + 1));
    if (!lo || !hi || !valid(*lo) || !valid(*hi) || *lo > *hi)
      throw ConfigError(where + ": " + shown(item) +
                        " is not a status code or a range like \"200-299\" within 100-599");
    return {int(*lo), int(*hi)};
  }
  throw ConfigError(where + ": expected a status code or a range like \"200-299\", got " +
                    shown(item));
}

std::string nonempty_string(const json& value, const std::string& where) {
  if (!value.is_string() || value.get<std::string>().empty())
    throw ConfigError(where + ": expected a non-empty string, got " + shown(value));
  return value.get<std::string>();
}

double nonnegative_number(const json& value, const std::string& where) {
  if (!value.is_number() || !std::isfinite(value.get<double>()) || value.get<double>() < 0)
    throw ConfigError(where + ": expected a number of at least 0, got " + shown(value));
  return value.get<double>();
}

void add_json_checks(const json& item, const std::string& where, CompiledConditions& out) {
  if (!item.is_object())
    throw ConfigError(where +
                      ": expected an object like {\"pointer\": \"/status\", \"equals\": "
                      "\"UP\"}, got " +
                      shown(item));
  static const std::set<std::string> known = {"pointer", "equals", "exists", "lt", "gt"};
  for (const auto& [key, value] : item.items())
    if (!known.contains(key))
      throw ConfigError(where + ": unknown key " + quote_text(key) +
                        " (known: pointer, equals, exists, lt, gt)");
  if (!item.contains("pointer") || !item["pointer"].is_string())
    throw ConfigError(where + ".pointer: required, a JSON pointer such as \"/status\"");
  const std::string pointer_text = item["pointer"].get<std::string>();
  JsonCheck base;
  base.pointer_text = pointer_text;
  try {
    base.pointer = json::json_pointer(pointer_text);
  } catch (const json::exception&) {
    throw ConfigError(where + ".pointer: " + quote_text(pointer_text) +
                      " is not a JSON pointer (it starts with \"/\", e.g. \"/db/status\")");
  }
  const std::string at = "json " + (pointer_text.empty() ? std::string("(root)") : pointer_text);
  bool any = false;
  if (item.contains("equals")) {
    JsonCheck check = base;
    check.op = JsonCheck::Op::equals;
    check.value = item["equals"];
    out.checks.push_back({at + " equals " + shown(check.value), check});
    any = true;
  }
  if (item.contains("exists")) {
    if (!item["exists"].is_boolean())
      throw ConfigError(where + ".exists: expected true or false, got " + shown(item["exists"]));
    JsonCheck check = base;
    const bool exists = item["exists"].get<bool>();
    check.op = exists ? JsonCheck::Op::exists : JsonCheck::Op::absent;
    out.checks.push_back({at + (exists ? " exists" : " is absent"), check});
    any = true;
  }
  for (const char* bound : {"gt", "lt"}) {
    if (!item.contains(bound)) continue;
    const json& value = item[bound];
    if (!value.is_number() || !std::isfinite(value.get<double>()))
      throw ConfigError(where + "." + bound + ": expected a number, got " + shown(value));
    JsonCheck check = base;
    const bool less = std::string_view(bound) == "lt";
    check.op = less ? JsonCheck::Op::less : JsonCheck::Op::greater;
    check.value = value;
    out.checks.push_back({at + (less ? " < " : " > ") + value.dump(), check});
    any = true;
  }
  if (!any) throw ConfigError(where + ": needs one of equals, exists, lt, gt besides \"pointer\"");
}

void add_header_check(const json& item, const std::string& where, CompiledConditions& out) {
  if (!item.is_object())
    throw ConfigError(where +
                      ": expected an object like {\"name\": \"content-type\", "
                      "\"contains\": \"json\"}, got " +
                      shown(item));
  for (const auto& [key, value] : item.items())
    if (key != "name" && key != "contains")
      throw ConfigError(where + ": unknown key " + quote_text(key) + " (known: name, contains)");
  if (!item.contains("name")) throw ConfigError(where + ".name: required, a header name");
  if (!item.contains("contains"))
    throw ConfigError(where + ".contains: required, the text the header's value must contain");
  std::string name = nonempty_string(item["name"], where + ".name");
  for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (!item["contains"].is_string())
    throw ConfigError(where + ".contains: expected a string, got " + shown(item["contains"]));
  HeaderCheck check{name, item["contains"].get<std::string>()};
  out.checks.push_back({"header " + name + " contains " + quote_text(check.contains), check});
}

}  // namespace

std::vector<StatusRange> parse_status_ranges(const json& list, const std::string& where) {
  if (!list.is_array() || list.empty())
    throw ConfigError(where + ": expected a non-empty list of codes or ranges, got " + shown(list));
  std::vector<StatusRange> ranges;
  for (std::size_t i = 0; i < list.size(); ++i)
    ranges.push_back(parse_status_item(list[i], where + "[" + std::to_string(i) + "]"));
  return ranges;
}

std::string format_number(double value) {
  if (std::isfinite(value) && value == std::floor(value) && std::fabs(value) < 1e15)
    return std::to_string(static_cast<long long>(value));
  return json(value).dump();
}

std::string format_status_ranges(const std::vector<StatusRange>& ranges) {
  std::string text;
  for (const auto& range : ranges) {
    if (!text.empty()) text += ',';
    text += std::to_string(range.lo);
    if (range.hi != range.lo) text += '-' + std::to_string(range.hi);
  }
  return text;
}

Conditions parse_conditions(const json& object, const std::string& where) {
  if (!object.is_object())
    throw ConfigError(where + ": expected an object of conditions, got " + shown(object));
  static const std::set<std::string> known = {
      "status",          "body_contains", "body_not_contains",       "body_regex", "json",
      "max_response_ms", "header",        "cert_expires_in_days_min"};
  for (const auto& [key, value] : object.items())
    if (!known.contains(key))
      throw ConfigError(where + ": unknown condition " + quote_text(key) +
                        " (known: status, body_contains, body_not_contains, body_regex, json, "
                        "max_response_ms, header, cert_expires_in_days_min)");

  auto compiled = std::make_shared<CompiledConditions>();
  json kept = json::object();  // everything but "status": the canonical source
  for (const char* key : {"body_contains", "body_not_contains"}) {
    if (!object.contains(key)) continue;
    const std::string text = nonempty_string(object[key], where + "." + key);
    const bool negated = std::string_view(key) == "body_not_contains";
    compiled->checks.push_back(
        {std::string(negated ? "body does not contain " : "body contains ") + quote_text(text),
         BodyContainsCheck{text, negated}});
    kept[key] = object[key];
  }
  if (object.contains("body_regex")) {
    const std::string pattern = nonempty_string(object["body_regex"], where + ".body_regex");
    RE2::Options options;
    options.set_log_errors(false);  // the reason goes into the ConfigError, not to stderr
    auto regex = std::make_shared<const RE2>(pattern, options);
    if (!regex->ok()) {
      // What a user coming from PCRE or ECMAScript most likely wrote, said in their terms.
      std::string hint;
      if (regex->error_code() == RE2::ErrorBadEscape || regex->error_code() == RE2::ErrorBadPerlOp)
        hint = " (RE2 syntax: no back-references or look-around)";
      else if (regex->error_code() == RE2::ErrorRepeatSize)
        hint = " (RE2 syntax: repeat counts up to 1000)";
      throw ConfigError(where + ".body_regex: " + quote_text(pattern) +
                        " is not a valid regular expression: " + regex->error() + hint);
    }
    BodyRegexCheck check{pattern, std::move(regex)};
    compiled->checks.push_back({"body matches /" + pattern + "/", std::move(check)});
    kept["body_regex"] = object["body_regex"];
  }
  if (object.contains("json")) {
    const json& list = object["json"];
    if (!list.is_array() || list.empty())
      throw ConfigError(where +
                        ".json: expected a non-empty list of {\"pointer\": ..., "
                        "\"equals\"|\"exists\"|\"lt\"|\"gt\": ...}, got " +
                        shown(list));
    for (std::size_t i = 0; i < list.size(); ++i)
      add_json_checks(list[i], where + ".json[" + std::to_string(i) + "]", *compiled);
    kept["json"] = list;
  }
  if (object.contains("header")) {
    const json& header = object["header"];
    if (header.is_array()) {
      if (header.empty()) throw ConfigError(where + ".header: expected a non-empty list");
      for (std::size_t i = 0; i < header.size(); ++i)
        add_header_check(header[i], where + ".header[" + std::to_string(i) + "]", *compiled);
    } else {
      add_header_check(header, where + ".header", *compiled);
    }
    kept["header"] = header;
  }
  if (object.contains("max_response_ms")) {
    const double ms = nonnegative_number(object["max_response_ms"], where + ".max_response_ms");
    compiled->checks.push_back(
        {"response within " + format_number(ms) + " ms", MaxResponseCheck{ms}});
    kept["max_response_ms"] = object["max_response_ms"];
  }
  if (object.contains("cert_expires_in_days_min")) {
    const double days =
        nonnegative_number(object["cert_expires_in_days_min"], where + ".cert_expires_in_days_min");
    compiled->checks.push_back(
        {"certificate valid for at least " + format_number(days) + " days", CertExpiryCheck{days}});
    kept["cert_expires_in_days_min"] = object["cert_expires_in_days_min"];
  }

  for (const auto& check : compiled->checks) {
    if (std::holds_alternative<BodyContainsCheck>(check.check) ||
        std::holds_alternative<BodyRegexCheck>(check.check) ||
        std::holds_alternative<JsonCheck>(check.check))
      compiled->needs_body = true;
    if (std::holds_alternative<HeaderCheck>(check.check)) compiled->needs_headers = true;
    if (std::holds_alternative<CertExpiryCheck>(check.check)) compiled->needs_certificate = true;
  }
  Conditions conditions;
  if (compiled->checks.empty()) return conditions;  // only "status", or nothing
  conditions.source = kept.dump();
  conditions.compiled = std::move(compiled);
  return conditions;
}

}  // namespace vigil

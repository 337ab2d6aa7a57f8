#include "api/params.h"

#include <httplib.h>

#include <charconv>
#include <limits>

#include "api/responses.h"
#include "core/json_input.h"
#include "core/text.h"

namespace vigil {

using nlohmann::json;

std::optional<std::int64_t> parse_int64(std::string_view text) {
  std::int64_t value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc{} || ptr != end) return std::nullopt;
  return value;
}

std::int64_t parse_positive_id(std::string_view text, const char* what) {
  const auto id = parse_int64(text);
  if (!id || *id < 1) throw bad_request(std::string(what) + " must be a positive integer");
  return *id;
}

ServiceId parse_service_id(std::string_view text) { return parse_positive_id(text, "service id"); }

std::optional<std::string> optional_param(const httplib::Request& req, const char* name) {
  if (!req.has_param(name)) return std::nullopt;
  return req.get_param_value(name);
}

std::optional<bool> bool_param(const httplib::Request& req, const char* name) {
  const auto value = optional_param(req, name);
  if (!value) return std::nullopt;
  if (*value == "true") return true;
  if (*value == "false") return false;
  throw bad_request(std::string(name) + " must be true or false");
}

std::int64_t UnixSeconds::floor_ms() const {
  std::int64_t ms = 0;
  for (std::size_t i = 0; i < 3; ++i) ms = ms * 10 + (i < fraction.size() ? fraction[i] - '0' : 0);
  return seconds * 1000 + ms;
}

std::int64_t UnixSeconds::ceil_ms() const { return floor_ms() + (fraction.size() > 3 ? 1 : 0); }

namespace {

std::optional<UnixSeconds> parse_unix_seconds(std::string_view text) {
  // Bounds the seconds so that seconds * 1000 + 999 (+1) still fits in int64.
  constexpr std::int64_t kMaxSeconds = std::numeric_limits<std::int64_t>::max() / 1000 - 1;
  const auto point = text.find('.');
  const std::string_view whole = text.substr(0, point);
  if (whole.empty() || whole.front() == '-') return std::nullopt;
  auto seconds = parse_int64(whole);
  if (!seconds || *seconds > kMaxSeconds) return std::nullopt;
  UnixSeconds out{*seconds, {}};
  if (point != std::string_view::npos) {
    const std::string_view fraction = text.substr(point + 1);
    if (fraction.empty()) return std::nullopt;
    for (char c : fraction)
      if (c < '0' || c > '9') return std::nullopt;
    out.fraction = std::string(fraction);
    while (!out.fraction.empty() && out.fraction.back() == '0') out.fraction.pop_back();
  }
  return out;
}

}  // namespace

std::optional<UnixSeconds> time_param(const httplib::Request& req, const char* name) {
  const auto text = optional_param(req, name);
  if (!text) return std::nullopt;
  auto value = parse_unix_seconds(*text);
  if (!value) throw bad_request(std::string(name) + " must be a non-negative unix time in seconds");
  return value;
}

int parse_limit(const httplib::Request& req) {
  try {
    return paging::parse_limit(optional_param(req, "limit"));
  } catch (const paging::BadParam& e) {
    throw bad_request(e.what());
  }
}

std::optional<paging::Key> parse_cursor(const httplib::Request& req, paging::List list,
                                        std::int64_t scope, const char* older) {
  if (older && req.has_param("cursor") && req.has_param(older))
    throw bad_request(std::string("cursor and ") + older + " cannot be combined: use cursor");
  try {
    return paging::parse_cursor(optional_param(req, "cursor"), list, scope);
  } catch (const paging::BadParam& e) {
    throw bad_request(e.what());
  }
}

void append_next(std::string& out, const std::optional<std::string>& next) {
  out += R"(,"next":)";
  out += next ? '"' + *next + '"' : std::string("null");
}

json body_object(const httplib::Request& req) {
  if (req.body.empty()) throw bad_request("body: expected a JSON object");
  json body;
  try {
    body = parse_json_input(req.body, "body");
  } catch (const ConfigError& e) {
    throw bad_request(e.what());
  }
  if (!body.is_object()) {
    throw bad_request("body: expected a JSON object, got " + shortened(dump(body), 80));
  }
  return body;
}

Credentials credentials_of(const httplib::Request& req) {
  auto it = req.headers.find("Authorization");
  return Credentials{it == req.headers.end() ? std::string_view() : std::string_view(it->second),
                     req.remote_addr};
}

}  // namespace vigil

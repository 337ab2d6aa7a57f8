#include "config/config.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

namespace vigil {
namespace {

using nlohmann::json;

const char* const kKnownVariables[] = {"API_HOST",
                                       "API_PORT",
                                       "DB_FILE",
                                       "SERVICES_FILE",
                                       "RUNNER_SCRAPE_INTERVAL_SECONDS",
                                       "RUNNER_HTTP_TIMEOUT_SECONDS",
                                       "RUNNER_MAX_CONCURRENCY",
                                       "PROBER_REGION",
                                       "LOG_LEVEL"};

std::string trim(std::string_view s) {
  const auto begin = s.find_first_not_of(" \t\r");
  if (begin == std::string_view::npos) return {};
  const auto end = s.find_last_not_of(" \t\r");
  return std::string(s.substr(begin, end - begin + 1));
}

// A JSON value as the user wrote it, for error messages.
std::string shown(const json& value) {
  std::string text = value.dump();
  if (text.size() > 80) text = text.substr(0, 77) + "...";
  return text;
}

std::string json_quoted(std::string_view s) { return json(std::string(s)).dump(); }

// Strictly parses a whole string as a finite decimal number.
std::optional<double> parse_number(std::string_view text) {
  double value = 0;
  const auto* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end || !std::isfinite(value)) return std::nullopt;
  return value;
}

std::optional<long long> parse_integer(std::string_view text) {
  long long value = 0;
  const auto* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end) return std::nullopt;
  return value;
}

Millis seconds_to_millis(double seconds) {
  return Millis(static_cast<long long>(std::llround(seconds * 1000.0)));
}

std::string format_seconds(Millis ms) {
  std::ostringstream out;
  out << double(ms.count()) / 1000.0;
  return out.str();
}

bool is_token_char(unsigned char c) {
  return std::isalnum(c) ||
         std::string_view("!#$%&'*+-.^_`|~").find(char(c)) != std::string_view::npos;
}

// Checks an http(s) URL enough to catch typos at start-up: scheme, a host, an optional numeric
// port in range, no whitespace. Returns the problem, or nothing when the URL is acceptable.
std::optional<std::string> url_problem(const std::string& url) {
  std::string_view rest(url);
  if (rest.starts_with("http://")) {
    rest.remove_prefix(7);
  } else if (rest.starts_with("https://")) {
    rest.remove_prefix(8);
  } else {
    return "must start with http:// or https://";
  }
  for (unsigned char c : url)
    if (std::isspace(c) || std::iscntrl(c))
      return "must not contain whitespace or control characters";
  const auto authority = rest.substr(0, rest.find_first_of("/?#"));
  std::string_view host = authority.substr(
      authority.rfind('@') == std::string_view::npos ? 0 : authority.rfind('@') + 1);
  std::string_view port;
  if (host.starts_with("[")) {
    const auto close = host.find(']');
    if (close == std::string_view::npos) return "has an unterminated IPv6 address";
    if (close + 1 < host.size()) {
      if (host[close + 1] != ':') return "has garbage after the IPv6 address";
      port = host.substr(close + 2);
    }
    host = host.substr(1, close - 1);
  } else if (const auto colon = host.find(':'); colon != std::string_view::npos) {
    port = host.substr(colon + 1);
    host = host.substr(0, colon);
  }
  if (host.empty()) return "has no host";
  if (!port.empty() || authority.ends_with(":")) {
    const auto number = parse_integer(port);
    if (!number || *number < 1 || *number > 65535) return "has an invalid port";
  }
  return std::nullopt;
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
    const auto lo = parse_integer(trim(std::string_view(text).substr(0, dash)));
    const auto hi = dash == std::string::npos
                        ? lo
                        : parse_integer(trim(std::string_view(text).substr(dash + 1)));
    if (!lo || !hi || !valid(*lo) || !valid(*hi) || *lo > *hi)
      throw ConfigError(where + ": " + shown(item) +
                        " is not a status code or a range like \"200-299\" within 100-599");
    return {int(*lo), int(*hi)};
  }
  throw ConfigError(where + ": expected a status code or a range like \"200-299\", got " +
                    shown(item));
}

double seconds_field(const json& value, const std::string& where) {
  if (!value.is_number())
    throw ConfigError(where + ": expected a number of seconds, got " + shown(value));
  const double seconds = value.get<double>();
  if (!std::isfinite(seconds) || seconds <= 0)
    throw ConfigError(where + ": must be a positive number of seconds, got " + shown(value));
  return seconds;
}

ServiceSpec parse_service(const json& entry, const std::string& where, const Settings& settings) {
  if (!entry.is_object()) throw ConfigError(where + ": expected an object, got " + shown(entry));
  static const std::set<std::string> known = {
      "name", "url", "interval_seconds", "timeout_seconds", "method", "headers", "expected_status"};
  // Name the service in every message once it is known.
  const std::string named = entry.contains("name") && entry["name"].is_string()
                                ? where + " (" + json_quoted(entry["name"].get<std::string>()) + ")"
                                : where;
  for (const auto& [key, value] : entry.items())
    if (!known.contains(key))
      throw ConfigError(named + ": unknown key " + json_quoted(key) +
                        " (known: name, url, interval_seconds, timeout_seconds, method, headers, "
                        "expected_status)");

  ServiceSpec spec;
  if (!entry.contains("name") || !entry["name"].is_string() ||
      trim(entry["name"].get<std::string>()).empty())
    throw ConfigError(where + ".name: required, a non-empty string" +
                      (entry.contains("name") ? ", got " + shown(entry["name"]) : ""));
  spec.name = entry["name"].get<std::string>();
  if (spec.name != trim(spec.name) || spec.name.size() > 200)
    throw ConfigError(where + ".name: " + json_quoted(spec.name) +
                      " must not have leading or trailing spaces and be at most 200 characters");
  const std::string& at = named;

  if (!entry.contains("url") || !entry["url"].is_string())
    throw ConfigError(at + ".url: required, a string" +
                      (entry.contains("url") ? ", got " + shown(entry["url"]) : ""));
  spec.url = entry["url"].get<std::string>();
  if (auto problem = url_problem(spec.url))
    throw ConfigError(at + ".url: " + json_quoted(spec.url) + " " + *problem);

  spec.interval = settings.default_interval;
  if (entry.contains("interval_seconds")) {
    spec.interval =
        seconds_to_millis(seconds_field(entry["interval_seconds"], at + ".interval_seconds"));
    if (spec.interval < kMinInterval)
      throw ConfigError(at + ".interval_seconds: " + shown(entry["interval_seconds"]) +
                        " is below the minimum of 0.1");
  }
  if (entry.contains("timeout_seconds")) {
    spec.timeout =
        seconds_to_millis(seconds_field(entry["timeout_seconds"], at + ".timeout_seconds"));
    if (spec.timeout < Millis(1))
      throw ConfigError(at + ".timeout_seconds: " + shown(entry["timeout_seconds"]) +
                        " is below 0.001");
    if (spec.timeout > spec.interval)
      throw ConfigError(at + ".timeout_seconds: " + shown(entry["timeout_seconds"]) +
                        " is above the interval of " + format_seconds(spec.interval) + " s");
  } else {
    // The default timeout never outlasts the service's own interval.
    spec.timeout = std::min(settings.default_timeout, spec.interval);
  }

  if (entry.contains("method")) {
    static const std::set<std::string> methods = {"GET",   "HEAD",   "POST",   "PUT",
                                                  "PATCH", "DELETE", "OPTIONS"};
    const auto& method = entry["method"];
    if (!method.is_string() || !methods.contains(method.get<std::string>()))
      throw ConfigError(
          at + ".method: expected one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, got " +
          shown(method));
    spec.method = method.get<std::string>();
  }

  if (entry.contains("headers")) {
    const auto& headers = entry["headers"];
    if (!headers.is_object())
      throw ConfigError(at + ".headers: expected an object of header names to strings, got " +
                        shown(headers));
    for (const auto& [name, value] : headers.items()) {
      const bool name_ok =
          !name.empty() &&
          std::all_of(name.begin(), name.end(), [](unsigned char c) { return is_token_char(c); });
      if (!name_ok)
        throw ConfigError(at + ".headers: " + json_quoted(name) + " is not a valid header name");
      if (!value.is_string())
        throw ConfigError(at + ".headers." + name + ": expected a string, got " + shown(value));
      const auto text = value.get<std::string>();
      if (text.find_first_of("\r\n") != std::string::npos)
        throw ConfigError(at + ".headers." + name + ": must not contain line breaks");
      spec.headers.emplace_back(name, text);
    }
  }

  if (entry.contains("expected_status")) {
    const auto& statuses = entry["expected_status"];
    if (!statuses.is_array() || statuses.empty())
      throw ConfigError(at +
                        ".expected_status: expected a non-empty list of codes or ranges, got " +
                        shown(statuses));
    spec.expected_status.clear();
    for (std::size_t i = 0; i < statuses.size(); ++i)
      spec.expected_status.push_back(
          parse_status_item(statuses[i], at + ".expected_status[" + std::to_string(i) + "]"));
  }
  return spec;
}

}  // namespace

EnvMap read_dotenv(const std::string& path) {
  std::ifstream in(path);
  EnvMap vars;
  if (!in) return vars;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    std::string text = trim(line);
    if (text.empty() || text.front() == '#') continue;
    if (text.starts_with("export ")) text = trim(std::string_view(text).substr(7));
    const auto eq = text.find('=');
    const std::string key =
        eq == std::string::npos ? "" : trim(std::string_view(text).substr(0, eq));
    const bool key_ok = !key.empty() && std::all_of(key.begin(), key.end(), [](unsigned char c) {
      return std::isalnum(c) || c == '_';
    });
    if (!key_ok)
      throw ConfigError(path + ":" + std::to_string(number) + ": expected KEY=VALUE, got " +
                        json_quoted(text));
    std::string value = trim(std::string_view(text).substr(eq + 1));
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
        value.back() == value.front()) {
      value = value.substr(1, value.size() - 2);
    } else if (const auto hash = value.find(" #"); hash != std::string::npos) {
      value = trim(std::string_view(value).substr(0, hash));  // trailing comment
    }
    vars[key] = value;
  }
  return vars;
}

EnvMap merged_environment(const EnvMap& dotenv) {
  EnvMap merged = dotenv;
  for (const char* name : kKnownVariables)
    if (const char* value = std::getenv(name)) merged[name] = value;
  return merged;
}

Settings load_settings(const EnvMap& env) {
  Settings settings;
  auto get = [&](const char* name) -> std::optional<std::string> {
    auto it = env.find(name);
    if (it == env.end() || it->second.empty()) return std::nullopt;
    return it->second;
  };
  auto bad = [](const char* name, const std::string& value, const std::string& expected) {
    return ConfigError(std::string(name) + ": expected " + expected + ", got " +
                       json_quoted(value));
  };
  auto seconds = [&](const char* name, double minimum) -> std::optional<Millis> {
    const auto value = get(name);
    if (!value) return std::nullopt;
    const auto number = parse_number(*value);
    if (!number || *number < minimum)
      throw bad(name, *value,
                "a number of seconds of at least " + format_seconds(seconds_to_millis(minimum)));
    return seconds_to_millis(*number);
  };

  if (auto v = get("API_HOST")) settings.api_host = *v;
  if (auto v = get("API_PORT")) {
    const auto port = parse_integer(*v);
    if (!port || *port < 0 || *port > 65535) throw bad("API_PORT", *v, "a port number 0-65535");
    settings.api_port = int(*port);
  }
  if (auto v = get("DB_FILE")) settings.db_file = *v;
  if (auto v = get("SERVICES_FILE")) settings.services_file = *v;
  if (auto v = seconds("RUNNER_SCRAPE_INTERVAL_SECONDS", 0.1)) settings.default_interval = *v;
  if (auto v = seconds("RUNNER_HTTP_TIMEOUT_SECONDS", 0.001)) settings.default_timeout = *v;
  if (auto v = get("RUNNER_MAX_CONCURRENCY")) {
    const auto count = parse_integer(*v);
    if (!count || *count < 1 || *count > 1'000'000)
      throw bad("RUNNER_MAX_CONCURRENCY", *v, "a whole number from 1 to 1000000");
    settings.max_concurrency = std::size_t(*count);
  }
  if (auto v = get("PROBER_REGION")) settings.region = *v;
  if (auto v = get("LOG_LEVEL")) {
    const auto level = parse_log_level(*v);
    if (!level) throw bad("LOG_LEVEL", *v, "one of debug, info, warn, error");
    settings.log_level = *level;
  }
  return settings;
}

std::vector<ServiceSpec> parse_services(const std::string& json_text, const std::string& source,
                                        const Settings& settings) {
  json document;
  try {
    document = json::parse(json_text);
  } catch (const json::parse_error& e) {
    throw ConfigError(source + ": not valid JSON: " + e.what());
  }
  // The file is a list of services, or an object with a "services" list (room for other
  // sections later).
  const json* list = &document;
  std::string prefix = "services";
  if (document.is_object()) {
    for (const auto& [key, value] : document.items())
      if (key != "services")
        throw ConfigError(source + ": unknown top-level key " + json_quoted(key));
    if (!document.contains("services"))
      throw ConfigError(source + ": expected a list of services or an object with \"services\"");
    list = &document["services"];
  }
  if (!list->is_array())
    throw ConfigError(source + ": " + prefix + " must be a list, got " + shown(*list));

  std::vector<ServiceSpec> specs;
  std::set<std::string> names;
  for (std::size_t i = 0; i < list->size(); ++i) {
    const std::string where = source + ": " + prefix + "[" + std::to_string(i) + "]";
    ServiceSpec spec = parse_service((*list)[i], where, settings);
    if (!names.insert(spec.name).second)
      throw ConfigError(where + ".name: duplicate name " + json_quoted(spec.name));
    specs.push_back(std::move(spec));
  }
  return specs;
}

std::vector<ServiceSpec> load_services_file(const std::string& path, const Settings& settings) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path + ": cannot read the services file (SERVICES_FILE)");
  std::ostringstream text;
  text << in.rdbuf();
  return parse_services(text.str(), path, settings);
}

}  // namespace vigil

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
#include <utility>

#include "config/database_url.h"
#include "core/conditions.h"
#include "core/ip_literal.h"
#include "core/json_input.h"
#include "core/probe_kind.h"
#include "core/probe_options.h"
#include "core/process_identity.h"
#include "core/text.h"
#include "core/url_redaction.h"

namespace vigil {
namespace {

using nlohmann::json;

const char* const kKnownVariables[] = {"API_HOST",
                                       "API_PORT",
                                       "DB_FILE",
                                       "DATABASE_URL",
                                       "SERVICES_FILE",
                                       "RUNNER_SCRAPE_INTERVAL_SECONDS",
                                       "RUNNER_HTTP_TIMEOUT_SECONDS",
                                       "RUNNER_MAX_CONCURRENCY",
                                       "PROBER_REGION",
                                       "PROBER_SOURCE_IP",
                                       "INSTANCE_NAME",
                                       "CLUSTER_LEASE_SECONDS",
                                       "LOG_LEVEL",
                                       "API_TOKEN",
                                       "API_READ_TOKEN",
                                       "RETENTION_DAYS",
                                       "RETENTION_MINUTE_DAYS",
                                       "RETENTION_HOUR_DAYS",
                                       "CLEANUP_INTERVAL_SECONDS",
                                       "STATUS_PAGE_TITLE",
                                       "STATUS_PAGE_PUBLIC",
                                       "STORAGE_QUEUE_MAX_TICKS",
                                       "HEALTH_BEAT_SECONDS",
                                       "HEALTH_SILENT_AFTER_SECONDS"};

std::string trim(std::string_view s) {
  const auto begin = s.find_first_not_of(" \t\r");
  if (begin == std::string_view::npos) return {};
  const auto end = s.find_last_not_of(" \t\r");
  return std::string(s.substr(begin, end - begin + 1));
}

// A JSON value as the user wrote it, for error messages.
// Invalid UTF-8 (a .env line is raw bytes) is replaced, not thrown: found by fuzz/settings_fuzzer,
// `FOO\xff=1` in .env made vigil exit 1 with nlohmann's type_error instead of this ConfigError.
std::string json_quoted(std::string_view s) {
  return json(std::string(s)).dump(-1, ' ', false, json::error_handler_t::replace);
}

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

// Checks a probe URL enough to catch typos at start-up: a scheme some probe kind checks
// (core/probe_kind.h), a host, an optional numeric port in range (required for an address-only
// kind such as tcp, which takes nothing after it), no whitespace. Returns the problem, or nothing
// when the URL is acceptable.
std::optional<std::string> url_problem(const std::string& url) {
  const ProbeKindInfo* kind = probe_kind_for(url);
  if (!kind) return "must start with " + probe_schemes_text();
  const std::string_view scheme = probe_scheme_of(url);
  std::string_view rest(url);
  rest.remove_prefix(scheme.size());
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
  if (kind->address_only && port.empty())
    return "needs a port (" + std::string(scheme) + "host:port)";
  if (kind->address_only && rest.size() > authority.size() && rest.substr(authority.size()) != "/")
    return "takes nothing after the port (" + std::string(scheme) + "host:port)";
  return std::nullopt;
}

double seconds_field(const json& value, const std::string& where) {
  if (!value.is_number())
    throw ConfigError(where + ": expected a number of seconds, got " + shown(value));
  const double seconds = value.get<double>();
  if (!std::isfinite(seconds) || seconds <= 0)
    throw ConfigError(where + ": must be a positive number of seconds, got " + shown(value));
  if (seconds > kMaxDurationSeconds)
    throw ConfigError(where + ": " + shown(value) + " is above the maximum of " +
                      std::to_string(kMaxDurationSeconds) + " (365 days)");
  return seconds;
}

// ---- service management and heartbeats: kind, heartbeat and metadata keys ----

// Keys only a probed service has, and keys only a heartbeat has.
const char* const kProbeOnlyKeys[] = {"url", "timeout_seconds", "method", "headers",
                                      "expected_status"};
const char* const kHeartbeatOnlyKeys[] = {"grace_seconds", "threshold"};
constexpr std::size_t kMaxTextField = 200;  // team, each tag
constexpr std::size_t kMaxTags = 32;

bool has_control_characters(std::string_view text, bool tab_allowed = false) {
  return std::any_of(text.begin(), text.end(), [&](unsigned char c) {
    return std::iscntrl(c) && !(tab_allowed && c == '\t');
  });
}

// "kind", and the keys the other kind does not take. A heartbeat is not probed, so it has no
// url, and it must say how often it reports.
ServiceKind parse_kind(const json& entry, const std::string& at) {
  ServiceKind kind = ServiceKind::http;
  if (entry.contains("kind")) {
    const auto& value = entry["kind"];
    if (!value.is_string() || (value != "http" && value != "heartbeat"))
      throw ConfigError(at + ".kind: expected \"http\" or \"heartbeat\", got " + shown(value));
    if (value == "heartbeat") kind = ServiceKind::heartbeat;
  }
  if (kind == ServiceKind::heartbeat) {
    for (const char* key : kProbeOnlyKeys)
      if (entry.contains(key))
        throw ConfigError(at + "." + key +
                          ": not allowed for a heartbeat (it is not probed; it reports in)");
    if (!entry.contains("interval_seconds"))
      throw ConfigError(at + ".interval_seconds: required for a heartbeat (how often it reports)");
  } else {
    for (const char* key : kHeartbeatOnlyKeys)
      if (entry.contains(key))
        throw ConfigError(at + "." + key + ": only for a service of kind \"heartbeat\"");
  }
  return kind;
}

void parse_heartbeat_fields(const json& entry, const std::string& at, ServiceSpec& spec) {
  if (spec.kind != ServiceKind::heartbeat) return;
  // Interval and grace are at most a year (kMaxDurationSeconds): interval x threshold + grace
  // stays far from any overflow.
  // Default slack: a tenth of the interval, so a job that runs a little late is not down.
  spec.grace = spec.interval / 10;
  if (entry.contains("grace_seconds")) {
    const auto& value = entry["grace_seconds"];
    if (!value.is_number() || !std::isfinite(value.get<double>()) || value.get<double>() < 0)
      throw ConfigError(at + ".grace_seconds: expected a number of seconds, 0 or more, got " +
                        shown(value));
    if (value.get<double>() > double(kMaxDurationSeconds))
      throw ConfigError(at + ".grace_seconds: " + shown(value) + " is above the maximum of " +
                        std::to_string(kMaxDurationSeconds) + " (365 days)");
    spec.grace = seconds_to_millis(value.get<double>());
  }
  if (entry.contains("threshold")) {
    const auto& value = entry["threshold"];
    if (!value.is_number_integer() || value.get<long long>() < 1 || value.get<long long>() > 1000)
      throw ConfigError(at + ".threshold: expected a whole number of missed intervals from 1 to " +
                        "1000, got " + shown(value));
    spec.threshold = int(value.get<long long>());
  }
}

// A short single-line label: team, a tag.
std::string label_field(const json& value, const std::string& where) {
  if (!value.is_string()) throw ConfigError(where + ": expected a string, got " + shown(value));
  auto text = value.get<std::string>();
  if (text.empty() || text != trim(text) || text.size() > kMaxTextField ||
      has_control_characters(text))
    throw ConfigError(where + ": " + shown(value) +
                      " must be 1 to 200 characters without leading or trailing spaces or "
                      "control characters");
  return text;
}

// What people route alerts with: team, priority, runbook, tags, and the mute with its snooze.
void parse_routing_metadata(const json& entry, const std::string& at, ServiceSpec& spec) {
  if (entry.contains("team")) spec.team = label_field(entry["team"], at + ".team");
  if (entry.contains("priority")) {
    const auto& value = entry["priority"];
    const std::string text = value.is_string() ? value.get<std::string>() : "";
    if (text.size() != 2 || text[0] != 'p' || text[1] < '1' || text[1] > '5')
      throw ConfigError(at + ".priority: expected one of \"p1\" (most urgent) to \"p5\", got " +
                        shown(value));
    spec.priority = text[1] - '0';
  }
  if (entry.contains("runbook")) {
    const auto& value = entry["runbook"];
    if (!value.is_string())
      throw ConfigError(at + ".runbook: expected an http(s) URL, got " + shown(value));
    spec.runbook = value.get<std::string>();
    const bool web = spec.runbook.starts_with("http://") || spec.runbook.starts_with("https://");
    const auto problem = web ? url_problem(spec.runbook)
                             : std::optional<std::string>("must start with http:// or https://");
    if (problem) throw ConfigError(at + ".runbook: " + json_quoted(spec.runbook) + " " + *problem);
  }
  if (entry.contains("tags")) {
    const auto& tags = entry["tags"];
    if (!tags.is_array() || tags.size() > kMaxTags)
      throw ConfigError(at + ".tags: expected a list of at most 32 strings, got " + shown(tags));
    for (std::size_t i = 0; i < tags.size(); ++i) {
      auto tag = label_field(tags[i], at + ".tags[" + std::to_string(i) + "]");
      if (std::find(spec.tags.begin(), spec.tags.end(), tag) != spec.tags.end())
        throw ConfigError(at + ".tags[" + std::to_string(i) + "]: duplicate tag " +
                          json_quoted(tag));
      spec.tags.push_back(std::move(tag));
    }
  }
  if (entry.contains("muted")) {
    if (!entry["muted"].is_boolean())
      throw ConfigError(at + ".muted: expected true or false, got " + shown(entry["muted"]));
    spec.muted = entry["muted"].get<bool>();
  }
  if (entry.contains("muted_until")) {
    const auto& value = entry["muted_until"];
    if (!value.is_number() || !std::isfinite(value.get<double>()) || value.get<double>() < 0 ||
        value.get<double>() > 1e11)
      throw ConfigError(at + ".muted_until: expected a unix time in seconds, got " + shown(value));
    // A snooze is a mute that ends by itself: muted_until alone means muted.
    if (entry.contains("muted") && !spec.muted)
      throw ConfigError(at + ".muted_until: a snooze needs \"muted\": true (or no \"muted\")");
    spec.muted = true;
    spec.muted_until = TimePoint(seconds_to_millis(value.get<double>()));
  }
  // Alerting: the names are checked against the alerting section by its reader
  // (check_alert_routes), which this parser does not see.
  if (entry.contains("alerts")) {
    const auto& list = entry["alerts"];
    if (!list.is_array() || list.size() > kMaxTags)
      throw ConfigError(at + ".alerts: expected a list of at most 32 channel names, got " +
                        shown(list));
    for (std::size_t i = 0; i < list.size(); ++i) {
      auto name = label_field(list[i], at + ".alerts[" + std::to_string(i) + "]");
      if (std::find(spec.alert_channels.begin(), spec.alert_channels.end(), name) !=
          spec.alert_channels.end())
        throw ConfigError(at + ".alerts[" + std::to_string(i) + "]: duplicate channel " +
                          json_quoted(name));
      spec.alert_channels.push_back(std::move(name));
    }
  }
  if (entry.contains("repeat_every_seconds")) {
    const auto& value = entry["repeat_every_seconds"];
    if (!value.is_number() || !std::isfinite(value.get<double>()) || value.get<double>() < 1 ||
        value.get<double>() > 1e7)
      throw ConfigError(at + ".repeat_every_seconds: expected a number of seconds from 1, got " +
                        shown(value));
    spec.repeat_every = seconds_to_millis(value.get<double>());
  }
}

ServiceSpec parse_service(const json& entry, const std::string& where, const Settings& settings) {
  if (!entry.is_object()) throw ConfigError(where + ": expected an object, got " + shown(entry));
  static const std::set<std::string> known = {"name",
                                              "url",
                                              "interval_seconds",
                                              "timeout_seconds",
                                              "method",
                                              "headers",
                                              "expected_status",
                                              "kind",
                                              "grace_seconds",
                                              "threshold",
                                              "team",
                                              "priority",
                                              "runbook",
                                              "tags",
                                              "muted",
                                              "muted_until",
                                              "alerts",
                                              "repeat_every_seconds"};
  // Name the service in every message once it is known.
  const std::string named = entry.contains("name") && entry["name"].is_string()
                                ? where + " (" + json_quoted(entry["name"].get<std::string>()) + ")"
                                : where;
  for (const auto& [key, value] : entry.items())
    if (!known.contains(key) && !is_probe_option_key(key))
      throw ConfigError(named + ": unknown key " + json_quoted(key) +
                        " (known: name, url, interval_seconds, timeout_seconds, method, headers, "
                        "expected_status, kind, grace_seconds, threshold, team, priority, "
                        "runbook, tags, muted, muted_until, alerts, repeat_every_seconds, " +
                        probe_option_keys_text() + ")");

  ServiceSpec spec;
  if (!entry.contains("name") || !entry["name"].is_string() ||
      trim(entry["name"].get<std::string>()).empty())
    throw ConfigError(where + ".name: required, a non-empty string" +
                      (entry.contains("name") ? ", got " + shown(entry["name"]) : ""));
  spec.name = entry["name"].get<std::string>();
  // Names go into log lines and alerts: a line break or escape sequence in one would forge them.
  if (spec.name != trim(spec.name) || spec.name.size() > 200 || has_control_characters(spec.name))
    throw ConfigError(where + ".name: " + json_quoted(spec.name) +
                      " must be at most 200 characters without leading or trailing spaces or "
                      "control characters");
  const std::string& at = named;

  spec.kind = parse_kind(entry, at);  // a heartbeat has no url
  if (spec.kind == ServiceKind::http) {
    if (!entry.contains("url") || !entry["url"].is_string())
      throw ConfigError(at + ".url: required, a string" +
                        (entry.contains("url") ? ", got " + shown(entry["url"]) : ""));
    spec.url = entry["url"].get<std::string>();
    if (auto problem = url_problem(spec.url))
      throw ConfigError(at + ".url: " + json_quoted(redact_url(spec.url, UrlAudience::writer)) +
                        " " + *problem);
  }

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
      // curl sends a value as a C string (a NUL cuts it) on one line; HTTP allows tab, not
      // other control characters.
      if (has_control_characters(text, /*tab_allowed=*/true))
        throw ConfigError(at + ".headers." + name +
                          ": must not contain line breaks or other control characters (NUL, "
                          "CR, LF...; tab is allowed)");
      spec.headers.emplace_back(name, text);
    }
  }

  if (entry.contains("expected_status"))
    spec.expected_status = parse_status_ranges(entry["expected_status"], at + ".expected_status");

  parse_heartbeat_fields(entry, at, spec);
  parse_routing_metadata(entry, at, spec);
  parse_probe_options(entry, at, spec);  // conditions, TLS, TCP, thresholds
  return spec;
}

}  // namespace

// The value part of a .env line, as python-dotenv and docker compose read it: 'single quotes'
// keep their content literally; "double quotes" also read \" \\ \n \r \t; either may be
// followed by a # comment. An unquoted value ends at a # that follows a space or tab (a#b keeps
// its #) and is trimmed. A quote not closed on its line, or text after the closing quote, is a
// ConfigError starting with `where`.
std::string dotenv_value(std::string_view rest, const std::string& where) {
  std::string value = trim(rest);
  if (value.starts_with('#') && !rest.starts_with('#')) return "";  // KEY= # only a comment
  if (value.empty() || (value.front() != '"' && value.front() != '\'')) {
    for (std::size_t i = 1; i < value.size(); ++i)
      if (value[i] == '#' && (value[i - 1] == ' ' || value[i - 1] == '\t'))
        return trim(std::string_view(value).substr(0, i));
    return value;
  }
  const char quote = value.front();
  std::string out;
  std::size_t i = 1;
  for (; i < value.size() && value[i] != quote; ++i) {
    if (quote == '"' && value[i] == '\\' && i + 1 < value.size()) {
      const char next = value[++i];
      switch (next) {
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case '"':
        case '\\':
          out += next;
          break;
        default:
          out += '\\';
          out += next;  // not an escape: kept as written
      }
      continue;
    }
    out += value[i];
  }
  if (i >= value.size())
    throw ConfigError(where + ": the value's opening " + std::string(1, quote) +
                      " is not closed on this line");
  const std::string after = trim(std::string_view(value).substr(i + 1));
  if (!after.empty() && after.front() != '#')
    throw ConfigError(where + ": unexpected " + json_quoted(after) +
                      " after the closing quote (a comment starts with #)");
  return out;
}

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
    vars[key] = dotenv_value(std::string_view(text).substr(eq + 1),
                             path + ":" + std::to_string(number) + ": " + key);
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
    if (!number || *number < minimum || *number > double(kMaxDurationSeconds))
      throw bad(name, *value,
                "a number of seconds from " + format_seconds(seconds_to_millis(minimum)) + " to " +
                    std::to_string(kMaxDurationSeconds) + " (365 days)");
    return seconds_to_millis(*number);
  };

  if (auto v = get("API_HOST")) settings.api_host = *v;
  if (auto v = get("API_PORT")) {
    const auto port = parse_integer(*v);
    if (!port || *port < 0 || *port > 65535) throw bad("API_PORT", *v, "a port number 0-65535");
    settings.api_port = int(*port);
  }
  if (auto v = get("DB_FILE")) settings.db_file = *v;
  if (auto v = get("DATABASE_URL")) {
    // Neither silently wins: a DB_FILE left in .env beside a new DATABASE_URL is a question.
    if (get("DB_FILE"))
      throw ConfigError(
          "DATABASE_URL and DB_FILE are both set: DATABASE_URL selects PostgreSQL, DB_FILE "
          "SQLite; unset one of them");
    // Never echoed: it may hold a password.
    if (auto problem = connection_string_problem(*v))
      throw ConfigError("DATABASE_URL: " + *problem);
    settings.database_url = *v;
  }
  if (auto v = get("SERVICES_FILE")) settings.services_file = *v;
  if (auto v = seconds("RUNNER_SCRAPE_INTERVAL_SECONDS", 0.1)) settings.default_interval = *v;
  if (auto v = seconds("RUNNER_HTTP_TIMEOUT_SECONDS", 0.001)) settings.default_timeout = *v;
  if (auto v = get("RUNNER_MAX_CONCURRENCY")) {
    const auto count = parse_integer(*v);
    if (!count || *count < 1 || *count > 1'000'000)
      throw bad("RUNNER_MAX_CONCURRENCY", *v, "a whole number from 1 to 1000000");
    settings.max_concurrency = std::size_t(*count);
  }
  if (auto v = get("STORAGE_QUEUE_MAX_TICKS")) {
    const auto count = parse_integer(*v);
    if (!count || *count < 1 || *count > 100'000'000)
      throw bad("STORAGE_QUEUE_MAX_TICKS", *v, "a whole number from 1 to 100000000");
    settings.storage_queue_max_ticks = std::size_t(*count);
  }
  if (auto v = get("PROBER_REGION")) settings.region = *v;
  if (auto v = get("PROBER_SOURCE_IP")) {
    if (!is_ip_literal(*v))
      throw bad("PROBER_SOURCE_IP", *v,
                "an IPv4 or IPv6 address of this machine, such as 127.0.0.2");
    settings.source_ip = *v;
  }
  if (auto v = get("INSTANCE_NAME")) {
    if (v->empty() || v->size() > 200 || has_control_characters(*v))
      throw bad("INSTANCE_NAME", *v, "1 to 200 characters without control characters");
    settings.instance_name = *v;
  }
  if (auto v = seconds("CLUSTER_LEASE_SECONDS", 1)) {
    if (*v > Millis{3'600'000})
      throw bad("CLUSTER_LEASE_SECONDS", *get("CLUSTER_LEASE_SECONDS"),
                "a number of seconds from 1 to 3600");
    settings.cluster_lease = *v;
  }
  if (auto v = get("LOG_LEVEL")) {
    const auto level = parse_log_level(*v);
    if (!level) throw bad("LOG_LEVEL", *v, "one of debug, info, warn, error");
    settings.log_level = *level;
  }

  // Write/read tokens, tick retention.
  const auto token = [&](const char* name) -> std::string {
    const auto value = get(name);
    if (!value) return {};
    // Sent in an Authorization header: printable ASCII without spaces. Long enough that it
    // cannot be guessed online. The value is never echoed: it is a secret.
    const bool printable = std::all_of(value->begin(), value->end(),
                                       [](unsigned char c) { return c > 0x20 && c < 0x7f; });
    if (!printable || value->size() < 16)
      throw ConfigError(std::string(name) +
                        ": expected at least 16 printable characters without spaces (for "
                        "example the output of `openssl rand -hex 32`)");
    return *value;
  };
  settings.api_token = token("API_TOKEN");
  settings.api_read_token = token("API_READ_TOKEN");
  if (auto v = get("RETENTION_DAYS")) {
    const auto days = parse_number(*v);
    if (!days || *days < 0 || *days > 100'000)
      throw bad("RETENTION_DAYS", *v, "a number of days from 0 (keep forever) to 100000");
    settings.tick_retention = seconds_to_millis(*days * 86'400);
  }
  // Rollup retention per resolution, in days like RETENTION_DAYS.
  for (auto [name, target] : {std::pair{"RETENTION_MINUTE_DAYS", &settings.minute_retention},
                              std::pair{"RETENTION_HOUR_DAYS", &settings.hour_retention}}) {
    if (auto v = get(name)) {
      const auto days = parse_number(*v);
      if (!days || *days < 0 || *days > 100'000)
        throw bad(name, *v, "a number of days from 0 (keep forever) to 100000");
      *target = seconds_to_millis(*days * 86'400);
    }
  }
  if (auto v = seconds("CLEANUP_INTERVAL_SECONDS", 1)) settings.cleanup_interval = *v;
  // Liveness beats: 3 periods by default so that two late or lost beats are no alarm, and at
  // least 2 s because the runner and alerter loops only wake once a second.
  if (auto v = seconds("HEALTH_BEAT_SECONDS", 0.1)) settings.health_beat_period = *v;
  settings.health_silent_after = std::max(3 * settings.health_beat_period, Millis(10'000));
  if (auto v = seconds("HEALTH_SILENT_AFTER_SECONDS", 2)) {
    if (*v < 3 * settings.health_beat_period)
      throw bad("HEALTH_SILENT_AFTER_SECONDS", *get("HEALTH_SILENT_AFTER_SECONDS"),
                "at least 3 x HEALTH_BEAT_SECONDS (" +
                    format_seconds(3 * settings.health_beat_period) + " s)");
    settings.health_silent_after = *v;
  }
  // The status page.
  if (auto v = get("STATUS_PAGE_TITLE")) {
    if (v->empty() || v->size() > 200 || has_control_characters(*v))
      throw bad("STATUS_PAGE_TITLE", *v, "1 to 200 characters without control characters");
    settings.status_page_title = *v;
  }
  if (auto v = get("STATUS_PAGE_PUBLIC")) {
    if (*v != "true" && *v != "false") throw bad("STATUS_PAGE_PUBLIC", *v, "true or false");
    settings.status_page_public = *v == "true";
  }
  return settings;
}

std::string instance_name(const Settings& settings, bool serves_api) {
  if (!settings.instance_name.empty()) return settings.instance_name;
  return host_name() + ":" + std::to_string(settings.api_port) + (serves_api ? "" : "/runner");
}

std::vector<ServiceSpec> parse_services(const std::string& json_text, const std::string& source,
                                        const Settings& settings) {
  const json document = parse_json_input(json_text, source, "services");
  // The file is a list of services, or an object with a "services" list and an optional
  // "alerting" section (parsed by alerting/alerting_config.h).
  const json* list = &document;
  std::string prefix = "services";
  if (document.is_object()) {
    for (const auto& [key, value] : document.items())
      if (key != "services" && key != "alerting")
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
  return parse_services(read_config_file(path, kServicesFileWhat), path, settings);
}

}  // namespace vigil

namespace vigil {

// ---- service management: one service object, its JSON form, a PATCH ----

ServiceSpec parse_service_spec(const json& entry, const std::string& where,
                               const Settings& settings) {
  return parse_service(entry, where, settings);
}

namespace {

json seconds_json(Millis ms) {
  // Whole seconds stay integers, so a merged PATCH reads back as the user wrote it.
  if (ms.count() % 1000 == 0) return ms.count() / 1000;
  return double(ms.count()) / 1000.0;
}

json status_item_json(const StatusRange& range) {
  if (range.lo == range.hi) return range.lo;
  return std::to_string(range.lo) + "-" + std::to_string(range.hi);
}

}  // namespace

json service_spec_json(const ServiceSpec& spec) {
  // Every key parse_service reads must be written here: merge_service_patch builds on it, and a
  // key left out would be reset by any PATCH (config_test checks the round trip).
  json out = json::object();
  out["name"] = spec.name;
  out["kind"] = to_string(spec.kind);
  out["interval_seconds"] = seconds_json(spec.interval);
  if (spec.kind == ServiceKind::http) {
    out["url"] = spec.url;
    out["timeout_seconds"] = seconds_json(spec.timeout);
    out["method"] = spec.method;
    json headers = json::object();
    for (const auto& [name, value] : spec.headers) headers[name] = value;
    out["headers"] = headers;
    json statuses = json::array();
    for (const auto& range : spec.expected_status) statuses.push_back(status_item_json(range));
    out["expected_status"] = statuses;
    add_probe_options_json(spec.probe, out);
  } else {
    out["grace_seconds"] = seconds_json(spec.grace);
    out["threshold"] = spec.threshold;
  }
  if (!spec.team.empty()) out["team"] = spec.team;
  out["priority"] = "p" + std::to_string(spec.priority);
  if (!spec.runbook.empty()) out["runbook"] = spec.runbook;
  out["tags"] = spec.tags;
  // "muted" only when true: a PATCH that only sets muted_until then means a snooze.
  if (spec.muted) out["muted"] = true;
  if (spec.muted && spec.muted_until)
    out["muted_until"] = seconds_json(spec.muted_until->time_since_epoch());
  if (!spec.alert_channels.empty()) out["alerts"] = spec.alert_channels;
  if (spec.repeat_every) out["repeat_every_seconds"] = seconds_json(*spec.repeat_every);
  return out;
}

json merge_service_patch(const ServiceSpec& current, const json& patch, const std::string& where,
                         const Settings& settings) {
  if (!patch.is_object())
    throw ConfigError(where + ": expected an object of the fields to change, got " + shown(patch));
  json merged = service_spec_json(current);
  if (patch.contains("kind") && patch["kind"] != merged["kind"])
    throw ConfigError(where + ".kind: cannot be changed (create a new service of the other kind)");

  // Defaults derived from the interval follow a new interval unless set in the same PATCH.
  if (patch.contains("interval_seconds")) {
    if (!patch.contains("timeout_seconds") &&
        current.timeout == std::min(settings.default_timeout, current.interval))
      merged.erase("timeout_seconds");
    if (!patch.contains("grace_seconds") && current.grace == current.interval / 10)
      merged.erase("grace_seconds");
  }
  // Muting or unmuting starts over: the old snooze does not carry into the new state.
  if (patch.contains("muted") && !patch.contains("muted_until")) merged.erase("muted_until");

  for (const auto& [key, value] : patch.items()) {
    if (value.is_null())
      merged.erase(key);  // back to the default
    else
      merged[key] = value;
  }
  return merged;
}

}  // namespace vigil

#include "core/probe_options.h"

#include <algorithm>
#include <cmath>
#include <fstream>

#include "core/conditions.h"
#include "core/config_error.h"
#include "core/ip_literal.h"
#include "core/json_input.h"
#include "core/probe_kind.h"
#include "core/text.h"

namespace vigil {
namespace {

using nlohmann::json;

constexpr const char* kKeys[] = {"conditions",
                                 "body",
                                 "follow_redirects",
                                 "max_redirects",
                                 "insecure_skip_verify",
                                 "ca_file",
                                 "client_cert",
                                 "client_key",
                                 "proxy",
                                 "ip_version",
                                 "user_agent",
                                 "source_ip",
                                 "send",
                                 "expect",
                                 "failure_threshold",
                                 "success_threshold",
                                 "retry_interval_seconds"};

constexpr std::size_t kMaxBodyBytes = 64 * 1024;
constexpr int kMaxRedirectsLimit = 50;
constexpr int kMaxThreshold = 100;

bool boolean(const json& value, const std::string& where) {
  if (!value.is_boolean())
    throw ConfigError(where + ": expected true or false, got " + shown(value));
  return value.get<bool>();
}

int whole_number(const json& value, int lo, int hi, const std::string& where) {
  if (!value.is_number_integer() || value.get<long long>() < lo || value.get<long long>() > hi)
    throw ConfigError(where + ": expected a whole number from " + std::to_string(lo) + " to " +
                      std::to_string(hi) + ", got " + shown(value));
  return int(value.get<long long>());
}

std::string text(const json& value, const std::string& where, bool allow_line_breaks = false) {
  if (!value.is_string() || value.get<std::string>().empty())
    throw ConfigError(where + ": expected a non-empty string, got " + shown(value));
  std::string out = value.get<std::string>();
  // These go to curl as C strings (a NUL would cut them) and user_agent on a header line.
  const bool control = std::any_of(
      out.begin(), out.end(), [](unsigned char c) { return (c < 0x20 && c != '\t') || c == 0x7f; });
  if (!allow_line_breaks && control)
    throw ConfigError(where +
                      ": must not contain line breaks or other control characters (NUL, CR, "
                      "LF...; tab is allowed)");
  return out;
}

// The syntax of every key, shared by the services file and the stored column. `status` receives
// conditions.status when present.
void read_options(const json& object, const std::string& at, ProbeOptions& options,
                  std::optional<std::vector<StatusRange>>* status) {
  if (object.contains("conditions")) {
    const json& conditions = object["conditions"];
    options.conditions = parse_conditions(conditions, at + ".conditions");
    if (status && conditions.contains("status"))
      *status = parse_status_ranges(conditions["status"], at + ".conditions.status");
  }
  if (object.contains("body")) {
    const json& body = object["body"];
    if (!body.is_string() || body.get<std::string>().size() > kMaxBodyBytes)
      throw ConfigError(at + ".body: expected a string of at most 65536 bytes, got " + shown(body));
    options.body = body.get<std::string>();
  }
  if (object.contains("follow_redirects"))
    options.follow_redirects = boolean(object["follow_redirects"], at + ".follow_redirects");
  if (object.contains("max_redirects"))
    options.max_redirects =
        whole_number(object["max_redirects"], 0, kMaxRedirectsLimit, at + ".max_redirects");
  if (object.contains("insecure_skip_verify"))
    options.insecure_skip_verify =
        boolean(object["insecure_skip_verify"], at + ".insecure_skip_verify");
  if (object.contains("ca_file")) options.ca_file = text(object["ca_file"], at + ".ca_file");
  if (object.contains("client_cert"))
    options.client_cert = text(object["client_cert"], at + ".client_cert");
  if (object.contains("client_key"))
    options.client_key = text(object["client_key"], at + ".client_key");
  if (object.contains("proxy")) {
    options.proxy = text(object["proxy"], at + ".proxy");
    static const char* const schemes[] = {"http://",    "https://",  "socks4://",
                                          "socks4a://", "socks5://", "socks5h://"};
    const bool known = std::any_of(std::begin(schemes), std::end(schemes),
                                   [&](const char* s) { return options.proxy.starts_with(s); });
    const bool spaces = options.proxy.find_first_of(" \t") != std::string::npos;
    if (!known || spaces)
      throw ConfigError(at + ".proxy: " + shown(object["proxy"]) +
                        " must be a URL starting with http://, https://, socks4://, socks4a://, "
                        "socks5:// or socks5h://");
  }
  if (object.contains("ip_version")) {
    const json& value = object["ip_version"];
    if (value == 4 || value == "4")
      options.ip_version = IpVersion::v4;
    else if (value == 6 || value == "6")
      options.ip_version = IpVersion::v6;
    else if (value == "any")
      options.ip_version = IpVersion::any;
    else
      throw ConfigError(at + ".ip_version: expected 4, 6 or \"any\", got " + shown(value));
  }
  if (object.contains("user_agent")) {
    options.user_agent = text(object["user_agent"], at + ".user_agent");
    if (options.user_agent.size() > 512)
      throw ConfigError(at + ".user_agent: must be at most 512 characters");
  }
  if (object.contains("source_ip")) {
    options.source_ip = text(object["source_ip"], at + ".source_ip");
    if (!is_ip_literal(options.source_ip))
      throw ConfigError(at + ".source_ip: " + shown(object["source_ip"]) +
                        " must be an IPv4 or IPv6 address of this machine, such as 127.0.0.2");
  }
  if (object.contains("send")) options.tcp_send = text(object["send"], at + ".send", true);
  if (object.contains("expect")) options.tcp_expect = text(object["expect"], at + ".expect", true);
  if (object.contains("failure_threshold"))
    options.failure_threshold =
        whole_number(object["failure_threshold"], 1, kMaxThreshold, at + ".failure_threshold");
  if (object.contains("success_threshold"))
    options.success_threshold =
        whole_number(object["success_threshold"], 1, kMaxThreshold, at + ".success_threshold");
  if (object.contains("retry_interval_seconds")) {
    const json& value = object["retry_interval_seconds"];
    if (!value.is_number() || !std::isfinite(value.get<double>()) ||
        value.get<double>() * 1000 < double(kMinInterval.count()) ||
        value.get<double>() > double(kMaxDurationSeconds))
      throw ConfigError(at + ".retry_interval_seconds: expected a number of seconds from 0.1 to " +
                        std::to_string(kMaxDurationSeconds) + ", got " + shown(value));
    options.retry_interval = Millis(std::llround(value.get<double>() * 1000));
  }
}

void require_readable(const std::string& path, const std::string& where) {
  if (path.empty()) return;
  std::ifstream in(path);
  if (!in) throw ConfigError(where + ": cannot read " + shown(json(path)));
}

// What does not fit the rest of the spec. Values are checked, not keys, so the explicit
// defaults of a round-tripped spec (service_spec_json) pass.
void check_fit(const json& entry, const std::string& at, const ServiceSpec& spec) {
  const ProbeOptions& o = spec.probe;
  if (spec.kind == ServiceKind::heartbeat) {
    for (const char* key : kKeys)
      if (entry.contains(key))
        throw ConfigError(at + "." + key +
                          ": not allowed for a heartbeat (it is not probed; it reports in)");
    return;
  }
  // A URL no kind checks is probed (and reported unsupported) as HTTP.
  const ProbeKindInfo* kind = probe_kind_for(spec.url);
  const std::string scheme(probe_scheme_of(spec.url));
  const ProbeOptions defaults;
  if (kind && !kind->http) {
    const auto refuse = [&](bool differs, const char* key) {
      if (differs)
        throw ConfigError(at + "." + key + ": does not apply to a " + scheme +
                          " service (HTTP only)");
    };
    refuse(spec.method != "GET", "method");
    refuse(!spec.headers.empty(), "headers");
    refuse(spec.expected_status != ServiceSpec{}.expected_status, "expected_status");
    refuse(!o.body.empty(), "body");
    refuse(o.follow_redirects != defaults.follow_redirects, "follow_redirects");
    refuse(o.max_redirects != defaults.max_redirects, "max_redirects");
    refuse(o.insecure_skip_verify, "insecure_skip_verify");
    refuse(!o.ca_file.empty(), "ca_file");
    refuse(!o.client_cert.empty(), "client_cert");
    refuse(!o.client_key.empty(), "client_key");
    refuse(!o.proxy.empty(), "proxy");
    refuse(!o.user_agent.empty(), "user_agent");
    if (o.conditions.compiled)
      for (const auto& check : o.conditions.compiled->checks)
        if (!std::holds_alternative<MaxResponseCheck>(check.check))
          throw ConfigError(at + ".conditions: a " + scheme +
                            " service only takes max_response_ms (" + check.description +
                            " needs an HTTP response)");
  }
  if (!kind || !kind->conversation) {
    if (!o.tcp_send.empty())
      throw ConfigError(at + ".send: only for a " + conversation_schemes_text() + " service");
    if (!o.tcp_expect.empty())
      throw ConfigError(at + ".expect: only for a " + conversation_schemes_text() + " service");
  }
  if (!o.body.empty() &&
      (spec.method == "GET" || spec.method == "HEAD" || spec.method == "OPTIONS"))
    throw ConfigError(at + ".body: needs method POST, PUT, PATCH or DELETE (method is " +
                      spec.method + ")");
  if (!o.client_key.empty() && o.client_cert.empty())
    throw ConfigError(at + ".client_key: needs client_cert as well");
  if (o.retry_interval && *o.retry_interval >= spec.interval)
    throw ConfigError(at + ".retry_interval_seconds: must be shorter than the interval of " +
                      format_number(double(spec.interval.count()) / 1000.0) + " s");
  require_readable(o.ca_file, at + ".ca_file");
  require_readable(o.client_cert, at + ".client_cert");
  require_readable(o.client_key, at + ".client_key");
}

}  // namespace

bool is_probe_option_key(std::string_view key) {
  return std::find(std::begin(kKeys), std::end(kKeys), key) != std::end(kKeys);
}

const char* probe_option_keys_text() {
  return "conditions, body, follow_redirects, max_redirects, insecure_skip_verify, ca_file, "
         "client_cert, client_key, proxy, ip_version, user_agent, source_ip, send, expect, "
         "failure_threshold, success_threshold, retry_interval_seconds";
}

void parse_probe_options(const json& entry, const std::string& at, ServiceSpec& spec) {
  std::optional<std::vector<StatusRange>> status;
  read_options(entry, at, spec.probe, &status);
  if (status) {
    // Two spellings of one thing: either, or both saying the same.
    if (entry.contains("expected_status") && spec.expected_status != *status)
      throw ConfigError(at + ".conditions.status: disagrees with expected_status; give one");
    spec.expected_status = *status;
  }
  check_fit(entry, at, spec);
}

void add_probe_options_json(const ProbeOptions& o, json& object) {
  const ProbeOptions d;
  if (!o.conditions.empty()) object["conditions"] = json::parse(o.conditions.source);
  if (!o.body.empty()) object["body"] = o.body;
  if (o.follow_redirects != d.follow_redirects) object["follow_redirects"] = o.follow_redirects;
  if (o.max_redirects != d.max_redirects) object["max_redirects"] = o.max_redirects;
  if (o.insecure_skip_verify) object["insecure_skip_verify"] = true;
  if (!o.ca_file.empty()) object["ca_file"] = o.ca_file;
  if (!o.client_cert.empty()) object["client_cert"] = o.client_cert;
  if (!o.client_key.empty()) object["client_key"] = o.client_key;
  if (!o.proxy.empty()) object["proxy"] = o.proxy;
  if (o.ip_version == IpVersion::v4) object["ip_version"] = 4;
  if (o.ip_version == IpVersion::v6) object["ip_version"] = 6;
  if (!o.user_agent.empty()) object["user_agent"] = o.user_agent;
  if (!o.source_ip.empty()) object["source_ip"] = o.source_ip;
  if (!o.tcp_send.empty()) object["send"] = o.tcp_send;
  if (!o.tcp_expect.empty()) object["expect"] = o.tcp_expect;
  if (o.failure_threshold != d.failure_threshold) object["failure_threshold"] = o.failure_threshold;
  if (o.success_threshold != d.success_threshold) object["success_threshold"] = o.success_threshold;
  if (o.retry_interval) {
    const auto ms = o.retry_interval->count();
    object["retry_interval_seconds"] = ms % 1000 == 0 ? json(ms / 1000) : json(double(ms) / 1000.0);
  }
}

std::string encode_probe_options(const ProbeOptions& options) {
  json object = json::object();
  add_probe_options_json(options, object);
  return object.empty() ? std::string() : object.dump();
}

ProbeOptions decode_probe_options(const std::string& text) {
  ProbeOptions options;
  if (text.empty()) return options;
  json object;
  try {
    object = json::parse(text);
  } catch (const json::exception& e) {
    throw ConfigError(std::string("probe_options: not valid JSON: ") + e.what());
  }
  if (!object.is_object()) throw ConfigError("probe_options: expected an object");
  read_options(object, "probe_options", options, nullptr);
  return options;
}

}  // namespace vigil

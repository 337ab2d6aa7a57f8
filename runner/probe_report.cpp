#include "runner/probe_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sstream>

#include "config/config.h"
#include "core/url_redaction.h"

namespace vigil {
namespace {

using nlohmann::json;

constexpr int kBarWidth = 40;
constexpr double kDefaultTimeoutSeconds = 10;

const char* const kUsage =
    "usage: vigil probe URL [--method M] [--header \"Name: value\"]... [--timeout SECONDS]\n"
    "                       [--insecure] [--expect CONDITION]... [--json]\n"
    "CONDITION: status=200,300-399  body_contains=TEXT  body_not_contains=TEXT  body_regex=RE\n"
    "           json=/pointer==VALUE  json=/pointer<N  json=/pointer>N  json=/pointer (exists)\n"
    "           json=!/pointer (absent)  header=NAME:TEXT  max_response_ms=N\n"
    "           cert_expires_in_days_min=N  or a JSON object of conditions as in the services "
    "file\n"
    "Exit code: 0 up, 1 down, 2 bad arguments.\n";

class BadArguments : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

std::string format_ms(double ms) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f ms", ms);
  return text;
}

std::string format_utc(TimePoint t) {
  const std::time_t seconds = static_cast<std::time_t>(to_unix_seconds(t));
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[40];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return text;
}

double days_until(TimePoint t) {
  return std::chrono::duration<double>(t - now_ms()).count() / 86400.0;
}

std::string number_or_text(const std::string& text) {
  // "UP" stays a string; 3, true, null, "quoted" are read as the JSON they are.
  json value = json::parse(text, nullptr, /*allow_exceptions=*/false);
  return value.is_discarded() ? json(text).dump() : value.dump();
}

double number_argument(const std::string& text, const std::string& what) {
  try {
    std::size_t used = 0;
    const double value = std::stod(text, &used);
    if (used == text.size() && std::isfinite(value)) return value;
  } catch (const std::exception&) {
  }
  throw BadArguments(what + ": expected a number, got \"" + text + "\"");
}

// One --expect into the conditions object (the services file's shape).
void add_expectation(const std::string& text, json& conditions) {
  if (text.starts_with("{")) {
    const json object = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (!object.is_object()) throw BadArguments("--expect " + text + ": not a JSON object");
    for (const auto& [key, value] : object.items()) {
      if ((key == "json" || key == "header") && conditions.contains(key) && value.is_array()) {
        for (const auto& item : value) conditions[key].push_back(item);
      } else {
        conditions[key] = value;
      }
    }
    return;
  }
  const auto eq = text.find('=');
  if (eq == std::string::npos)
    throw BadArguments("--expect " + text + ": expected NAME=VALUE (see vigil probe --help)");
  const std::string name = text.substr(0, eq);
  const std::string value = text.substr(eq + 1);
  const auto once = [&](const std::string& key, const json& v) {
    if (conditions.contains(key)) throw BadArguments("--expect " + key + ": given twice");
    conditions[key] = v;
  };
  if (name == "status") {
    json list = json::array();
    std::stringstream items(value);
    for (std::string item; std::getline(items, item, ',');) {
      const bool range = item.find('-') != std::string::npos;
      list.push_back(range
                         ? json(item)
                         : json(static_cast<long long>(number_argument(item, "--expect status"))));
    }
    once("status", list);
  } else if (name == "body_contains" || name == "body_not_contains" || name == "body_regex") {
    once(name, value);
  } else if (name == "max_response_ms" || name == "cert_expires_in_days_min") {
    once(name, number_argument(value, "--expect " + name));
  } else if (name == "header") {
    const auto colon = value.find(':');
    if (colon == std::string::npos)
      throw BadArguments("--expect header=" + value + ": expected header=NAME:TEXT");
    conditions["header"].push_back(
        {{"name", value.substr(0, colon)}, {"contains", value.substr(colon + 1)}});
  } else if (name == "json") {
    json item;
    if (value.starts_with("!")) {
      item = {{"pointer", value.substr(1)}, {"exists", false}};
    } else if (const auto equals = value.find("=="); equals != std::string::npos) {
      item = {{"pointer", value.substr(0, equals)},
              {"equals", json::parse(number_or_text(value.substr(equals + 2)))}};
    } else if (const auto op = value.find_first_of("<>"); op != std::string::npos) {
      item = {{"pointer", value.substr(0, op)},
              {value[op] == '<' ? "lt" : "gt",
               number_argument(value.substr(op + 1), "--expect json=" + value)}};
    } else {
      item = {{"pointer", value}, {"exists", true}};
    }
    conditions["json"].push_back(item);
  } else {
    throw BadArguments("--expect " + name +
                       ": unknown condition (status, body_contains, body_not_contains, "
                       "body_regex, json, header, max_response_ms, cert_expires_in_days_min)");
  }
}

struct Arguments {
  std::string url;
  json service = json::object();
  bool as_json = false;
  bool help = false;
  Millis timeout{};
};

Arguments parse_arguments(const std::vector<std::string>& args) {
  Arguments parsed;
  json headers = json::object();
  json conditions = json::object();
  double timeout_seconds = kDefaultTimeoutSeconds;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    const auto value = [&]() -> const std::string& {
      if (i + 1 >= args.size()) throw BadArguments(arg + ": needs a value");
      return args[++i];
    };
    if (arg == "--help" || arg == "-h") {
      parsed.help = true;
    } else if (arg == "--json") {
      parsed.as_json = true;
    } else if (arg == "--insecure") {
      parsed.service["insecure_skip_verify"] = true;
    } else if (arg == "--method") {
      parsed.service["method"] = value();
    } else if (arg == "--header") {
      const std::string& header = value();
      const auto colon = header.find(':');
      if (colon == std::string::npos)
        throw BadArguments("--header " + header + ": expected \"Name: value\"");
      std::string text = header.substr(colon + 1);
      text.erase(0, text.find_first_not_of(' '));
      headers[header.substr(0, colon)] = text;
    } else if (arg == "--timeout") {
      timeout_seconds = number_argument(value(), "--timeout");
      if (timeout_seconds <= 0 || timeout_seconds > 3600)
        throw BadArguments("--timeout: expected seconds between 0 and 3600");
    } else if (arg == "--expect") {
      add_expectation(value(), conditions);
    } else if (arg.starts_with("-")) {
      throw BadArguments("unknown option " + arg);
    } else if (parsed.url.empty()) {
      parsed.url = arg;
    } else {
      throw BadArguments("unexpected argument \"" + arg + "\" (one URL per probe)");
    }
  }
  if (parsed.help) return parsed;
  if (parsed.url.empty()) throw BadArguments("a URL is required");
  parsed.service["name"] = "probe";
  parsed.service["url"] = parsed.url;
  parsed.service["timeout_seconds"] = timeout_seconds;
  parsed.service["interval_seconds"] = std::max(timeout_seconds, 0.1);
  if (!headers.empty()) parsed.service["headers"] = headers;
  if (!conditions.empty()) parsed.service["conditions"] = conditions;
  return parsed;
}

json phases_json(const PhaseTimings& p) {
  return {{"resolve", p.resolve_ms},
          {"connect", p.connect_ms},
          {"tls", p.tls_ms},
          {"processing", p.processing_ms},
          {"transfer", p.transfer_ms}};
}

}  // namespace

std::string probe_report_text(const std::string& url, const ProbeResult& r) {
  const ProbeDetails& d = r.details;
  std::ostringstream out;
  const auto row = [&](const std::string& label, const std::string& value) {
    out << "  " << label << std::string(label.size() < 13 ? 13 - label.size() : 1, ' ') << value
        << "\n";
  };
  // The operator's own URL: query values shown, never a password.
  row("url", redact_url(url, UrlAudience::writer));
  if (!d.final_url.empty() && d.final_url != url)
    row("final url", redact_url(d.final_url, UrlAudience::writer));
  row("result", r.up ? "UP" : "DOWN: " + r.error);
  row("resolved ip", d.resolved_ip.empty() ? "-" : d.resolved_ip);
  if (d.http) row("status", r.status_code ? std::to_string(*r.status_code) : "-");
  if (r.phases) {
    out << "  phases\n";
    const std::pair<const char*, double> phases[] = {{"resolve", r.phases->resolve_ms},
                                                     {"connect", r.phases->connect_ms},
                                                     {"tls", r.phases->tls_ms},
                                                     {"processing", r.phases->processing_ms},
                                                     {"transfer", r.phases->transfer_ms}};
    const double total = std::max(r.response_ms, 1e-9);
    for (const auto& [name, ms] : phases) {
      int width = static_cast<int>(std::lround(ms / total * kBarWidth));
      if (ms > 0 && width == 0) width = 1;
      char line[64];
      std::snprintf(line, sizeof line, "    %-11s %10s  ", name, format_ms(ms).c_str());
      out << line << std::string(static_cast<std::size_t>(width), '#') << "\n";
    }
    char line[64];
    std::snprintf(line, sizeof line, "    %-11s %10s\n", "total", format_ms(r.response_ms).c_str());
    out << line;
  } else {
    row("time", format_ms(r.response_ms));
  }
  if (d.http) {
    row("tls", d.tls ? (d.tls_version.empty() ? std::string("yes") : d.tls_version) : "no");
    for (std::size_t i = 0; i < d.certificates.size(); ++i) {
      const auto& cert = d.certificates[i];
      out << "  certificate " << i << (i == 0 ? " (leaf)" : "") << "\n";
      out << "    subject    " << cert.subject << "\n";
      out << "    issuer     " << cert.issuer << "\n";
      if (cert.not_after) {
        char days[32];
        std::snprintf(days, sizeof days, "%.1f", days_until(*cert.not_after));
        out << "    expires    " << format_utc(*cert.not_after) << " (in " << days << " days)\n";
      }
    }
  }
  row("size",
      std::to_string(d.body_bytes) + " bytes" +
          (d.content_length ? " (Content-Length " + std::to_string(*d.content_length) + ")" : ""));
  if (d.http) row("redirects", std::to_string(d.redirects));
  if (!d.conditions.empty()) {
    out << "  conditions\n";
    for (const auto& c : d.conditions)
      out << "    " << (c.passed ? "PASS  " : "FAIL  ") << c.condition
          << (c.passed ? "" : "  (" + c.failure + ")") << "\n";
  }
  return out.str();
}

std::string probe_report_json(const std::string& url, const ProbeResult& r) {
  const ProbeDetails& d = r.details;
  json out = json::object();
  out["url"] = redact_url(url, UrlAudience::writer);
  out["final_url"] =
      d.final_url.empty() ? json(nullptr) : json(redact_url(d.final_url, UrlAudience::writer));
  out["up"] = r.up;
  out["error"] = r.error.empty() ? json(nullptr) : json(r.error);
  out["resolved_ip"] = d.resolved_ip.empty() ? json(nullptr) : json(d.resolved_ip);
  out["status_code"] = r.status_code ? json(*r.status_code) : json(nullptr);
  out["response_ms"] = r.response_ms;
  out["phases_ms"] = r.phases ? phases_json(*r.phases) : json(nullptr);
  json certificates = json::array();
  for (const auto& cert : d.certificates) {
    json c = {{"subject", cert.subject}, {"issuer", cert.issuer}};
    c["not_after"] = cert.not_after ? json(to_unix_seconds(*cert.not_after)) : json(nullptr);
    c["expires_in_days"] = cert.not_after ? json(days_until(*cert.not_after)) : json(nullptr);
    certificates.push_back(c);
  }
  out["tls"] = d.tls
                   ? json{{"version", d.tls_version.empty() ? json(nullptr) : json(d.tls_version)},
                          {"certificates", certificates}}
                   : json(nullptr);
  out["size_bytes"] = d.body_bytes;
  out["content_length"] = d.content_length ? json(*d.content_length) : json(nullptr);
  out["redirects"] = d.redirects;
  json conditions = json::array();
  for (const auto& c : d.conditions)
    conditions.push_back({{"condition", c.condition},
                          {"passed", c.passed},
                          {"failure", c.passed ? json(nullptr) : json(c.failure)}});
  out["conditions"] = conditions;
  return out.dump(2, ' ', false, json::error_handler_t::replace);
}

int probe_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  Arguments parsed;
  ServiceSpec spec;
  try {
    parsed = parse_arguments(args);
    if (parsed.help) {
      out << kUsage;
      return kProbeExitUp;
    }
    spec = parse_service_spec(parsed.service, "vigil probe", Settings{});
  } catch (const BadArguments& e) {
    err << "vigil probe: " << e.what() << "\n" << kUsage;
    return kProbeExitBadArguments;
  } catch (const ConfigError& e) {
    err << e.what() << "\n";
    return kProbeExitBadArguments;
  }
  const auto probe = make_probe(spec, ProbeSettings{});
  const ProbeResult result = run_probe_now(*probe, spec.timeout);
  out << (parsed.as_json ? probe_report_json(parsed.url, result) + "\n"
                         : probe_report_text(parsed.url, result));
  return result.up ? kProbeExitUp : kProbeExitDown;
}

}  // namespace vigil

#include "alerting/channel.h"

#include <utility>

#include "core/config_error.h"

namespace vigil {

nlohmann::json AlertMessage::to_json() const {
  return {{"kind", kind},
          {"service", service},
          {"service_id", service_id},
          {"status", status},
          {"previous_status", previous_status ? nlohmann::json(*previous_status) : nullptr},
          {"since", since},
          {"duration_s", duration_s},
          {"reason", reason},
          {"url", url},
          {"team", team},
          {"priority", priority},
          {"runbook", runbook},
          {"alert_id", alert_id},
          {"alert_cycle", alert_cycle},
          {"external_reference_id", external_reference_id}};
}

std::string AlertMessage::idempotency_key() const {
  if (external_reference_id.empty()) return {};
  return external_reference_id + "-" + std::to_string(alert_cycle) + "-" + kind;
}

AlertMessage AlertMessage::from_json(const nlohmann::json& j) {
  AlertMessage m;
  m.kind = j.at("kind").get<std::string>();
  m.service = j.at("service").get<std::string>();
  m.service_id = j.at("service_id").get<std::int64_t>();
  m.status = j.at("status").get<std::string>();
  if (!j.at("previous_status").is_null())
    m.previous_status = j.at("previous_status").get<std::string>();
  m.since = j.at("since").get<std::int64_t>();
  m.duration_s = j.at("duration_s").get<std::int64_t>();
  m.reason = j.at("reason").get<std::string>();
  m.url = j.at("url").get<std::string>();
  m.team = j.at("team").get<std::string>();
  m.priority = j.at("priority").get<int>();
  m.runbook = j.at("runbook").get<std::string>();
  m.alert_id = j.at("alert_id").get<std::int64_t>();
  m.alert_cycle = j.at("alert_cycle").get<std::int64_t>();
  m.external_reference_id = j.at("external_reference_id").get<std::string>();
  return m;
}

ChannelEntry::ChannelEntry(const nlohmann::json& entry, std::string at, const EnvLookup& env)
    : entry_(entry), at_(std::move(at)), env_(env) {}

bool ChannelEntry::has(const char* key) const { return entry_.contains(key); }

const nlohmann::json& ChannelEntry::value(const char* key) const { return entry_.at(key); }

std::string ChannelEntry::text(const char* key) const {
  if (!has(key)) return {};
  const nlohmann::json& value = entry_.at(key);
  const std::string where = at_ + "." + key;
  if (!value.is_string()) throw ConfigError(where + ": expected a string");
  return substituted(value.get<std::string>(), where);
}

std::string ChannelEntry::substituted(const std::string& text, const std::string& where) const {
  std::string out;
  std::size_t i = 0;
  while (i < text.size()) {
    const auto open = text.find("${", i);
    if (open == std::string::npos) break;
    const auto close = text.find('}', open + 2);
    if (close == std::string::npos) throw ConfigError(where + ": unterminated ${ in the value");
    const std::string name = text.substr(open + 2, close - open - 2);
    const auto value = env_ ? env_(name) : std::nullopt;
    if (!value) throw ConfigError(where + ": environment variable " + name + " is not set");
    out += text.substr(i, open - i);
    out += *value;
    i = close + 1;
  }
  out += text.substr(i);
  return out;
}

std::string ChannelEntry::env(const char* variable) const {
  return (env_ ? env_(variable) : std::nullopt).value_or("");
}

void ChannelEntry::require_http_url(const std::string& url) const {
  if (!url.starts_with("http://") && !url.starts_with("https://"))
    throw ConfigError(at_ + ".url: expected an http:// or https:// URL");
}

}  // namespace vigil

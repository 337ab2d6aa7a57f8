#include "alerting/alerting_config.h"

#include <nlohmann/json.hpp>
#include <set>

#include "core/config_error.h"
#include "core/json_input.h"

namespace vigil {
namespace {

using json = nlohmann::json;

std::string quoted(const std::string& text) { return json(text).dump(); }

// Replaces every ${NAME} by the variable's value; an unset variable is an error naming it (the
// value is never shown, it may be a secret).
std::string substitute(const std::string& text, const std::string& at, const EnvLookup& env) {
  std::string out;
  std::size_t i = 0;
  while (i < text.size()) {
    const auto open = text.find("${", i);
    if (open == std::string::npos) break;
    const auto close = text.find('}', open + 2);
    if (close == std::string::npos) throw ConfigError(at + ": unterminated ${ in the value");
    const std::string name = text.substr(open + 2, close - open - 2);
    const auto value = env ? env(name) : std::nullopt;
    if (!value) throw ConfigError(at + ": environment variable " + name + " is not set");
    out += text.substr(i, open - i);
    out += *value;
    i = close + 1;
  }
  out += text.substr(i);
  return out;
}

std::string string_field(const json& object, const std::string& key, const std::string& at,
                         const EnvLookup& env) {
  const json& value = object.at(key);
  if (!value.is_string()) throw ConfigError(at + "." + key + ": expected a string");
  return substitute(value.get<std::string>(), at + "." + key, env);
}

void check_http_url(const std::string& url, const std::string& at) {
  if (!url.starts_with("http://") && !url.starts_with("https://"))
    throw ConfigError(at + ": expected an http:// or https:// URL");
}

std::vector<std::string> channel_list(const json& value, const std::string& at,
                                      const std::map<std::string, ChannelConfig>& channels) {
  if (!value.is_array()) throw ConfigError(at + ": expected a list of channel names");
  std::vector<std::string> names;
  for (std::size_t i = 0; i < value.size(); ++i) {
    const std::string item_at = at + "[" + std::to_string(i) + "]";
    if (!value[i].is_string()) throw ConfigError(item_at + ": expected a channel name");
    const auto name = value[i].get<std::string>();
    if (!channels.contains(name)) throw ConfigError(item_at + ": unknown channel " + quoted(name));
    names.push_back(name);
  }
  return names;
}

ChannelConfig parse_channel(const std::string& name, const json& entry, const std::string& at,
                            const EnvLookup& env) {
  if (!entry.is_object()) throw ConfigError(at + ": expected an object");
  static const std::set<std::string> known = {
      "type", "url", "headers", "token", "channel_id", "routing_key", "repeat_every_seconds"};
  for (const auto& [key, value] : entry.items())
    if (!known.contains(key))
      throw ConfigError(at + ": unknown key " + quoted(key) +
                        " (known: type, url, headers, token, channel_id, routing_key, "
                        "repeat_every_seconds)");
  ChannelConfig channel;
  channel.name = name;
  if (!entry.contains("type") || !entry["type"].is_string())
    throw ConfigError(at + ".type: required, one of webhook, slack, pagerduty");
  const auto type = entry["type"].get<std::string>();
  if (type == "webhook") {
    channel.type = ChannelType::webhook;
  } else if (type == "slack") {
    channel.type = ChannelType::slack;
  } else if (type == "pagerduty") {
    channel.type = ChannelType::pagerduty;
  } else {
    throw ConfigError(at + ".type: expected webhook, slack or pagerduty, got " + quoted(type));
  }
  if (entry.contains("url")) channel.url = string_field(entry, "url", at, env);
  if (entry.contains("token")) channel.token = string_field(entry, "token", at, env);
  if (entry.contains("channel_id")) channel.channel_id = string_field(entry, "channel_id", at, env);
  if (entry.contains("routing_key"))
    channel.routing_key = string_field(entry, "routing_key", at, env);
  if (entry.contains("headers")) {
    if (channel.type != ChannelType::webhook)
      throw ConfigError(at + ".headers: only a webhook channel has headers");
    const json& headers = entry["headers"];
    if (!headers.is_object()) throw ConfigError(at + ".headers: expected an object of strings");
    for (const auto& [key, value] : headers.items()) {
      const std::string header_at = at + ".headers." + key;
      if (!value.is_string()) throw ConfigError(header_at + ": expected a string");
      if (key.empty() || key.find_first_of(":\r\n ") != std::string::npos)
        throw ConfigError(header_at + ": not a valid header name");
      const auto text = substitute(value.get<std::string>(), header_at, env);
      if (text.find_first_of("\r\n") != std::string::npos)
        throw ConfigError(header_at + ": a header value cannot contain a line break");
      channel.headers.emplace_back(key, text);
    }
  }
  if (entry.contains("repeat_every_seconds")) {
    const json& value = entry["repeat_every_seconds"];
    if (!value.is_number() || value.get<double>() < 1 || value.get<double>() > 1e7)
      throw ConfigError(at + ".repeat_every_seconds: expected a number of seconds from 1");
    channel.repeat_every = Millis(static_cast<std::int64_t>(value.get<double>() * 1000));
  }

  auto from_env = [&](const char* variable) { return env ? env(variable) : std::nullopt; };
  switch (channel.type) {
    case ChannelType::webhook:
      if (channel.url.empty()) throw ConfigError(at + ".url: required for a webhook");
      break;
    case ChannelType::slack:
      if (channel.url.empty() || !channel.token.empty()) {
        // chat.postMessage: a token and a channel, from the entry or the environment.
        if (channel.token.empty()) channel.token = from_env("SLACK_API_TOKEN").value_or("");
        if (channel.channel_id.empty())
          channel.channel_id = from_env("SLACK_CHANNEL_ID").value_or("");
        if (channel.token.empty() || channel.channel_id.empty())
          throw ConfigError(at +
                            ": a slack channel needs an incoming-webhook \"url\", or a token and "
                            "channel_id (or SLACK_API_TOKEN and SLACK_CHANNEL_ID)");
        if (channel.url.empty()) channel.url = "https://slack.com/api/chat.postMessage";
      }
      break;
    case ChannelType::pagerduty:
      if (channel.routing_key.empty())
        channel.routing_key = from_env("PAGERDUTY_ROUTING_KEY").value_or("");
      if (channel.routing_key.empty())
        throw ConfigError(at + ".routing_key: required (or PAGERDUTY_ROUTING_KEY)");
      if (channel.url.empty()) channel.url = "https://events.pagerduty.com/v2/enqueue";
      break;
  }
  check_http_url(channel.url, at + ".url");
  return channel;
}

}  // namespace

AlertingConfig parse_alerting_config(const json& section, const std::string& where,
                                     const EnvLookup& env) {
  if (!section.is_object()) throw ConfigError(where + ": expected an object");
  for (const auto& [key, value] : section.items())
    if (key != "channels" && key != "default" && key != "teams" && key != "maintenance")
      throw ConfigError(where + ": unknown key " + quoted(key) +
                        " (known: channels, default, teams, maintenance)");
  AlertingConfig config;
  if (section.contains("channels")) {
    const json& channels = section["channels"];
    if (!channels.is_object())
      throw ConfigError(where + ".channels: expected an object of channels by name");
    for (const auto& [name, entry] : channels.items()) {
      if (name.empty() || name.size() > 100)
        throw ConfigError(where + ".channels: a channel name must be 1 to 100 characters");
      config.channels.emplace(name, parse_channel(name, entry, where + ".channels." + name, env));
    }
  }
  if (section.contains("default"))
    config.default_channels = channel_list(section["default"], where + ".default", config.channels);
  if (section.contains("teams")) {
    const json& teams = section["teams"];
    if (!teams.is_object())
      throw ConfigError(where + ".teams: expected an object of channel lists by team");
    for (const auto& [team, list] : teams.items())
      config.teams.emplace(team, channel_list(list, where + ".teams." + team, config.channels));
  }
  if (section.contains("maintenance"))
    config.maintenance = parse_maintenance(section["maintenance"], where + ".maintenance");
  return config;
}

AlertingConfig load_alerting_config(const std::string& path, const EnvLookup& env) {
  const json document =
      parse_json_input(read_config_file(path, kServicesFileWhat), path, "services");
  if (!document.is_object() || !document.contains("alerting")) return {};
  return parse_alerting_config(document["alerting"], path + ": alerting", env);
}

std::vector<std::string> route_for(const AlertingConfig& config, const ServiceSpec& spec) {
  if (!spec.alert_channels.empty()) return spec.alert_channels;
  if (!spec.team.empty()) {
    const auto team = config.teams.find(spec.team);
    if (team != config.teams.end()) return team->second;
  }
  return config.default_channels;
}

std::optional<Millis> repeat_for(const AlertingConfig& config, const ServiceSpec& spec,
                                 const std::string& channel) {
  if (spec.repeat_every) return spec.repeat_every;
  const auto found = config.channels.find(channel);
  if (found == config.channels.end()) return std::nullopt;
  return found->second.repeat_every;
}

void check_alert_routes(const AlertingConfig& config, const ServiceSpec& spec,
                        const std::string& where) {
  for (std::size_t i = 0; i < spec.alert_channels.size(); ++i) {
    const auto& name = spec.alert_channels[i];
    if (config.channels.contains(name)) continue;
    std::string known;
    for (const auto& [channel, unused] : config.channels)
      known += (known.empty() ? "" : ", ") + channel;
    throw ConfigError(where + ".alerts[" + std::to_string(i) + "]: unknown channel " +
                      quoted(name) +
                      (known.empty() ? " (no channels are configured in the alerting section)"
                                     : " (known: " + known + ")"));
  }
}

void check_alert_routes(const AlertingConfig& config, const std::vector<ServiceSpec>& specs,
                        const std::string& source) {
  for (std::size_t i = 0; i < specs.size(); ++i)
    check_alert_routes(
        config, specs[i],
        source + ": services[" + std::to_string(i) + "] (" + quoted(specs[i].name) + ")");
}

}  // namespace vigil

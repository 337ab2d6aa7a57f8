#include "alerting/alerting_config.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/config_error.h"
#include "core/json_input.h"

namespace vigil {
namespace {

using json = nlohmann::json;

std::string quoted(const std::string& text) { return json(text).dump(); }

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

// "a, b or c" (or with `last` another word) of the channel types' names.
std::string type_names(const char* last) {
  std::string text;
  const auto types = channel_types();
  for (std::size_t i = 0; i < types.size(); ++i)
    text += std::string(i == 0                  ? ""
                        : i + 1 == types.size() ? last
                                                : ", ") +
            std::string(types[i]->name);
  return text;
}

// Every key a channel entry may have: type, each type's keys (once, in the types' order), and
// repeat_every_seconds.
const std::vector<std::string>& channel_keys() {
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> all = {"type"};
    for (const ChannelType* type : channel_types())
      for (const std::string_view key : type->keys)
        if (std::find(all.begin(), all.end(), key) == all.end()) all.emplace_back(key);
    all.emplace_back("repeat_every_seconds");
    return all;
  }();
  return keys;
}

// What every channel has (type, repeat_every_seconds), then the rest by its type: a key of
// another type is refused.
ChannelConfig parse_channel(const std::string& name, const json& entry, const std::string& at,
                            const EnvLookup& env) {
  if (!entry.is_object()) throw ConfigError(at + ": expected an object");
  const auto& known = channel_keys();
  for (const auto& [key, value] : entry.items())
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      throw ConfigError(at + ": unknown key " + quoted(key) + " (known: " + list + ")");
    }
  if (!entry.contains("type") || !entry["type"].is_string())
    throw ConfigError(at + ".type: required, one of " + type_names(", "));
  const auto type_name = entry["type"].get<std::string>();
  const auto types = channel_types();
  const auto type = std::find_if(types.begin(), types.end(),
                                 [&](const ChannelType* t) { return t->name == type_name; });
  if (type == types.end())
    throw ConfigError(at + ".type: expected " + type_names(" or ") + ", got " + quoted(type_name));
  for (const auto& [key, value] : entry.items()) {
    if (key == "type" || key == "repeat_every_seconds") continue;
    const auto& own = (*type)->keys;
    if (std::find(own.begin(), own.end(), key) != own.end()) continue;
    std::string owners;
    for (const ChannelType* other : types)
      if (std::find(other->keys.begin(), other->keys.end(), key) != other->keys.end())
        owners += std::string(owners.empty() ? "" : " or ") + std::string(other->name);
    throw ConfigError(at + "." + key + ": only a " + owners + " channel has " + key);
  }
  ChannelConfig channel;
  channel.name = name;
  if (entry.contains("repeat_every_seconds")) {
    const json& value = entry["repeat_every_seconds"];
    if (!value.is_number() || value.get<double>() < 1 || value.get<double>() > 1e7)
      throw ConfigError(at + ".repeat_every_seconds: expected a number of seconds from 1");
    channel.repeat_every = Millis(static_cast<std::int64_t>(value.get<double>() * 1000));
  }
  channel.channel = (*type)->parse(ChannelEntry(entry, at, env));
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

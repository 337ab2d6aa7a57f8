// The "alerting" section of the services file: channels and routing. Parsed here, not in
// config/, because only the Alerter uses it; config/ lets the section through.
#pragma once

#include <map>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "alerting/channel.h"
#include "alerting/maintenance.h"
#include "core/model.h"

namespace vigil {

// A configured channel: what every type has, and the channel its type built from the rest of
// its entry (which holds that type's own config: WebhookConfig, SlackConfig, ...).
struct ChannelConfig {
  std::string name;
  std::optional<Millis> repeat_every;
  std::shared_ptr<const Channel> channel;  // never null in a parsed config
};

struct AlertingConfig {
  std::map<std::string, ChannelConfig> channels;  // by name
  std::vector<std::string> default_channels;      // services without a team route
  std::map<std::string, std::vector<std::string>> teams;
  std::vector<MaintenanceWindow> maintenance;
  bool empty() const { return channels.empty(); }
};

// Parses the "alerting" object (`where` starts every message, e.g. "services.json: alerting").
// Throws ConfigError naming the field. Secrets never appear in a message.
AlertingConfig parse_alerting_config(const nlohmann::json& section, const std::string& where,
                                     const EnvLookup& env);
// The "alerting" section of a services file's text: empty config when the file is a plain list
// or has no such section.
AlertingConfig load_alerting_config(const std::string& path, const EnvLookup& env);

// The channels a service's alerts go to: its own "alerts" list when it has one, else its team's
// list when the team has one, else the default list.
std::vector<std::string> route_for(const AlertingConfig& config, const ServiceSpec& spec);
// How often to remind `channel` of an active alert of the service: the service's
// repeat_every_seconds, else the channel's; empty: never.
std::optional<Millis> repeat_for(const AlertingConfig& config, const ServiceSpec& spec,
                                 const std::string& channel);
// Throws ConfigError "<where>.alerts[i]: unknown channel "x" (known: ...)" when the service's
// "alerts" names a channel the config does not have. `where` names the service, e.g.
// "services.json: services[2] (\"api\")" or "service".
void check_alert_routes(const AlertingConfig& config, const ServiceSpec& spec,
                        const std::string& where);
// The same for every service of a services file (`source` its path), in file order.
void check_alert_routes(const AlertingConfig& config, const std::vector<ServiceSpec>& specs,
                        const std::string& source);

}  // namespace vigil

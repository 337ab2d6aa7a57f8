#include "alerting/channel.h"

#include <stdexcept>

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

std::unique_ptr<Channel> make_channel(const ChannelConfig& config) {
  switch (config.type) {
    case ChannelType::webhook:
      return make_webhook_channel(config);
    case ChannelType::slack:
      return make_slack_channel(config);
    case ChannelType::pagerduty:
      return make_pagerduty_channel(config);
  }
  throw std::logic_error("unknown channel type");
}

}  // namespace vigil

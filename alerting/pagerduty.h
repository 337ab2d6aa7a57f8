// pagerduty: Events API v2. A trigger (and each reminder) and the resolve of one alert share its
// dedup_key, the alert's external_reference_id, so PagerDuty pairs them into one incident.
// Keys: "routing_key" (default PAGERDUTY_ROUTING_KEY; required), "url" (default PagerDuty's
// endpoint).
#pragma once

#include <string>

#include "alerting/channel.h"

namespace vigil {

struct PagerDutyConfig {
  std::string url;          // the Events API v2 endpoint
  std::string routing_key;  // the integration's key, sent in every event
};

class PagerDutyChannel final : public Channel {
 public:
  explicit PagerDutyChannel(PagerDutyConfig config) : config_(std::move(config)) {}
  const PagerDutyConfig& config() const { return config_; }
  OutgoingRequest render(const AlertMessage& message) const override;

 private:
  PagerDutyConfig config_;
};

extern const ChannelType kPagerDutyChannelType;

}  // namespace vigil

// The registry of channel types: one line each.
#include "alerting/channel.h"
#include "alerting/pagerduty.h"
#include "alerting/slack.h"
#include "alerting/webhook.h"

namespace vigil {

std::span<const ChannelType* const> channel_types() {
  static const ChannelType* const types[] = {
      &kWebhookChannelType,
      &kSlackChannelType,
      &kPagerDutyChannelType,
  };
  return types;
}

}  // namespace vigil

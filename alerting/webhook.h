// webhook: POSTs the message as JSON to the channel's URL, with the channel's headers.
// Keys: "url" (required), "headers" (an object of strings; ${NAME} replaced).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "alerting/channel.h"

namespace vigil {

struct WebhookConfig {
  std::string url;                                           // where to POST
  std::vector<std::pair<std::string, std::string>> headers;  // sent with every request
};

class WebhookChannel final : public Channel {
 public:
  explicit WebhookChannel(WebhookConfig config) : config_(std::move(config)) {}
  const WebhookConfig& config() const { return config_; }
  OutgoingRequest render(const AlertMessage& message) const override;

 private:
  WebhookConfig config_;
};

extern const ChannelType kWebhookChannelType;

}  // namespace vigil

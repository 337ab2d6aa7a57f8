// slack: an incoming webhook, or chat.postMessage with a bot token. One readable message: a red
// or green attachment with the service, the reason, since when, and the runbook link.
// Keys: "url" (an incoming webhook's), or "token" and "channel_id" (defaults SLACK_API_TOKEN and
// SLACK_CHANNEL_ID) for chat.postMessage, whose "url" defaults to Slack's endpoint.
#pragma once

#include <optional>
#include <string>

#include "alerting/channel.h"

namespace vigil {

struct SlackConfig {
  // The incoming-webhook URL, or with `token` the chat.postMessage endpoint.
  std::string url;
  std::string token;       // chat.postMessage: sent as a bearer token; empty for a webhook
  std::string channel_id;  // chat.postMessage: the channel posted to
};

class SlackChannel final : public Channel {
 public:
  explicit SlackChannel(SlackConfig config) : config_(std::move(config)) {}
  const SlackConfig& config() const { return config_; }
  OutgoingRequest render(const AlertMessage& message) const override;
  // chat.postMessage answers 200 {"ok":false,"error":"..."} when it refuses.
  std::optional<std::string> rejected(const std::string& body) const override;

 private:
  SlackConfig config_;
};

extern const ChannelType kSlackChannelType;

}  // namespace vigil

// Alert channels: one file each (webhook.cpp, slack.cpp, pagerduty.cpp) behind this interface,
// as Gatus keeps alerting/provider/<name>/. A channel only turns a message into an HTTP request
// and judges the answer; the Alerter does the delivery (its own curl multi handle), the retries
// and the records, so a new channel is a new file and nothing else.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "alerting/alerting_config.h"

namespace vigil {

// What one notification says. Stored as JSON with the notification (so a delivery retried
// after a restart sends what was decided before it) and rendered by each channel.
struct AlertMessage {
  std::string kind;  // trigger, repeat, resolve or test
  std::string service;
  std::int64_t service_id = 0;
  std::string status;                          // "down" or "up"
  std::optional<std::string> previous_status;  // "up" or "down"
  std::int64_t since = 0;                      // unix seconds: when `status` started
  std::int64_t duration_s = 0;  // down so far (trigger, repeat); how long it was down (resolve)
  std::string reason;
  std::string url;
  std::string team;
  int priority = 3;
  std::string runbook;
  std::int64_t alert_id = 0;
  std::int64_t alert_cycle = 1;
  std::string external_reference_id;  // PagerDuty's dedup_key

  nlohmann::json to_json() const;
  static AlertMessage from_json(const nlohmann::json& j);  // throws nlohmann::json::exception
};

struct OutgoingRequest {
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;  // Content-Type included
  std::string body;
};

class Channel {
 public:
  virtual ~Channel() = default;
  virtual OutgoingRequest render(const AlertMessage& message) const = 0;
  // Why an answer with a 2xx status is still a failure (Slack's API says {"ok":false}), or
  // empty when the 2xx answer means delivered.
  virtual std::optional<std::string> rejected(const std::string& /*body*/) const { return {}; }
};

std::unique_ptr<Channel> make_webhook_channel(const ChannelConfig& config);
std::unique_ptr<Channel> make_slack_channel(const ChannelConfig& config);
std::unique_ptr<Channel> make_pagerduty_channel(const ChannelConfig& config);
// The channel of config.type.
std::unique_ptr<Channel> make_channel(const ChannelConfig& config);

}  // namespace vigil

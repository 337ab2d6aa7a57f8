// Alert channels. Each type of channel is its own file (webhook.cpp, slack.cpp, pagerduty.cpp,
// each with its header): its config, the checks of its entry in the services file, the request
// a message becomes and the judgement of the answer, as Gatus keeps alerting/provider/<name>/.
// The Alerter does the delivery (its own curl multi handle), the retries and the records. A new
// type of channel is its file and one line in channel_types.cpp.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

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
  // What makes this message one event for a receiver that deduplicates:
  // "<external_reference_id>-<alert_cycle>-<kind>", the same for every delivery of it (a retry,
  // or the same event recorded twice by two cluster members) and unique across databases.
  // Empty for a message without an external reference (none that the Alerter sends).
  std::string idempotency_key() const;
};

struct OutgoingRequest {
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;  // Content-Type included
  std::string body;
};

// One configured channel, built by its type from its entry (ChannelType::parse). Immutable once
// built, so its calls are safe from any thread.
class Channel {
 public:
  virtual ~Channel() = default;
  // The request that delivers `message`; the Alerter sends it and retries it.
  virtual OutgoingRequest render(const AlertMessage& message) const = 0;
  // Why an answer with a 2xx status is still a failure (Slack's API says {"ok":false}), or
  // empty when the 2xx answer means delivered.
  virtual std::optional<std::string> rejected(const std::string& /*body*/) const { return {}; }
};

// Looks up ${NAME} references and the defaults some types take from the environment
// (SLACK_API_TOKEN, ...); empty when unset.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;

// A channel's entry in the services file as its type reads it: string values with every ${NAME}
// replaced from the environment. Messages start with at() ("services.json: alerting.channels.
// hook") and name the field; an unset variable is named, a value never shown (it may be a
// secret). Holds references to the entry and the lookup, which must outlive it.
class ChannelEntry {
 public:
  ChannelEntry(const nlohmann::json& entry, std::string at, const EnvLookup& env);

  const std::string& at() const { return at_; }
  bool has(const char* key) const;
  // The value at `key`, which must be present.
  const nlohmann::json& value(const char* key) const;
  // The string at `key` with ${NAME} replaced, "" when absent. Throws ConfigError
  // "<at>.<key>: expected a string", or naming an unset or unterminated reference.
  std::string text(const char* key) const;
  // `text` with ${NAME} replaced; messages name `where`. Throws ConfigError.
  std::string substituted(const std::string& text, const std::string& where) const;
  // The environment's `variable`, "" when unset (for a key's default).
  std::string env(const char* variable) const;
  // Throws ConfigError "<at>.url: expected an http:// or https:// URL" unless `url` is one.
  void require_http_url(const std::string& url) const;

 private:
  const nlohmann::json& entry_;
  std::string at_;
  const EnvLookup& env_;
};

// One type of channel: the "type" that names it in the services file, its keys, and how an
// entry becomes a channel.
struct ChannelType {
  std::string_view name;                   // "webhook"
  std::span<const std::string_view> keys;  // its keys besides type and repeat_every_seconds
  // Reads and checks the entry's keys (other types' keys are refused before), fills defaults
  // from the environment, and builds the channel. Throws ConfigError naming the field.
  std::unique_ptr<Channel> (*parse)(const ChannelEntry& entry);
};

// Every type, in the order messages list them (channel_types.cpp).
std::span<const ChannelType* const> channel_types();

}  // namespace vigil

// The webhook channel on its own (alerting/webhook.h): the checks of its entry and the request
// a message becomes. Delivery through the Alerter is in alerting_delivery_test.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>

#include "alerting/webhook.h"
#include "core/config_error.h"

namespace vigil {
namespace {

using nlohmann::json;

const EnvLookup kWebhookEnv = [](const std::string& name) -> std::optional<std::string> {
  if (name == "HOOK_TOKEN") return "t0k";
  return std::nullopt;
};

std::unique_ptr<Channel> parse_webhook_entry(const json& entry) {
  return kWebhookChannelType.parse(ChannelEntry(entry, "alerting.channels.hook", kWebhookEnv));
}

std::string error_of(const json& entry) {
  try {
    parse_webhook_entry(entry);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "accepted";
}

TEST(WebhookChannel, PostsTheMessageAsJsonWithItsHeaders) {
  const auto channel =
      parse_webhook_entry({{"url", "https://hooks.example/in"},
                           {"headers", {{"Authorization", "Bearer ${HOOK_TOKEN}"}}}});
  AlertMessage message;
  message.kind = "trigger";
  message.service = "payments";
  message.status = "down";
  message.url = "http://user:secret@127.0.0.1/health";
  const OutgoingRequest request = channel->render(message);
  EXPECT_EQ(request.url, "https://hooks.example/in");
  ASSERT_EQ(request.headers.size(), 2u);
  EXPECT_EQ(request.headers[0],
            (std::pair<std::string, std::string>{"Content-Type", "application/json"}));
  EXPECT_EQ(request.headers[1],
            (std::pair<std::string, std::string>{"Authorization", "Bearer t0k"}));
  const json body = json::parse(request.body);
  EXPECT_EQ(body["service"], "payments");
  EXPECT_EQ(body["url"], "http://user:<redacted>@127.0.0.1/health");
  EXPECT_EQ(body["idempotency_key"], "");  // no external reference: no key
  EXPECT_FALSE(channel->rejected("anything"));
}

TEST(WebhookChannel, EachEventOfAnAlertCarriesItsOwnIdempotencyKey) {
  const auto channel = parse_webhook_entry({{"url", "https://hooks.example/in"}});
  AlertMessage message;
  message.kind = "trigger";
  message.service = "payments";
  message.alert_id = 7;
  message.alert_cycle = 1;
  message.external_reference_id = "0123456789abcdef0123456789abcdef";
  const auto key_of = [&](const AlertMessage& m) {
    const OutgoingRequest request = channel->render(m);
    std::string header;
    for (const auto& [name, value] : request.headers)
      if (name == "Idempotency-Key") header = value;
    EXPECT_EQ(json::parse(request.body)["idempotency_key"], header);
    return header;
  };
  const std::string trigger = key_of(message);
  EXPECT_EQ(trigger, "0123456789abcdef0123456789abcdef-1-trigger");
  EXPECT_EQ(key_of(message), trigger);  // a retry is the same event
  AlertMessage reminder = message;
  reminder.kind = "repeat";
  reminder.alert_cycle = 2;
  AlertMessage resolve = message;
  resolve.kind = "resolve";
  const std::set<std::string> keys{trigger, key_of(reminder), key_of(resolve)};
  EXPECT_EQ(keys.size(), 3u);
}

TEST(WebhookChannel, RefusesWhatItCannotSend) {
  EXPECT_EQ(error_of(json::object()), "alerting.channels.hook.url: required for a webhook");
  EXPECT_EQ(error_of({{"url", "ftp://x"}}),
            "alerting.channels.hook.url: expected an http:// or https:// URL");
  EXPECT_EQ(error_of({{"url", "http://x"}, {"headers", {{"Bad Name", "v"}}}}),
            "alerting.channels.hook.headers.Bad Name: not a valid header name");
  EXPECT_EQ(error_of({{"url", "http://x"}, {"headers", {{"X", "${UNSET}"}}}}),
            "alerting.channels.hook.headers.X: environment variable UNSET is not set");
  EXPECT_EQ(error_of({{"url", "http://x"}, {"headers", {{"X", 1}}}}),
            "alerting.channels.hook.headers.X: expected a string");
}

}  // namespace
}  // namespace vigil

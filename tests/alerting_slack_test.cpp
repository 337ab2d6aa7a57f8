// The Slack channel on its own (alerting/slack.h): an incoming webhook or chat.postMessage, the
// defaults it takes from the environment, and when a 200 answer is still a refusal. Delivery
// through the Alerter is in alerting_delivery_test.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "alerting/slack.h"
#include "core/config_error.h"

namespace vigil {
namespace {

using nlohmann::json;

std::unique_ptr<Channel> parse_slack_entry(const json& entry,
                                           std::map<std::string, std::string> env = {}) {
  const EnvLookup lookup = [&env](const std::string& name) -> std::optional<std::string> {
    const auto found = env.find(name);
    if (found == env.end()) return std::nullopt;
    return found->second;
  };
  return kSlackChannelType.parse(ChannelEntry(entry, "alerting.channels.chat", lookup));
}

TEST(SlackChannel, AnIncomingWebhookNeedsNoTokenAndTakesAny200) {
  const auto channel = parse_slack_entry({{"url", "https://hooks.slack.example/T/B/X"}});
  const auto& config = dynamic_cast<const SlackChannel&>(*channel).config();
  EXPECT_EQ(config.url, "https://hooks.slack.example/T/B/X");
  EXPECT_TRUE(config.token.empty());
  AlertMessage message;
  message.service = "payments";
  message.status = "down";
  const OutgoingRequest request = channel->render(message);
  for (const auto& [name, value] : request.headers) EXPECT_NE(name, "Authorization");
  EXPECT_FALSE(json::parse(request.body).contains("channel"));
  EXPECT_FALSE(channel->rejected("ok"));
}

TEST(SlackChannel, PostMessageTakesItsTokenAndChannelFromTheEnvironment) {
  const auto channel = parse_slack_entry(
      json::object(), {{"SLACK_API_TOKEN", "xoxb-1"}, {"SLACK_CHANNEL_ID", "C42"}});
  const auto& config = dynamic_cast<const SlackChannel&>(*channel).config();
  EXPECT_EQ(config.url, "https://slack.com/api/chat.postMessage");
  EXPECT_EQ(config.token, "xoxb-1");
  EXPECT_EQ(config.channel_id, "C42");
  EXPECT_EQ(channel->rejected(R"({"ok":false,"error":"ratelimited"})"), "slack: ratelimited");
  EXPECT_EQ(channel->rejected("<html>"), "slack: answer without \"ok\": true");
  EXPECT_FALSE(channel->rejected(R"({"ok":true})"));
}

TEST(SlackChannel, NeedsAWebhookUrlOrATokenAndChannel) {
  try {
    parse_slack_entry({{"token", "xoxb-1"}});
    ADD_FAILURE() << "a token without a channel accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("alerting.channels.chat: a slack channel needs"),
              std::string::npos)
        << e.what();
    EXPECT_EQ(std::string(e.what()).find("xoxb-1"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace vigil

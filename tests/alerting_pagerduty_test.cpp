// The PagerDuty channel on its own (alerting/pagerduty.h): its routing key, its default
// endpoint, and the Events API v2 event a resolve becomes. Delivery through the Alerter is in
// alerting_delivery_test.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "alerting/pagerduty.h"
#include "core/config_error.h"

namespace vigil {
namespace {

using nlohmann::json;

const EnvLookup kPagerDutyEnv = [](const std::string& name) -> std::optional<std::string> {
  if (name == "PAGERDUTY_ROUTING_KEY") return "R0UTING";
  return std::nullopt;
};
const EnvLookup kNoEnv = [](const std::string&) -> std::optional<std::string> {
  return std::nullopt;
};

TEST(PagerDutyChannel, TakesTheRoutingKeyFromTheEnvironmentAndPagerDutysEndpoint) {
  const auto channel = kPagerDutyChannelType.parse(
      ChannelEntry(json::object(), "alerting.channels.pd", kPagerDutyEnv));
  const auto& config = dynamic_cast<const PagerDutyChannel&>(*channel).config();
  EXPECT_EQ(config.routing_key, "R0UTING");
  EXPECT_EQ(config.url, "https://events.pagerduty.com/v2/enqueue");
  AlertMessage resolve;
  resolve.kind = "resolve";
  resolve.external_reference_id = "vigil-7-1";
  const OutgoingRequest request = channel->render(resolve);
  EXPECT_EQ(request.url, "https://events.pagerduty.com/v2/enqueue");
  EXPECT_EQ(
      json::parse(request.body),
      (json{{"routing_key", "R0UTING"}, {"dedup_key", "vigil-7-1"}, {"event_action", "resolve"}}));
}

TEST(PagerDutyChannel, NeedsARoutingKey) {
  try {
    kPagerDutyChannelType.parse(ChannelEntry(json::object(), "alerting.channels.pd", kNoEnv));
    ADD_FAILURE() << "accepted without a routing key";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "alerting.channels.pd.routing_key: required (or PAGERDUTY_ROUTING_KEY)");
  }
}

}  // namespace
}  // namespace vigil

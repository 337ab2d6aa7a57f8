#include "alerting/pagerduty.h"

#include <ctime>

#include "core/config_error.h"
#include "core/url_redaction.h"

namespace vigil {
namespace {

constexpr std::string_view kPagerDutyKeys[] = {"url", "routing_key"};

std::unique_ptr<Channel> parse_pagerduty(const ChannelEntry& entry) {
  PagerDutyConfig config;
  config.url = entry.text("url");
  config.routing_key = entry.text("routing_key");
  if (config.routing_key.empty()) config.routing_key = entry.env("PAGERDUTY_ROUTING_KEY");
  if (config.routing_key.empty())
    throw ConfigError(entry.at() + ".routing_key: required (or PAGERDUTY_ROUTING_KEY)");
  if (config.url.empty()) config.url = "https://events.pagerduty.com/v2/enqueue";
  entry.require_http_url(config.url);
  return std::make_unique<PagerDutyChannel>(std::move(config));
}

// p1 critical, p2 error, p3 warning, p4 and p5 info.
const char* severity(int priority) {
  if (priority <= 1) return "critical";
  if (priority == 2) return "error";
  if (priority == 3) return "warning";
  return "info";
}

std::string iso8601(std::int64_t unix_seconds) {
  const std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

}  // namespace

const ChannelType kPagerDutyChannelType = {"pagerduty", kPagerDutyKeys, parse_pagerduty};

OutgoingRequest PagerDutyChannel::render(const AlertMessage& m) const {
  nlohmann::json body = {{"routing_key", config_.routing_key},
                         {"dedup_key", m.external_reference_id}};
  if (m.kind == "resolve") {
    body["event_action"] = "resolve";
  } else {
    body["event_action"] = "trigger";
    body["payload"] = {
        {"summary", m.service + " is down" + (m.reason.empty() ? "" : ": " + m.reason)},
        // Redacted again: a message stored by an older vigil may hold the URL as it was.
        {"source", m.url.empty() ? m.service : redact_url(m.url, UrlAudience::reader)},
        {"severity", severity(m.priority)},
        {"timestamp", iso8601(m.since)},
        {"component", m.service},
        {"group", m.team},
        {"custom_details",
         {{"alert_id", m.alert_id}, {"alert_cycle", m.alert_cycle}, {"kind", m.kind}}}};
    if (!m.runbook.empty())
      body["links"] = nlohmann::json::array({{{"href", m.runbook}, {"text", "Runbook"}}});
  }
  return {config_.url, {{"Content-Type", "application/json"}}, body.dump()};
}

}  // namespace vigil

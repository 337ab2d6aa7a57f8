// pagerduty: Events API v2. A trigger (and each reminder) and the resolve of one alert share its
// dedup_key, the alert's external_reference_id, so PagerDuty pairs them into one incident.
#include <ctime>

#include "alerting/channel.h"
#include "core/url_redaction.h"

namespace vigil {
namespace {

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

class PagerDutyChannel final : public Channel {
 public:
  explicit PagerDutyChannel(ChannelConfig config) : config_(std::move(config)) {}

  OutgoingRequest render(const AlertMessage& m) const override {
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

 private:
  ChannelConfig config_;
};

}  // namespace

std::unique_ptr<Channel> make_pagerduty_channel(const ChannelConfig& config) {
  return std::make_unique<PagerDutyChannel>(config);
}

}  // namespace vigil

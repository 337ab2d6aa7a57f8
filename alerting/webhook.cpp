// webhook: POSTs the message as JSON, with the channel's headers.
#include "alerting/channel.h"
#include "core/url_redaction.h"

namespace vigil {
namespace {

class WebhookChannel final : public Channel {
 public:
  explicit WebhookChannel(ChannelConfig config) : config_(std::move(config)) {}

  OutgoingRequest render(const AlertMessage& m) const override {
    const nlohmann::json body = {
        {"kind", m.kind},
        {"service", m.service},
        {"status", m.status},
        {"previous_status", m.previous_status ? nlohmann::json(*m.previous_status) : nullptr},
        {"since", m.since},
        {"duration_s", m.duration_s},
        {"reason", m.reason},
        // Redacted again: a message stored by an older vigil may hold the URL as it was.
        {"url", redact_url(m.url, UrlAudience::reader)},
        {"team", m.team},
        {"priority", m.priority},
        {"runbook", m.runbook},
        {"alert_id", m.alert_id},
        {"alert_cycle", m.alert_cycle}};
    OutgoingRequest request{config_.url, {{"Content-Type", "application/json"}}, body.dump()};
    for (const auto& header : config_.headers) request.headers.push_back(header);
    return request;
  }

 private:
  ChannelConfig config_;
};

}  // namespace

std::unique_ptr<Channel> make_webhook_channel(const ChannelConfig& config) {
  return std::make_unique<WebhookChannel>(config);
}

}  // namespace vigil

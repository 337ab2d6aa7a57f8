#include "alerting/webhook.h"

#include "core/config_error.h"
#include "core/url_redaction.h"

namespace vigil {
namespace {

constexpr std::string_view kWebhookKeys[] = {"url", "headers"};

std::unique_ptr<Channel> parse_webhook(const ChannelEntry& entry) {
  WebhookConfig config;
  config.url = entry.text("url");
  if (entry.has("headers")) {
    const nlohmann::json& headers = entry.value("headers");
    if (!headers.is_object())
      throw ConfigError(entry.at() + ".headers: expected an object of strings");
    for (const auto& [key, value] : headers.items()) {
      const std::string header_at = entry.at() + ".headers." + key;
      if (!value.is_string()) throw ConfigError(header_at + ": expected a string");
      if (key.empty() || key.find_first_of(":\r\n ") != std::string::npos)
        throw ConfigError(header_at + ": not a valid header name");
      auto text = entry.substituted(value.get<std::string>(), header_at);
      if (text.find_first_of("\r\n") != std::string::npos)
        throw ConfigError(header_at + ": a header value cannot contain a line break");
      config.headers.emplace_back(key, std::move(text));
    }
  }
  if (config.url.empty()) throw ConfigError(entry.at() + ".url: required for a webhook");
  entry.require_http_url(config.url);
  return std::make_unique<WebhookChannel>(std::move(config));
}

}  // namespace

const ChannelType kWebhookChannelType = {"webhook", kWebhookKeys, parse_webhook};

OutgoingRequest WebhookChannel::render(const AlertMessage& m) const {
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
      {"alert_cycle", m.alert_cycle},
      {"idempotency_key", m.idempotency_key()}};
  OutgoingRequest request{config_.url, {{"Content-Type", "application/json"}}, body.dump()};
  // The convention of payment and webhook APIs: a receiver that sees the key twice drops the
  // second (a retry after a lost answer, a delivery repeated by another cluster member).
  if (const std::string key = m.idempotency_key(); !key.empty())
    request.headers.emplace_back("Idempotency-Key", key);
  for (const auto& header : config_.headers) request.headers.push_back(header);
  return request;
}

}  // namespace vigil

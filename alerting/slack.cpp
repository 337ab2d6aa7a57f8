#include "alerting/slack.h"

#include <ctime>

#include "core/config_error.h"
#include "core/url_redaction.h"

namespace vigil {
namespace {

constexpr std::string_view kSlackKeys[] = {"url", "token", "channel_id"};

std::unique_ptr<Channel> parse_slack(const ChannelEntry& entry) {
  SlackConfig config;
  config.url = entry.text("url");
  config.token = entry.text("token");
  config.channel_id = entry.text("channel_id");
  if (config.url.empty() || !config.token.empty()) {
    // chat.postMessage: a token and a channel, from the entry or the environment.
    if (config.token.empty()) config.token = entry.env("SLACK_API_TOKEN");
    if (config.channel_id.empty()) config.channel_id = entry.env("SLACK_CHANNEL_ID");
    if (config.token.empty() || config.channel_id.empty())
      throw ConfigError(entry.at() +
                        ": a slack channel needs an incoming-webhook \"url\", or a token and "
                        "channel_id (or SLACK_API_TOKEN and SLACK_CHANNEL_ID)");
    if (config.url.empty()) config.url = "https://slack.com/api/chat.postMessage";
  }
  entry.require_http_url(config.url);
  return std::make_unique<SlackChannel>(std::move(config));
}

std::string utc_text(std::int64_t unix_seconds) {
  const std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return text;
}

// Slack reads '<' and '>' as link markup and '&' as an entity: "<redacted>" must stay text.
std::string slack_escaped(const std::string& text) {
  std::string out;
  for (const char c : text) {
    if (c == '&')
      out += "&amp;";
    else if (c == '<')
      out += "&lt;";
    else if (c == '>')
      out += "&gt;";
    else
      out += c;
  }
  return out;
}

}  // namespace

const ChannelType kSlackChannelType = {"slack", kSlackKeys, parse_slack};

OutgoingRequest SlackChannel::render(const AlertMessage& m) const {
  const bool down = m.status == "down";
  std::string title = m.service + (down ? " is DOWN" : " is UP");
  if (m.kind == "repeat") title += " (reminder " + std::to_string(m.alert_cycle) + ")";
  if (m.kind == "test") title = "vigil test notification for " + m.service;
  std::string text = (down ? "Down" : "Up") + std::string(" since ") + utc_text(m.since);
  if (!down && m.duration_s > 0) text += ", after " + std::to_string(m.duration_s) + " s down";
  if (!m.reason.empty()) text += "\nReason: " + m.reason;
  if (!m.url.empty()) text += "\nURL: " + slack_escaped(redact_url(m.url, UrlAudience::reader));
  if (!m.runbook.empty()) text += "\nRunbook: <" + m.runbook + ">";
  nlohmann::json body = {
      {"text", title},
      {"attachments",
       nlohmann::json::array(
           {{{"color", down ? "#d50200" : "#2eb67d"}, {"title", title}, {"text", text}}})}};
  OutgoingRequest request{config_.url, {{"Content-Type", "application/json; charset=utf-8"}}, ""};
  if (!config_.token.empty()) {
    body["channel"] = config_.channel_id;
    request.headers.emplace_back("Authorization", "Bearer " + config_.token);
  }
  request.body = body.dump();
  return request;
}

std::optional<std::string> SlackChannel::rejected(const std::string& body) const {
  if (config_.token.empty()) return {};
  const auto answer = nlohmann::json::parse(body, nullptr, false);
  if (answer.is_object() && answer.value("ok", false)) return {};
  if (answer.is_object() && answer.contains("error") && answer["error"].is_string())
    return "slack: " + answer["error"].get<std::string>();
  return "slack: answer without \"ok\": true";
}

}  // namespace vigil

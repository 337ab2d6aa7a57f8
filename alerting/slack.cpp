// slack: an incoming webhook, or chat.postMessage with a bot token. One readable message: a red
// or green attachment with the service, the reason, since when, and the runbook link.
#include <ctime>

#include "alerting/channel.h"
#include "core/url_redaction.h"

namespace vigil {
namespace {

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

class SlackChannel final : public Channel {
 public:
  explicit SlackChannel(ChannelConfig config) : config_(std::move(config)) {}

  OutgoingRequest render(const AlertMessage& m) const override {
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

  // chat.postMessage answers 200 {"ok":false,"error":"..."} when it refuses.
  std::optional<std::string> rejected(const std::string& body) const override {
    if (config_.token.empty()) return {};
    const auto answer = nlohmann::json::parse(body, nullptr, false);
    if (answer.is_object() && answer.value("ok", false)) return {};
    if (answer.is_object() && answer.contains("error") && answer["error"].is_string())
      return "slack: " + answer["error"].get<std::string>();
    return "slack: answer without \"ok\": true";
  }

 private:
  ChannelConfig config_;
};

}  // namespace

std::unique_ptr<Channel> make_slack_channel(const ChannelConfig& config) {
  return std::make_unique<SlackChannel>(config);
}

}  // namespace vigil

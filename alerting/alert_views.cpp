#include "alerting/alert_views.h"

namespace vigil {
namespace {

nlohmann::json seconds_or_null(const std::optional<TimePoint>& t) {
  return t ? nlohmann::json(to_unix_seconds(*t)) : nlohmann::json(nullptr);
}

}  // namespace

nlohmann::json alert_json(const AlertRecord& a) {
  return {{"alert_id", a.alert_id},
          {"alert_name", a.alert_name},
          {"service_id", a.service_id},
          {"active", a.active},
          {"external_reference_id", a.external_reference_id},
          {"alert_cycle", a.alert_cycle},
          {"reason", a.reason},
          {"previous_status",
           a.previous_status ? nlohmann::json(*a.previous_status) : nlohmann::json(nullptr)},
          {"created_date", to_unix_seconds(a.created_date)},
          {"closed_date", seconds_or_null(a.closed_date)}};
}

nlohmann::json notification_json(const NotificationRecord& n) {
  return {{"id", n.id},
          {"channel", n.channel},
          {"kind", n.kind},
          {"attempt", n.attempt},
          {"status", to_string(n.status)},
          {"response_code", n.response_code ? nlohmann::json(*n.response_code) : nullptr},
          {"error", n.error.empty() ? nlohmann::json(nullptr) : nlohmann::json(n.error)},
          {"created_at", to_unix_seconds(n.created_at)},
          {"sent_at", seconds_or_null(n.sent_at)},
          {"next_attempt_at", seconds_or_null(n.next_attempt_at)}};
}

}  // namespace vigil

#include "storage/alert_store.h"

#include <optional>
#include <string>

#include "core/process_identity.h"

namespace vigil {

const char* to_string(NotificationStatus status) {
  switch (status) {
    case NotificationStatus::pending:
      return "pending";
    case NotificationStatus::sent:
      return "sent";
    case NotificationStatus::failed:
      return "failed";
    case NotificationStatus::suppressed:
      return "suppressed";
  }
  return "pending";
}

NotificationStatus notification_status_from(const std::string& text) {
  if (text == "sent") return NotificationStatus::sent;
  if (text == "failed") return NotificationStatus::failed;
  if (text == "suppressed") return NotificationStatus::suppressed;
  return NotificationStatus::pending;
}

namespace {

std::optional<TimePoint> optional_time(const StoredRow& row, int column) {
  if (row.is_null(column)) return std::nullopt;
  return from_unix_ms(row.integer(column));
}

}  // namespace

AlertRecord read_alert(const StoredRow& row) {
  AlertRecord alert;
  alert.alert_id = row.integer(0);
  alert.alert_name = row.text(1);
  alert.service_id = row.integer(2);
  alert.active = row.boolean(3);
  alert.external_reference_id = row.text(4);
  alert.alert_cycle = row.integer(5);
  alert.reason = row.text(6);
  alert.created_date = from_unix_ms(row.integer(7));
  alert.closed_date = optional_time(row, 8);
  if (!row.is_null(9)) alert.previous_status = row.text(9);
  return alert;
}

NotificationRecord read_notification(const StoredRow& row) {
  NotificationRecord n;
  n.id = row.integer(0);
  if (!row.is_null(1)) n.alert_id = row.integer(1);
  n.channel = row.text(2);
  n.kind = row.text(3);
  n.payload = row.text(4);
  n.status = notification_status_from(row.text(5));
  n.attempt = static_cast<int>(row.integer(6));
  n.next_attempt_at = optional_time(row, 7);
  if (!row.is_null(8)) n.response_code = static_cast<int>(row.integer(8));
  if (!row.is_null(9)) n.error = row.text(9);
  n.created_at = from_unix_ms(row.integer(10));
  n.sent_at = optional_time(row, 11);
  return n;
}

std::string new_external_reference_id() { return random_id(); }

}  // namespace vigil

#include "storage/alert_store.h"

#include <random>
#include <string>

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

std::string new_external_reference_id() {
  std::random_device random;
  static const char* const digits = "0123456789abcdef";
  std::string text;
  for (int i = 0; i < 8; ++i) {
    const auto word = random();
    for (int shift = 0; shift < 16; shift += 4) text += digits[(word >> shift) & 0xf];
  }
  return text;
}

}  // namespace vigil

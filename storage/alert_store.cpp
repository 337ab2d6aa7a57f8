#include "storage/alert_store.h"

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

}  // namespace vigil

// JSON of alert records for the API (/v1/alerts): instants as unix seconds, like every route.
#pragma once

#include <nlohmann/json.hpp>

#include "storage/alert_store.h"

namespace vigil {

// {alert_id, alert_name, service_id, active, external_reference_id, alert_cycle, reason,
//  previous_status ("up", or null when the first probe was down), created_date, closed_date
//  (null while active)}
nlohmann::json alert_json(const AlertRecord& alert);
// {id, channel, kind, attempt, status, response_code, error, created_at, sent_at,
//  next_attempt_at}: the payload stays internal.
nlohmann::json notification_json(const NotificationRecord& notification);

}  // namespace vigil

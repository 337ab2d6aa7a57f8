// AlertStore: the alerts, their notifications with their delivery state, and the maintenance
// windows created through the API. The Alerter writes through one; the API reads (and stores
// maintenance windows) through another. A backend opens them (storage/database.h); each is a
// connection of its own.
//
// Thread-safety: every method may be called from any thread; calls on one AlertStore are
// serialised. Errors (the database unreachable, locked or corrupt) are reported by throwing
// StorageError; nothing of the failed call is written.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/model.h"
#include "storage/store.h"
#include "storage/stored_row.h"

namespace vigil {

// An alert: opened when a service goes down, closed when it recovers.
struct AlertRecord {
  std::int64_t alert_id = 0;
  std::string alert_name;
  ServiceId service_id = 0;
  bool active = true;
  std::string external_reference_id;
  std::int64_t alert_cycle = 1;
  std::string reason;
  TimePoint created_date;
  std::optional<TimePoint> closed_date;
  // The status before the service went down: "up", or empty when it had none (its first probe
  // was down). The trigger's previous_status.
  std::optional<std::string> previous_status;
};

enum class NotificationStatus { pending, sent, failed, suppressed };
const char* to_string(NotificationStatus status);
// The status to_string names `text`; pending for any other text. For backends reading it back.
NotificationStatus notification_status_from(const std::string& text);

// A fresh external_reference_id for a new alert: 128 random bits as 32 lowercase hex digits
// (PagerDuty's dedup_key, unique across databases too). For backends; any thread.
std::string new_external_reference_id();

// One message to one channel about an alert (or a test), with its delivery state.
struct NotificationRecord {
  std::int64_t id = 0;
  std::optional<std::int64_t> alert_id;  // empty for a test notification
  std::string channel;
  std::string kind;     // trigger, repeat, resolve, test
  std::string payload;  // AlertMessage JSON
  NotificationStatus status = NotificationStatus::pending;
  int attempt = 0;  // deliveries tried so far
  std::optional<TimePoint> next_attempt_at;
  std::optional<int> response_code;
  std::string error;
  TimePoint created_at;
  std::optional<TimePoint> sent_at;  // when delivered, or given up
};

// The columns of the alerts and notifications tables every backend selects, in the order
// read_alert and read_notification read them.
inline constexpr const char* kAlertColumns =
    "alert_id, alert_name, service_id, active, external_reference_id, alert_cycle, reason, "
    "created_date, closed_date, previous_status";
inline constexpr const char* kNotificationColumns =
    "id, alert_id, channel, kind, payload, status, attempt, next_attempt_at, response_code, "
    "error, created_at, sent_at";
// A notification's shard as SQL over the notifications table (AlertStore::due): its alert's
// service's id, or its own id for a channel test (no alert); the backends take it modulo the
// shard count.
inline constexpr const char* kNotificationShardOf =
    "CASE WHEN alert_id IS NULL THEN id ELSE (SELECT a.service_id FROM alerts a WHERE "
    "a.alert_id = notifications.alert_id) END";
// An alert from a row of kAlertColumns, a notification from a row of kNotificationColumns. For
// backends; whatever `row` throws propagates.
AlertRecord read_alert(const StoredRow& row);
NotificationRecord read_notification(const StoredRow& row);

// A notification to record with an alert change: delivered later (pending) or, for a muted
// service, only recorded (suppressed).
struct NewNotification {
  std::string channel;
  std::string kind;
  std::string payload;
  bool suppressed = false;
};

// Which alerts alerts() returns.
struct AlertQuery {
  std::optional<bool> active{};
  std::optional<ServiceId> service_id{};
  std::optional<TimePoint> since{};  // created_date >= since
  int limit = 100;
  std::optional<std::int64_t> before_id{};  // keyset paging: only alerts with a smaller id
};

// A maintenance window created through the API, as stored: the store keeps its definition (the
// JSON object alerting/maintenance.h parses and writes) without reading it.
struct StoredMaintenanceWindow {
  std::int64_t id = 0;
  std::string definition;
};

class AlertStore {
 public:
  virtual ~AlertStore() = default;

  // Builds the notifications of an alert change once its id and cycle are known. Called on the
  // calling thread inside the change's transaction; whatever it throws propagates and nothing
  // is written.
  using Compose = std::function<std::vector<NewNotification>(const AlertRecord&)>;

  // The active alert of `service`; empty when it has none (or there is no such service).
  virtual std::optional<AlertRecord> active_alert(ServiceId service) = 0;
  // Every active alert, by alert_id ascending.
  virtual std::vector<AlertRecord> active_alerts() = 0;
  // Opens an active alert for `service` (cycle 1) with a fresh random external_reference_id
  // (128 bits, hex) and, in the same transaction, the notifications `compose` returns (pending
  // ones due at `at`; suppressed ones only recorded). Returns the stored alert.
  virtual AlertRecord open_alert(ServiceId service, const std::string& name,
                                 const std::string& reason,
                                 const std::optional<std::string>& previous_status, TimePoint at,
                                 const Compose& compose) = 0;
  // Closes alert `id` at `at` (a closed one stays as it is) with the notifications `compose`
  // returns (the resolves), in one transaction. Returns the stored alert; StorageError when
  // there is no alert `id`.
  virtual AlertRecord close_alert(std::int64_t id, TimePoint at, const Compose& compose) = 0;
  // A reminder: alert_cycle + 1 and the notifications, in one transaction. Returns the stored
  // alert; StorageError when there is no alert `id`.
  virtual AlertRecord next_cycle(std::int64_t id, TimePoint at, const Compose& compose) = 0;
  // Adds notifications to alert `id` (or to none: a test) without changing the alert, in one
  // transaction.
  virtual void add_notifications(std::optional<std::int64_t> alert_id, TimePoint at,
                                 const std::vector<NewNotification>& notifications) = 0;

  // Pending notifications due at `now` (next_attempt_at <= now), by next_attempt_at then id, at
  // most `limit`, leaving out the ids in `skip` (in flight). With `shards` (a cluster member's,
  // core/shards.h), only those it delivers: of an alert whose service is in one of them, or of
  // no alert (a channel test) whose own id is, so that each is delivered by one member.
  virtual std::vector<NotificationRecord> due(
      TimePoint now, std::size_t limit, const std::vector<std::int64_t>& skip,
      const std::optional<std::vector<int>>& shards = std::nullopt) = 0;
  // The earliest next_attempt_at of a pending notification (of `shards`, as due()); empty when
  // none is pending.
  virtual std::optional<TimePoint> next_due(
      const std::optional<std::vector<int>>& shards = std::nullopt) = 0;
  // The outcome of one delivery attempt of notification `id` (`attempt` counts from 1): sent
  // (with the answer's code), to be retried at `next_attempt_at`, or given up (failed). An
  // unknown id changes nothing and is not an error.
  virtual void record_sent(std::int64_t id, int attempt, int code, TimePoint at) = 0;
  virtual void record_retry(std::int64_t id, int attempt, std::optional<int> code,
                            const std::string& error, TimePoint next_attempt_at) = 0;
  virtual void record_failed(std::int64_t id, int attempt, std::optional<int> code,
                             const std::string& error, TimePoint at) = 0;

  // Alerts matching `query`, newest (highest alert_id) first, at most query.limit.
  virtual std::vector<AlertRecord> alerts(const AlertQuery& query) = 0;
  // Alert `id`; empty when there is none.
  virtual std::optional<AlertRecord> alert(std::int64_t id) = 0;
  // Notifications of alert `alert_id`, oldest (lowest id) first; empty for an unknown alert.
  virtual std::vector<NotificationRecord> notifications(std::int64_t alert_id) = 0;

  // Maintenance windows created through the API, by id ascending.
  virtual std::vector<StoredMaintenanceWindow> maintenance_windows() = 0;
  // Stores a window's `definition`, created at `at`; returns its new id (positive; not the id
  // of any window stored now).
  virtual std::int64_t add_maintenance_window(const std::string& definition, TimePoint at) = 0;
  // Deletes window `id`; false when there is none.
  virtual bool delete_maintenance_window(std::int64_t id) = 0;
};

}  // namespace vigil

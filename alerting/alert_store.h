// AlertStore: the alerts and notifications tables (schema version 5), and the maintenance windows
// created through the API (version 6), on a connection of its own
// to the database file. The Alerter writes through it; the API reads through another instance.
// Every method is safe from any thread (one connection, one mutex); errors throw StorageError.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "alerting/maintenance.h"
#include "core/model.h"
#include "storage/store.h"

namespace SQLite {
class Database;
}

namespace vigil {

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

// A notification to record with an alert change: delivered later (pending) or, for a muted
// service, only recorded (suppressed).
struct NewNotification {
  std::string channel;
  std::string kind;
  std::string payload;
  bool suppressed = false;
};

struct AlertQuery {
  std::optional<bool> active{};
  std::optional<ServiceId> service_id{};
  std::optional<TimePoint> since{};  // created_date >= since
  int limit = 100;
  std::optional<std::int64_t> before_id{};  // keyset paging: only alerts with a smaller id
};

class AlertStore {
 public:
  // Opens `path` (migrating it if needed, like open_sqlite_store). Throws StorageError.
  explicit AlertStore(const std::string& path);
  ~AlertStore();
  AlertStore(const AlertStore&) = delete;
  AlertStore& operator=(const AlertStore&) = delete;

  // Builds the notifications of an alert change once its id and cycle are known.
  using Compose = std::function<std::vector<NewNotification>(const AlertRecord&)>;

  std::optional<AlertRecord> active_alert(ServiceId service);
  std::vector<AlertRecord> active_alerts();
  // Opens an active alert for `service` with a fresh random external_reference_id and, in the
  // same transaction, the notifications `compose` returns (pending ones due at `at`).
  AlertRecord open_alert(ServiceId service, const std::string& name, const std::string& reason,
                         const std::optional<std::string>& previous_status, TimePoint at,
                         const Compose& compose);
  // Closes alert `id` at `at` with its notifications (the resolves), in one transaction.
  AlertRecord close_alert(std::int64_t id, TimePoint at, const Compose& compose);
  // A reminder: alert_cycle + 1 and the notifications, in one transaction.
  AlertRecord next_cycle(std::int64_t id, TimePoint at, const Compose& compose);
  // Adds notifications to alert `id` (or none: a test) without changing it.
  void add_notifications(std::optional<std::int64_t> alert_id, TimePoint at,
                         const std::vector<NewNotification>& notifications);

  // Pending notifications due at `now`, oldest first, at most `limit`, except `skip` (in flight).
  std::vector<NotificationRecord> due(TimePoint now, std::size_t limit,
                                      const std::vector<std::int64_t>& skip);
  // The earliest next_attempt_at of a pending notification.
  std::optional<TimePoint> next_due();
  // Outcome of one attempt (attempt = the attempt's number, from 1).
  void record_sent(std::int64_t id, int attempt, int code, TimePoint at);
  void record_retry(std::int64_t id, int attempt, std::optional<int> code, const std::string& error,
                    TimePoint next_attempt_at);
  void record_failed(std::int64_t id, int attempt, std::optional<int> code,
                     const std::string& error, TimePoint at);

  // Reads for the API and the Alerter.
  // Alerts matching `query`, newest (highest alert_id) first, at most query.limit.
  std::vector<AlertRecord> alerts(const AlertQuery& query);
  std::optional<AlertRecord> alert(std::int64_t id);
  // Notifications of alert `id`, oldest first.
  std::vector<NotificationRecord> notifications(std::int64_t alert_id);

  // Maintenance windows created through the API, oldest first, each with its id. A stored
  // window that no longer parses (its time zone gone from the system) is logged and skipped.
  std::vector<MaintenanceWindow> maintenance_windows();
  // Stores `window` (its id is ignored) and returns it with its new id.
  MaintenanceWindow add_maintenance_window(const MaintenanceWindow& window, TimePoint at);
  // False when there is no window `id`.
  bool delete_maintenance_window(std::int64_t id);

 private:
  AlertRecord insert_with(const std::function<std::int64_t()>& change, TimePoint at,
                          const Compose& compose);
  std::optional<AlertRecord> alert_locked(std::int64_t id);
  void insert_notifications_locked(std::optional<std::int64_t> alert_id, TimePoint at,
                                   const std::vector<NewNotification>& notifications);

  std::mutex mutex_;
  std::set<std::int64_t> unreadable_windows_;  // maintenance windows already logged as skipped
  std::unique_ptr<SQLite::Database> db_;
  std::string path_;
};

}  // namespace vigil

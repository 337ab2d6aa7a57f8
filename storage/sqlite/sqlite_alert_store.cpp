// SqliteAlertStore: the AlertStore on a write connection of its own to the database file.
#include <SQLiteCpp/SQLiteCpp.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "storage/alert_store.h"
#include "storage/column_codecs.h"
#include "storage/sqlite/sqlite_codecs.h"
#include "storage/sqlite/sqlite_connection.h"
#include "storage/sqlite/sqlite_database.h"

namespace vigil::sqlite {
namespace {

std::optional<TimePoint> optional_time(const SQLite::Column& column) {
  if (column.isNull()) return std::nullopt;
  return from_unix_ms(column.getInt64());
}

class SqliteAlertStore final : public AlertStore {
 public:
  // Opens `path` for writing (connect_for_writing: created and migrated if needed).
  explicit SqliteAlertStore(const std::string& path);

  std::optional<AlertRecord> active_alert(ServiceId service) override;
  std::vector<AlertRecord> active_alerts() override;
  AlertRecord open_alert(ServiceId service, const std::string& name, const std::string& reason,
                         const std::optional<std::string>& previous_status, TimePoint at,
                         const Compose& compose) override;
  AlertRecord close_alert(std::int64_t id, TimePoint at, const Compose& compose) override;
  AlertRecord next_cycle(std::int64_t id, TimePoint at, const Compose& compose) override;
  void add_notifications(std::optional<std::int64_t> alert_id, TimePoint at,
                         const std::vector<NewNotification>& notifications) override;
  std::vector<NotificationRecord> due(TimePoint now, std::size_t limit,
                                      const std::vector<std::int64_t>& skip,
                                      const std::optional<std::vector<int>>& shards) override;
  std::optional<TimePoint> next_due(const std::optional<std::vector<int>>& shards) override;
  void record_sent(std::int64_t id, int attempt, int code, TimePoint at) override;
  void record_retry(std::int64_t id, int attempt, std::optional<int> code, const std::string& error,
                    TimePoint next_attempt_at) override;
  void record_failed(std::int64_t id, int attempt, std::optional<int> code,
                     const std::string& error, TimePoint at) override;
  std::vector<AlertRecord> alerts(const AlertQuery& query) override;
  std::optional<AlertRecord> alert(std::int64_t id) override;
  std::vector<NotificationRecord> notifications(std::int64_t alert_id) override;
  std::vector<StoredMaintenanceWindow> maintenance_windows() override;
  std::int64_t add_maintenance_window(const std::string& definition, TimePoint at) override;
  bool delete_maintenance_window(std::int64_t id) override;

 private:
  // An attempt that did not deliver notification `id`: `update_sql` sets attempt, response_code,
  // error and a time (when to try again, or when it was given up) from parameters 1 to 4, for
  // the notification whose id is parameter 5. Takes mutex_.
  void record_undelivered(const char* update_sql, std::int64_t id, int attempt,
                          std::optional<int> code, const std::string& error, TimePoint at);
  // The caller holds mutex_: `change` runs in a write transaction and returns the alert's id.
  AlertRecord insert_with(const std::function<std::int64_t()>& change, TimePoint at,
                          const Compose& compose);
  std::optional<AlertRecord> alert_locked(std::int64_t id);
  void insert_notifications_locked(std::optional<std::int64_t> alert_id, TimePoint at,
                                   const std::vector<NewNotification>& notifications);

  std::mutex mutex_;
  std::unique_ptr<SQLite::Database> db_;  // guarded by mutex_
};

SqliteAlertStore::SqliteAlertStore(const std::string& path) {
  guarded(("cannot open alerts in " + path).c_str(), [&] {
    db_ = connect_for_writing(path);
    leave_checkpoints_to_the_store(*db_);
    return 0;
  });
}

std::optional<AlertRecord> SqliteAlertStore::alert_locked(std::int64_t id) {
  SQLite::Statement row(*db_,
                        std::string("SELECT ") + kAlertColumns + " FROM alerts WHERE alert_id = ?");
  row.bind(1, id);
  if (!row.executeStep()) return std::nullopt;
  return read_alert(StatementRow<SQLite::Statement>(row));
}

std::optional<AlertRecord> SqliteAlertStore::active_alert(ServiceId service) {
  std::lock_guard lock(mutex_);
  return guarded("reading alerts", [&]() -> std::optional<AlertRecord> {
    SQLite::Statement row(*db_, std::string("SELECT ") + kAlertColumns +
                                    " FROM alerts WHERE service_id = ? AND active = 1");
    row.bind(1, service);
    if (!row.executeStep()) return std::nullopt;
    return read_alert(StatementRow<SQLite::Statement>(row));
  });
}

std::vector<AlertRecord> SqliteAlertStore::active_alerts() {
  std::lock_guard lock(mutex_);
  return guarded("reading alerts", [&] {
    SQLite::Statement row(*db_, std::string("SELECT ") + kAlertColumns +
                                    " FROM alerts WHERE active = 1 ORDER BY alert_id");
    std::vector<AlertRecord> out;
    while (row.executeStep()) out.push_back(read_alert(StatementRow<SQLite::Statement>(row)));
    return out;
  });
}

void SqliteAlertStore::insert_notifications_locked(
    std::optional<std::int64_t> alert_id, TimePoint at,
    const std::vector<NewNotification>& notifications) {
  SQLite::Statement insert(
      *db_,
      "INSERT INTO notifications(alert_id, channel, kind, payload, status, attempt, "
      "next_attempt_at, created_at, sent_at) VALUES(?, ?, ?, ?, ?, 0, ?, ?, NULL)");
  for (const auto& n : notifications) {
    if (alert_id)
      insert.bind(1, *alert_id);
    else
      insert.bind(1);
    insert.bind(2, column_codecs::without_nul(n.channel));
    insert.bind(3, column_codecs::without_nul(n.kind));
    insert.bind(4, column_codecs::without_nul(n.payload));
    insert.bind(5, n.suppressed ? "suppressed" : "pending");
    if (n.suppressed)
      insert.bind(6);
    else
      insert.bind(6, to_unix_ms(at));
    insert.bind(7, to_unix_ms(at));
    insert.exec();
    insert.reset();
  }
}

AlertRecord SqliteAlertStore::insert_with(const std::function<std::int64_t()>& change, TimePoint at,
                                          const Compose& compose) {
  std::lock_guard lock(mutex_);
  return guarded("writing alerts", [&] {
    SQLite::Transaction txn(*db_, SQLite::TransactionBehavior::IMMEDIATE);
    const std::int64_t id = change();
    const auto alert = alert_locked(id);
    if (!alert) throw StorageError("alert " + std::to_string(id) + " vanished");
    insert_notifications_locked(id, at, compose(*alert));
    txn.commit();
    return *alert;
  });
}

AlertRecord SqliteAlertStore::open_alert(ServiceId service, const std::string& name,
                                         const std::string& reason,
                                         const std::optional<std::string>& previous_status,
                                         TimePoint at, const Compose& compose) {
  return insert_with(
      [&] {
        SQLite::Statement insert(
            *db_,
            "INSERT INTO alerts(alert_name, service_id, active, external_reference_id, "
            "alert_cycle, reason, created_date, previous_status) VALUES(?, ?, 1, ?, 1, ?, ?, ?)");
        insert.bind(1, column_codecs::without_nul(name));
        insert.bind(2, service);
        insert.bind(3, new_external_reference_id());
        insert.bind(4, column_codecs::without_nul(reason));
        insert.bind(5, to_unix_ms(at));
        if (previous_status)
          insert.bind(6, column_codecs::without_nul(*previous_status));
        else
          insert.bind(6);
        insert.exec();
        return db_->getLastInsertRowid();
      },
      at, compose);
}

AlertRecord SqliteAlertStore::close_alert(std::int64_t id, TimePoint at, const Compose& compose) {
  return insert_with(
      [&] {
        SQLite::Statement update(*db_,
                                 "UPDATE alerts SET active = 0, closed_date = ? "
                                 "WHERE alert_id = ? AND active = 1");
        update.bind(1, to_unix_ms(at));
        update.bind(2, id);
        update.exec();
        return id;
      },
      at, compose);
}

AlertRecord SqliteAlertStore::next_cycle(std::int64_t id, TimePoint at, const Compose& compose) {
  return insert_with(
      [&] {
        SQLite::Statement update(
            *db_, "UPDATE alerts SET alert_cycle = alert_cycle + 1 WHERE alert_id = ?");
        update.bind(1, id);
        update.exec();
        return id;
      },
      at, compose);
}

void SqliteAlertStore::add_notifications(std::optional<std::int64_t> alert_id, TimePoint at,
                                         const std::vector<NewNotification>& notifications) {
  std::lock_guard lock(mutex_);
  guarded("writing notifications", [&] {
    SQLite::Transaction txn(*db_, SQLite::TransactionBehavior::IMMEDIATE);
    insert_notifications_locked(alert_id, at, notifications);
    txn.commit();
    return 0;
  });
}

std::vector<NotificationRecord> SqliteAlertStore::due(
    TimePoint now, std::size_t limit, const std::vector<std::int64_t>& skip,
    const std::optional<std::vector<int>>& shards) {
  std::lock_guard lock(mutex_);
  return guarded("reading notifications", [&] {
    SQLite::Statement row(*db_, std::string("SELECT ") + kNotificationColumns +
                                    " FROM notifications WHERE status = 'pending' AND "
                                    "next_attempt_at <= ?" +
                                    and_in_shards(kNotificationShardOf, shards) +
                                    " ORDER BY next_attempt_at, id");
    row.bind(1, to_unix_ms(now));
    std::vector<NotificationRecord> out;
    while (out.size() < limit && row.executeStep()) {
      auto n = read_notification(StatementRow<SQLite::Statement>(row));
      if (std::find(skip.begin(), skip.end(), n.id) == skip.end()) out.push_back(std::move(n));
    }
    return out;
  });
}

std::optional<TimePoint> SqliteAlertStore::next_due(const std::optional<std::vector<int>>& shards) {
  std::lock_guard lock(mutex_);
  return guarded("reading notifications", [&]() -> std::optional<TimePoint> {
    SQLite::Statement row(
        *db_, "SELECT MIN(next_attempt_at) FROM notifications WHERE status = 'pending'" +
                  and_in_shards(kNotificationShardOf, shards));
    if (!row.executeStep()) return std::nullopt;
    return optional_time(row.getColumn(0));
  });
}

void SqliteAlertStore::record_sent(std::int64_t id, int attempt, int code, TimePoint at) {
  std::lock_guard lock(mutex_);
  guarded("writing notifications", [&] {
    SQLite::Statement update(*db_,
                             "UPDATE notifications SET status = 'sent', attempt = ?, "
                             "response_code = ?, error = NULL, next_attempt_at = NULL, "
                             "sent_at = ? WHERE id = ?");
    update.bind(1, attempt);
    update.bind(2, code);
    update.bind(3, to_unix_ms(at));
    update.bind(4, id);
    return update.exec();
  });
}

void SqliteAlertStore::record_retry(std::int64_t id, int attempt, std::optional<int> code,
                                    const std::string& error, TimePoint next_attempt_at) {
  record_undelivered(
      "UPDATE notifications SET attempt = ?, response_code = ?, error = ?, next_attempt_at = ? "
      "WHERE id = ?",
      id, attempt, code, error, next_attempt_at);
}

void SqliteAlertStore::record_failed(std::int64_t id, int attempt, std::optional<int> code,
                                     const std::string& error, TimePoint at) {
  record_undelivered(
      "UPDATE notifications SET status = 'failed', attempt = ?, response_code = ?, error = ?, "
      "next_attempt_at = NULL, sent_at = ? WHERE id = ?",
      id, attempt, code, error, at);
}

void SqliteAlertStore::record_undelivered(const char* update_sql, std::int64_t id, int attempt,
                                          std::optional<int> code, const std::string& error,
                                          TimePoint at) {
  std::lock_guard lock(mutex_);
  guarded("writing notifications", [&] {
    SQLite::Statement update(*db_, update_sql);
    update.bind(1, attempt);
    if (code)
      update.bind(2, *code);
    else
      update.bind(2);
    update.bind(3, column_codecs::without_nul(error));
    update.bind(4, to_unix_ms(at));
    update.bind(5, id);
    return update.exec();
  });
}

std::vector<AlertRecord> SqliteAlertStore::alerts(const AlertQuery& query) {
  std::lock_guard lock(mutex_);
  return guarded("reading alerts", [&] {
    std::string sql = std::string("SELECT ") + kAlertColumns + " FROM alerts WHERE 1";
    if (query.active) sql += " AND active = ?";
    if (query.service_id) sql += " AND service_id = ?";
    if (query.since) sql += " AND created_date >= ?";
    if (query.before_id) sql += " AND alert_id < ?";
    sql += " ORDER BY alert_id DESC LIMIT ?";
    SQLite::Statement row(*db_, sql);
    int i = 1;
    if (query.active) row.bind(i++, *query.active ? 1 : 0);
    if (query.service_id) row.bind(i++, *query.service_id);
    if (query.since) row.bind(i++, to_unix_ms(*query.since));
    if (query.before_id) row.bind(i++, *query.before_id);
    row.bind(i, query.limit);
    std::vector<AlertRecord> out;
    while (row.executeStep()) out.push_back(read_alert(StatementRow<SQLite::Statement>(row)));
    return out;
  });
}

std::optional<AlertRecord> SqliteAlertStore::alert(std::int64_t id) {
  std::lock_guard lock(mutex_);
  return guarded("reading alerts", [&] { return alert_locked(id); });
}

std::vector<NotificationRecord> SqliteAlertStore::notifications(std::int64_t alert_id) {
  std::lock_guard lock(mutex_);
  return guarded("reading notifications", [&] {
    SQLite::Statement row(*db_, std::string("SELECT ") + kNotificationColumns +
                                    " FROM notifications WHERE alert_id = ? ORDER BY id");
    row.bind(1, alert_id);
    std::vector<NotificationRecord> out;
    while (row.executeStep())
      out.push_back(read_notification(StatementRow<SQLite::Statement>(row)));
    return out;
  });
}

std::vector<StoredMaintenanceWindow> SqliteAlertStore::maintenance_windows() {
  std::lock_guard lock(mutex_);
  return guarded("reading maintenance windows", [&] {
    SQLite::Statement row(*db_, "SELECT id, definition FROM maintenance_windows ORDER BY id");
    std::vector<StoredMaintenanceWindow> out;
    while (row.executeStep())
      out.push_back({row.getColumn(0).getInt64(), row.getColumn(1).getString()});
    return out;
  });
}

std::int64_t SqliteAlertStore::add_maintenance_window(const std::string& definition, TimePoint at) {
  std::lock_guard lock(mutex_);
  return guarded("writing a maintenance window", [&] {
    SQLite::Statement insert(
        *db_, "INSERT INTO maintenance_windows(definition, created_at) VALUES(?, ?)");
    insert.bind(1, column_codecs::without_nul(definition));
    insert.bind(2, to_unix_ms(at));
    insert.exec();
    return db_->getLastInsertRowid();
  });
}

bool SqliteAlertStore::delete_maintenance_window(std::int64_t id) {
  std::lock_guard lock(mutex_);
  return guarded("deleting a maintenance window", [&] {
    SQLite::Statement remove(*db_, "DELETE FROM maintenance_windows WHERE id = ?");
    remove.bind(1, id);
    return remove.exec() > 0;
  });
}

}  // namespace
}  // namespace vigil::sqlite

namespace vigil {

std::unique_ptr<AlertStore> open_sqlite_alert_store(const std::string& path) {
  return std::make_unique<sqlite::SqliteAlertStore>(path);
}

}  // namespace vigil

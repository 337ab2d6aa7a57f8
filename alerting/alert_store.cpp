#include "alerting/alert_store.h"

#include <SQLiteCpp/SQLiteCpp.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <random>

#include "core/logging.h"
#include "storage/sqlite/sqlite_schema.h"

namespace vigil {
namespace {

constexpr int kBusyTimeoutMs = 5000;

const char* const kAlertColumns =
    "alert_id, alert_name, service_id, active, external_reference_id, alert_cycle, reason, "
    "created_date, closed_date, previous_status";
const char* const kNotificationColumns =
    "id, alert_id, channel, kind, payload, status, attempt, next_attempt_at, response_code, "
    "error, created_at, sent_at";

// 128 random bits as hex: PagerDuty's dedup_key, unique across databases too.
std::string random_reference() {
  std::random_device random;
  static const char* const digits = "0123456789abcdef";
  std::string text;
  for (int i = 0; i < 8; ++i) {
    const auto word = random();
    for (int shift = 0; shift < 16; shift += 4) text += digits[(word >> shift) & 0xf];
  }
  return text;
}

std::optional<TimePoint> optional_time(const SQLite::Column& column) {
  if (column.isNull()) return std::nullopt;
  return from_unix_ms(column.getInt64());
}

AlertRecord read_alert(SQLite::Statement& row) {
  AlertRecord alert;
  alert.alert_id = row.getColumn(0).getInt64();
  alert.alert_name = row.getColumn(1).getString();
  alert.service_id = row.getColumn(2).getInt64();
  alert.active = row.getColumn(3).getInt() != 0;
  alert.external_reference_id = row.getColumn(4).getString();
  alert.alert_cycle = row.getColumn(5).getInt64();
  alert.reason = row.getColumn(6).getString();
  alert.created_date = from_unix_ms(row.getColumn(7).getInt64());
  alert.closed_date = optional_time(row.getColumn(8));
  if (!row.getColumn(9).isNull()) alert.previous_status = row.getColumn(9).getString();
  return alert;
}

NotificationStatus status_from(const std::string& text) {
  if (text == "sent") return NotificationStatus::sent;
  if (text == "failed") return NotificationStatus::failed;
  if (text == "suppressed") return NotificationStatus::suppressed;
  return NotificationStatus::pending;
}

NotificationRecord read_notification(SQLite::Statement& row) {
  NotificationRecord n;
  n.id = row.getColumn(0).getInt64();
  if (!row.getColumn(1).isNull()) n.alert_id = row.getColumn(1).getInt64();
  n.channel = row.getColumn(2).getString();
  n.kind = row.getColumn(3).getString();
  n.payload = row.getColumn(4).getString();
  n.status = status_from(row.getColumn(5).getString());
  n.attempt = row.getColumn(6).getInt();
  n.next_attempt_at = optional_time(row.getColumn(7));
  if (!row.getColumn(8).isNull()) n.response_code = row.getColumn(8).getInt();
  n.error = row.getColumn(9).getString();
  n.created_at = from_unix_ms(row.getColumn(10).getInt64());
  n.sent_at = optional_time(row.getColumn(11));
  return n;
}

template <typename F>
auto guarded(const std::string& what, F&& body) {
  try {
    return body();
  } catch (const SQLite::Exception& e) {
    throw StorageError(what + ": " + e.what());
  }
}

}  // namespace

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

AlertStore::AlertStore(const std::string& path) : path_(path) {
  guarded("cannot open alerts in " + path, [&] {
    db_ = std::make_unique<SQLite::Database>(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE,
                                             kBusyTimeoutMs);
    db_->exec("PRAGMA journal_mode = WAL");
    db_->exec("PRAGMA synchronous = NORMAL");
    db_->exec("PRAGMA foreign_keys = ON");
    sqlite_schema::migrate(*db_, path);
    return 0;
  });
}

AlertStore::~AlertStore() = default;

std::optional<AlertRecord> AlertStore::alert_locked(std::int64_t id) {
  SQLite::Statement row(*db_,
                        std::string("SELECT ") + kAlertColumns + " FROM alerts WHERE alert_id = ?");
  row.bind(1, id);
  if (!row.executeStep()) return std::nullopt;
  return read_alert(row);
}

std::optional<AlertRecord> AlertStore::active_alert(ServiceId service) {
  std::lock_guard lock(mutex_);
  return guarded("reading alerts", [&]() -> std::optional<AlertRecord> {
    SQLite::Statement row(*db_, std::string("SELECT ") + kAlertColumns +
                                    " FROM alerts WHERE service_id = ? AND active = 1");
    row.bind(1, service);
    if (!row.executeStep()) return std::nullopt;
    return read_alert(row);
  });
}

std::vector<AlertRecord> AlertStore::active_alerts() {
  std::lock_guard lock(mutex_);
  return guarded("reading alerts", [&] {
    SQLite::Statement row(*db_, std::string("SELECT ") + kAlertColumns +
                                    " FROM alerts WHERE active = 1 ORDER BY alert_id");
    std::vector<AlertRecord> out;
    while (row.executeStep()) out.push_back(read_alert(row));
    return out;
  });
}

void AlertStore::insert_notifications_locked(std::optional<std::int64_t> alert_id, TimePoint at,
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
    insert.bind(2, n.channel);
    insert.bind(3, n.kind);
    insert.bind(4, n.payload);
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

AlertRecord AlertStore::insert_with(const std::function<std::int64_t()>& change, TimePoint at,
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

AlertRecord AlertStore::open_alert(ServiceId service, const std::string& name,
                                   const std::string& reason,
                                   const std::optional<std::string>& previous_status, TimePoint at,
                                   const Compose& compose) {
  return insert_with(
      [&] {
        SQLite::Statement insert(
            *db_,
            "INSERT INTO alerts(alert_name, service_id, active, external_reference_id, "
            "alert_cycle, reason, created_date, previous_status) VALUES(?, ?, 1, ?, 1, ?, ?, ?)");
        insert.bind(1, name);
        insert.bind(2, service);
        insert.bind(3, random_reference());
        insert.bind(4, reason);
        insert.bind(5, to_unix_ms(at));
        if (previous_status)
          insert.bind(6, *previous_status);
        else
          insert.bind(6);
        insert.exec();
        return db_->getLastInsertRowid();
      },
      at, compose);
}

AlertRecord AlertStore::close_alert(std::int64_t id, TimePoint at, const Compose& compose) {
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

AlertRecord AlertStore::next_cycle(std::int64_t id, TimePoint at, const Compose& compose) {
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

void AlertStore::add_notifications(std::optional<std::int64_t> alert_id, TimePoint at,
                                   const std::vector<NewNotification>& notifications) {
  std::lock_guard lock(mutex_);
  guarded("writing notifications", [&] {
    SQLite::Transaction txn(*db_, SQLite::TransactionBehavior::IMMEDIATE);
    insert_notifications_locked(alert_id, at, notifications);
    txn.commit();
    return 0;
  });
}

std::vector<NotificationRecord> AlertStore::due(TimePoint now, std::size_t limit,
                                                const std::vector<std::int64_t>& skip) {
  std::lock_guard lock(mutex_);
  return guarded("reading notifications", [&] {
    SQLite::Statement row(*db_, std::string("SELECT ") + kNotificationColumns +
                                    " FROM notifications WHERE status = 'pending' AND "
                                    "next_attempt_at <= ? ORDER BY next_attempt_at, id");
    row.bind(1, to_unix_ms(now));
    std::vector<NotificationRecord> out;
    while (out.size() < limit && row.executeStep()) {
      auto n = read_notification(row);
      if (std::find(skip.begin(), skip.end(), n.id) == skip.end()) out.push_back(std::move(n));
    }
    return out;
  });
}

std::optional<TimePoint> AlertStore::next_due() {
  std::lock_guard lock(mutex_);
  return guarded("reading notifications", [&]() -> std::optional<TimePoint> {
    SQLite::Statement row(
        *db_, "SELECT MIN(next_attempt_at) FROM notifications WHERE status = 'pending'");
    if (!row.executeStep()) return std::nullopt;
    return optional_time(row.getColumn(0));
  });
}

void AlertStore::record_sent(std::int64_t id, int attempt, int code, TimePoint at) {
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

void AlertStore::record_retry(std::int64_t id, int attempt, std::optional<int> code,
                              const std::string& error, TimePoint next_attempt_at) {
  std::lock_guard lock(mutex_);
  guarded("writing notifications", [&] {
    SQLite::Statement update(*db_,
                             "UPDATE notifications SET attempt = ?, response_code = ?, "
                             "error = ?, next_attempt_at = ? WHERE id = ?");
    update.bind(1, attempt);
    if (code)
      update.bind(2, *code);
    else
      update.bind(2);
    update.bind(3, error);
    update.bind(4, to_unix_ms(next_attempt_at));
    update.bind(5, id);
    return update.exec();
  });
}

void AlertStore::record_failed(std::int64_t id, int attempt, std::optional<int> code,
                               const std::string& error, TimePoint at) {
  std::lock_guard lock(mutex_);
  guarded("writing notifications", [&] {
    SQLite::Statement update(*db_,
                             "UPDATE notifications SET status = 'failed', attempt = ?, "
                             "response_code = ?, error = ?, next_attempt_at = NULL, "
                             "sent_at = ? WHERE id = ?");
    update.bind(1, attempt);
    if (code)
      update.bind(2, *code);
    else
      update.bind(2);
    update.bind(3, error);
    update.bind(4, to_unix_ms(at));
    update.bind(5, id);
    return update.exec();
  });
}

std::vector<AlertRecord> AlertStore::alerts(const AlertQuery& query) {
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
    while (row.executeStep()) out.push_back(read_alert(row));
    return out;
  });
}

std::optional<AlertRecord> AlertStore::alert(std::int64_t id) {
  std::lock_guard lock(mutex_);
  return guarded("reading alerts", [&] { return alert_locked(id); });
}

std::vector<NotificationRecord> AlertStore::notifications(std::int64_t alert_id) {
  std::lock_guard lock(mutex_);
  return guarded("reading notifications", [&] {
    SQLite::Statement row(*db_, std::string("SELECT ") + kNotificationColumns +
                                    " FROM notifications WHERE alert_id = ? ORDER BY id");
    row.bind(1, alert_id);
    std::vector<NotificationRecord> out;
    while (row.executeStep()) out.push_back(read_notification(row));
    return out;
  });
}

// ---- maintenance windows created through the API (schema 6) ----

std::vector<MaintenanceWindow> AlertStore::maintenance_windows() {
  std::lock_guard lock(mutex_);
  return guarded("reading maintenance windows", [&] {
    SQLite::Statement row(*db_, "SELECT id, definition FROM maintenance_windows ORDER BY id");
    std::vector<MaintenanceWindow> out;
    while (row.executeStep()) {
      const std::int64_t id = row.getColumn(0).getInt64();
      const std::string where = "maintenance window " + std::to_string(id);
      try {
        auto window =
            parse_maintenance_window(nlohmann::json::parse(row.getColumn(1).getString()), where);
        window.id = id;
        out.push_back(std::move(window));
      } catch (const std::exception& e) {
        // E.g. its time zone was removed from the system: the others still count. Read every
        // second by the Alerter, so said once.
        if (unreadable_windows_.insert(id).second)
          log_error("skipping stored " + where + ": " + e.what());
      }
    }
    return out;
  });
}

MaintenanceWindow AlertStore::add_maintenance_window(const MaintenanceWindow& window,
                                                     TimePoint at) {
  std::lock_guard lock(mutex_);
  return guarded("writing a maintenance window", [&] {
    SQLite::Statement insert(
        *db_, "INSERT INTO maintenance_windows(definition, created_at) VALUES(?, ?)");
    insert.bind(1, maintenance_definition_json(window).dump());
    insert.bind(2, to_unix_ms(at));
    insert.exec();
    MaintenanceWindow stored = window;
    stored.id = db_->getLastInsertRowid();
    return stored;
  });
}

bool AlertStore::delete_maintenance_window(std::int64_t id) {
  std::lock_guard lock(mutex_);
  return guarded("deleting a maintenance window", [&] {
    SQLite::Statement remove(*db_, "DELETE FROM maintenance_windows WHERE id = ?");
    remove.bind(1, id);
    return remove.exec() > 0;
  });
}

}  // namespace vigil

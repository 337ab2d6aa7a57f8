// PostgresAlertStore: the AlertStore on a connection of its own, with the semantics of the SQLite
// one (storage/sqlite/sqlite_alert_store.cpp): the same transactions, orders and values.
#include "storage/alert_store.h"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "storage/postgres/postgres_store.h"
#include "storage/postgres/store_impl.h"

namespace vigil::postgres {
namespace {

// As SQLite's busy timeout for the alerts connection: a lock held elsewhere, or a stuck server,
// fails the call (the Alerter counts it and tries again) instead of holding its thread.
constexpr std::chrono::milliseconds kAlertsStatementTimeout{5000};

std::optional<TimePoint> optional_time(const Result& rows, int row, int column) {
  if (null_at(rows, row, column)) return std::nullopt;
  return from_unix_ms(int_at(rows, row, column));
}

Param optional_param(const std::optional<int>& value) {
  if (!value) return std::nullopt;
  return text(*value);
}

std::vector<AlertRecord> read_alerts(const Result& rows) {
  std::vector<AlertRecord> out;
  for (int row = 0; row < rows.rows(); ++row) out.push_back(read_alert(ResultRow(rows, row)));
  return out;
}

std::vector<NotificationRecord> read_notifications(const Result& rows) {
  std::vector<NotificationRecord> out;
  for (int row = 0; row < rows.rows(); ++row)
    out.push_back(read_notification(ResultRow(rows, row)));
  return out;
}

class PostgresAlertStore final : public AlertStore {
 public:
  // Connects to `conninfo`, whose schema open_postgres_store has migrated. Throws StorageError.
  explicit PostgresAlertStore(std::string conninfo);

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
  // The session (SessionHolder::get). Needs mutex_.
  Session& session() { return session_.get(); }
  // BEGIN on the session (SessionHolder::begin). Needs mutex_.
  Session& begin(std::optional<Transaction>& txn) { return session_.begin(txn); }
  // One statement on its own (its own transaction), guarded as `operation`. Takes mutex_.
  Result run(const char* operation, const std::string& sql, const Params& params);
  // `change` runs in a transaction and returns the alert's id; the alert is read back, and the
  // notifications `compose` returns inserted, before COMMIT.
  AlertRecord change_with(const std::function<std::int64_t(Session&)>& change, TimePoint at,
                          const Compose& compose);
  std::optional<AlertRecord> alert_in(Session& session, std::int64_t id);
  void insert_notifications(Session& session, std::optional<std::int64_t> alert_id, TimePoint at,
                            const std::vector<NewNotification>& notifications);

  std::mutex mutex_;
  SessionHolder session_;  // guarded by mutex_
};

PostgresAlertStore::PostgresAlertStore(std::string conninfo)
    : session_(std::move(conninfo), SessionLimits::answering_within(kAlertsStatementTimeout)) {
  try {
    session_.get();
  } catch (const PgError& e) {
    throw StorageError(std::string("storage: cannot open alerts in the PostgreSQL database: ") +
                       e.what());
  }
}

Result PostgresAlertStore::run(const char* operation, const std::string& sql,
                               const Params& params) {
  std::lock_guard lock(mutex_);
  return guarded(operation, [&] { return session().run(sql, params); });
}

std::optional<AlertRecord> PostgresAlertStore::alert_in(Session& session, std::int64_t id) {
  const auto rows = session.run(
      std::string("SELECT ") + kAlertColumns + " FROM alerts WHERE alert_id = $1", {text(id)});
  if (rows.rows() == 0) return std::nullopt;
  return read_alert(ResultRow(rows, 0));
}

std::optional<AlertRecord> PostgresAlertStore::active_alert(ServiceId service) {
  const auto rows =
      run("reading alerts",
          std::string("SELECT ") + kAlertColumns + " FROM alerts WHERE service_id = $1 AND active",
          {text(service)});
  return guarded("reading alerts", [&]() -> std::optional<AlertRecord> {
    if (rows.rows() == 0) return std::nullopt;
    return read_alert(ResultRow(rows, 0));
  });
}

std::vector<AlertRecord> PostgresAlertStore::active_alerts() {
  const auto rows = run(
      "reading alerts",
      std::string("SELECT ") + kAlertColumns + " FROM alerts WHERE active ORDER BY alert_id", {});
  return guarded("reading alerts", [&] { return read_alerts(rows); });
}

void PostgresAlertStore::insert_notifications(Session& session,
                                              std::optional<std::int64_t> alert_id, TimePoint at,
                                              const std::vector<NewNotification>& notifications) {
  for (const auto& n : notifications) {
    session.run(
        "INSERT INTO notifications(alert_id, channel, kind, payload, status, attempt, "
        "next_attempt_at, created_at, sent_at) VALUES($1, $2, $3, $4, $5, 0, $6, $7, NULL)",
        {alert_id ? Param(text(*alert_id)) : std::nullopt, without_nul(n.channel),
         without_nul(n.kind), without_nul(n.payload),
         std::string(n.suppressed ? "suppressed" : "pending"),
         n.suppressed ? std::nullopt : Param(text(ms(at))), text(ms(at))});
  }
}

AlertRecord PostgresAlertStore::change_with(const std::function<std::int64_t(Session&)>& change,
                                            TimePoint at, const Compose& compose) {
  std::lock_guard lock(mutex_);
  return guarded("writing alerts", [&] {
    std::optional<Transaction> txn;
    Session& s = begin(txn);
    const std::int64_t id = change(s);
    const auto alert = alert_in(s, id);
    if (!alert) throw StorageError("alert " + std::to_string(id) + " vanished");
    insert_notifications(s, id, at, compose(*alert));
    txn->commit();
    return *alert;
  });
}

AlertRecord PostgresAlertStore::open_alert(ServiceId service, const std::string& name,
                                           const std::string& reason,
                                           const std::optional<std::string>& previous_status,
                                           TimePoint at, const Compose& compose) {
  return change_with(
      [&](Session& s) {
        const auto rows = s.run(
            "INSERT INTO alerts(alert_name, service_id, active, external_reference_id, "
            "alert_cycle, reason, created_date, previous_status) "
            "VALUES($1, $2, true, $3, 1, $4, $5, $6) RETURNING alert_id",
            {without_nul(name), text(service), new_external_reference_id(), without_nul(reason),
             text(ms(at)), previous_status ? Param(without_nul(*previous_status)) : std::nullopt});
        return int_at(rows, 0, 0);
      },
      at, compose);
}

AlertRecord PostgresAlertStore::close_alert(std::int64_t id, TimePoint at, const Compose& compose) {
  return change_with(
      [&](Session& s) {
        s.run("UPDATE alerts SET active = false, closed_date = $1 WHERE alert_id = $2 AND active",
              {text(ms(at)), text(id)});
        return id;
      },
      at, compose);
}

AlertRecord PostgresAlertStore::next_cycle(std::int64_t id, TimePoint at, const Compose& compose) {
  return change_with(
      [&](Session& s) {
        s.run("UPDATE alerts SET alert_cycle = alert_cycle + 1 WHERE alert_id = $1", {text(id)});
        return id;
      },
      at, compose);
}

void PostgresAlertStore::add_notifications(std::optional<std::int64_t> alert_id, TimePoint at,
                                           const std::vector<NewNotification>& notifications) {
  std::lock_guard lock(mutex_);
  guarded("writing notifications", [&] {
    std::optional<Transaction> txn;
    Session& s = begin(txn);
    insert_notifications(s, alert_id, at, notifications);
    txn->commit();
  });
}

std::vector<NotificationRecord> PostgresAlertStore::due(
    TimePoint now, std::size_t limit, const std::vector<std::int64_t>& skip,
    const std::optional<std::vector<int>>& shards) {
  ArrayText skipped;
  for (const auto id : skip) skipped.add(id);
  const auto rows = run(
      "reading notifications",
      std::string("SELECT ") + kNotificationColumns +
          " FROM notifications WHERE status = 'pending' AND "
          "next_attempt_at <= $1 AND NOT (id = ANY($2::bigint[])) AND " +
          in_shards(kNotificationShardOf, 4) + " ORDER BY next_attempt_at, id LIMIT $3",
      {text(ms(now)), skipped.str(), text(static_cast<std::int64_t>(limit)), shard_array(shards)});
  return guarded("reading notifications", [&] { return read_notifications(rows); });
}

std::optional<TimePoint> PostgresAlertStore::next_due(
    const std::optional<std::vector<int>>& shards) {
  const auto rows =
      run("reading notifications",
          "SELECT MIN(next_attempt_at) FROM notifications WHERE status = 'pending' AND " +
              in_shards(kNotificationShardOf, 1),
          {shard_array(shards)});
  return guarded("reading notifications", [&]() -> std::optional<TimePoint> {
    if (rows.rows() == 0) return std::nullopt;
    return optional_time(rows, 0, 0);
  });
}

void PostgresAlertStore::record_sent(std::int64_t id, int attempt, int code, TimePoint at) {
  run("writing notifications",
      "UPDATE notifications SET status = 'sent', attempt = $1, response_code = $2, error = NULL, "
      "next_attempt_at = NULL, sent_at = $3 WHERE id = $4",
      {text(attempt), text(code), text(ms(at)), text(id)});
}

void PostgresAlertStore::record_retry(std::int64_t id, int attempt, std::optional<int> code,
                                      const std::string& error, TimePoint next_attempt_at) {
  run("writing notifications",
      "UPDATE notifications SET attempt = $1, response_code = $2, error = $3, "
      "next_attempt_at = $4 WHERE id = $5",
      {text(attempt), optional_param(code), without_nul(error), text(ms(next_attempt_at)),
       text(id)});
}

void PostgresAlertStore::record_failed(std::int64_t id, int attempt, std::optional<int> code,
                                       const std::string& error, TimePoint at) {
  run("writing notifications",
      "UPDATE notifications SET status = 'failed', attempt = $1, response_code = $2, error = $3, "
      "next_attempt_at = NULL, sent_at = $4 WHERE id = $5",
      {text(attempt), optional_param(code), without_nul(error), text(ms(at)), text(id)});
}

std::vector<AlertRecord> PostgresAlertStore::alerts(const AlertQuery& query) {
  std::string sql = std::string("SELECT ") + kAlertColumns + " FROM alerts WHERE true";
  Params params;
  const auto next = [&params] { return "$" + std::to_string(params.size()); };
  if (query.active) {
    params.push_back(text(*query.active));
    sql += " AND active = " + next();
  }
  if (query.service_id) {
    params.push_back(text(*query.service_id));
    sql += " AND service_id = " + next();
  }
  if (query.since) {
    params.push_back(text(ms(*query.since)));
    sql += " AND created_date >= " + next();
  }
  if (query.before_id) {
    params.push_back(text(*query.before_id));
    sql += " AND alert_id < " + next();
  }
  // A negative LIMIT is no limit on SQLite; PostgreSQL refuses one, and means NULL alike.
  params.push_back(query.limit < 0 ? std::nullopt : Param(text(query.limit)));
  sql += " ORDER BY alert_id DESC LIMIT " + next();
  const auto rows = run("reading alerts", sql, params);
  return guarded("reading alerts", [&] { return read_alerts(rows); });
}

std::optional<AlertRecord> PostgresAlertStore::alert(std::int64_t id) {
  std::lock_guard lock(mutex_);
  return guarded("reading alerts", [&] { return alert_in(session(), id); });
}

std::vector<NotificationRecord> PostgresAlertStore::notifications(std::int64_t alert_id) {
  const auto rows = run("reading notifications",
                        std::string("SELECT ") + kNotificationColumns +
                            " FROM notifications WHERE alert_id = $1 ORDER BY id",
                        {text(alert_id)});
  return guarded("reading notifications", [&] { return read_notifications(rows); });
}

std::vector<StoredMaintenanceWindow> PostgresAlertStore::maintenance_windows() {
  const auto rows = run("reading maintenance windows",
                        "SELECT id, definition FROM maintenance_windows ORDER BY id", {});
  return guarded("reading maintenance windows", [&] {
    std::vector<StoredMaintenanceWindow> out;
    for (int row = 0; row < rows.rows(); ++row)
      out.push_back({int_at(rows, row, 0), text_at(rows, row, 1)});
    return out;
  });
}

std::int64_t PostgresAlertStore::add_maintenance_window(const std::string& definition,
                                                        TimePoint at) {
  const auto rows = run("writing a maintenance window",
                        "INSERT INTO maintenance_windows(definition, created_at) VALUES($1, $2) "
                        "RETURNING id",
                        {without_nul(definition), text(ms(at))});
  return guarded("writing a maintenance window", [&] { return int_at(rows, 0, 0); });
}

bool PostgresAlertStore::delete_maintenance_window(std::int64_t id) {
  return run("deleting a maintenance window", "DELETE FROM maintenance_windows WHERE id = $1",
             {text(id)})
             .affected_rows() > 0;
}

}  // namespace
}  // namespace vigil::postgres

namespace vigil {

std::unique_ptr<AlertStore> open_postgres_alert_store(const std::string& conninfo) {
  return std::make_unique<postgres::PostgresAlertStore>(conninfo);
}

}  // namespace vigil

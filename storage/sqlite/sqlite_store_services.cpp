#include <SQLiteCpp/SQLiteCpp.h>

#include <cstdint>
#include <functional>
#include <iterator>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/conditions.h"
#include "core/logging.h"
#include "core/probe_options.h"
#include "storage/sqlite/sqlite_codecs.h"
#include "storage/sqlite/sqlite_store.h"

namespace vigil::sqlite {
namespace {

constexpr const char* kFileSource = "file";
// Purge deletes a service's ticks in batches of this many, each its own transaction, so the
// writer never waits behind one huge delete.
constexpr std::size_t kPurgeBatch = 5000;

// The columns a ServiceSpec is stored in (beside name), in the order bind_spec binds them.
constexpr const char* kSpecColumns[] = {
    "url",  "interval_ms", "timeout_ms",  "method",        "headers",        "expected_status",
    "kind", "grace_ms",    "threshold",   "team",          "priority",       "runbook",
    "tags", "muted",       "muted_until", "probe_options", "alert_channels", "repeat_every_ms"};
constexpr int kSpecColumnCount = static_cast<int>(std::size(kSpecColumns));

// Binds the spec's columns to parameters ?first .. ?first + kSpecColumnCount - 1.
void bind_spec(SQLite::Statement& statement, const ServiceSpec& spec, int first) {
  int i = first;
  statement.bind(i++, spec.url);
  statement.bind(i++, ms(spec.interval));
  statement.bind(i++, ms(spec.timeout));
  statement.bind(i++, spec.method);
  statement.bind(i++, column_codecs::encode_headers(spec.headers));
  statement.bind(i++, format_status_ranges(spec.expected_status));
  statement.bind(i++, to_string(spec.kind));
  statement.bind(i++, ms(spec.grace));
  statement.bind(i++, spec.threshold);
  statement.bind(i++, spec.team);
  statement.bind(i++, spec.priority);
  statement.bind(i++, spec.runbook);
  statement.bind(i++, column_codecs::encode_tags(spec.tags));
  statement.bind(i++, spec.muted ? 1 : 0);
  if (spec.muted_until)
    statement.bind(i++, ms(*spec.muted_until));
  else
    statement.bind(i++);
  statement.bind(i++, encode_probe_options(spec.probe));
  statement.bind(i++, column_codecs::encode_tags(spec.alert_channels));
  if (spec.repeat_every)
    statement.bind(i++, ms(*spec.repeat_every));
  else
    statement.bind(i++);
}

// "url, interval_ms, ..." and "?2, ?3, ..." for an INSERT; "url = ?2, ..." for an UPDATE.
std::string spec_column_list() {
  std::string out;
  for (const char* column : kSpecColumns) out += std::string(out.empty() ? "" : ", ") + column;
  return out;
}
std::string spec_placeholders(int first) {
  std::string out;
  for (int i = 0; i < kSpecColumnCount; ++i) out += (i ? ", ?" : "?") + std::to_string(first + i);
  return out;
}
std::string spec_assignments(int first) {
  std::string out;
  for (int i = 0; i < kSpecColumnCount; ++i)
    out += std::string(i ? ", " : "") + kSpecColumns[i] + " = ?" + std::to_string(first + i);
  return out;
}

// The next revision: one more than any row of services or service_tombstones carries. Called
// inside a write transaction, which makes it unique.
std::int64_t next_revision(SQLite::Database& db) {
  return db
      .execAndGet(
          "SELECT COALESCE(MAX(r), 0) + 1 FROM (SELECT MAX(revision) AS r FROM services"
          " UNION ALL SELECT MAX(revision) FROM service_tombstones)")
      .getInt64();
}

// ---- service management: the statements that write a whole spec ----

// INSERT of an active service: ?1 name, ?2.. the spec, then push token, revision, time.
// A new service's id is above every id ever given, purged ones included (their tombstones
// stay): ticks of a purged service still on their way to the writer, and ids a client kept,
// must never land on or name a newer service.
std::string insert_service_sql(const char* source) {
  const int extra = 2 + kSpecColumnCount;
  return "INSERT INTO services(id, name, " + spec_column_list() +
         ", active, source, push_token, revision, created_at, updated_at) VALUES("
         "(SELECT MAX(n) + 1 FROM (SELECT COALESCE(MAX(id), 0) AS n FROM services"
         " UNION ALL SELECT COALESCE(MAX(service_id), 0) FROM service_tombstones)), ?1, " +
         spec_placeholders(2) + ", 1, '" + source + "', ?" + std::to_string(extra) + ", ?" +
         std::to_string(extra + 1) + ", ?" + std::to_string(extra + 2) + ", ?" +
         std::to_string(extra + 2) + ")";
}

// UPDATE of a service's spec: ?1 id, ?2.. the spec, then push token, revision, time and name. A
// heartbeat keeps the token it has (the one bound is used only when it has none); other kinds
// lose it.
std::string update_service_sql(const std::string& also_set) {
  const std::string token = "?" + std::to_string(2 + kSpecColumnCount);
  return "UPDATE services SET " + spec_assignments(2) + ", push_token = CASE WHEN " + token +
         " IS NULL THEN NULL ELSE COALESCE(push_token, " + token + ") END, revision = ?" +
         std::to_string(3 + kSpecColumnCount) + ", updated_at = ?" +
         std::to_string(4 + kSpecColumnCount) + ", name = ?" +
         std::to_string(5 + kSpecColumnCount) + also_set + " WHERE id = ?1";
}

void bind_push_token(SQLite::Statement& statement, int index, const ServiceSpec& spec) {
  if (spec.kind == ServiceKind::heartbeat)
    statement.bind(index, column_codecs::new_push_token());
  else
    statement.bind(index);
}

}  // namespace

SyncResult SqliteStore::sync_services(const std::vector<ServiceSpec>& specs, TimePoint now) {
  std::unordered_set<std::string> wanted;
  for (const auto& spec : specs)
    if (!wanted.insert(spec.name).second)
      throw StorageError("storage: sync_services: duplicate service name '" + spec.name + "'");

  std::lock_guard lock(write_mutex_);
  return guarded("sync_services", [&] {
    SQLite::Transaction txn(*db_, SQLite::TransactionBehavior::IMMEDIATE);

    struct Stored {
      Service service;
      std::string source;
    };
    std::vector<Stored> stored;
    std::unordered_map<std::string, std::size_t> by_name;
    SQLite::Statement select(*db_, std::string("SELECT ") + column_codecs::kServiceColumns +
                                       ", s.source FROM services s ORDER BY s.id");
    while (select.executeStep()) {
      stored.push_back({column_codecs::read_service(StatementRow(select), 0),
                        select.getColumn(column_codecs::kServiceColumnCount).getString()});
      by_name.emplace(stored.back().service.spec.name, stored.size() - 1);
    }

    // ?1 name or id, ?2.. the spec, then the push token, the revision and the time.
    const int extra = 2 + kSpecColumnCount;
    SQLite::Statement insert(*db_, insert_service_sql(kFileSource));
    SQLite::Statement update(*db_, update_service_sql(", active = 1"));
    SQLite::Statement deactivate(
        *db_, "UPDATE services SET active = 0, revision = ?3, updated_at = ?2 WHERE id = ?1");
    const std::int64_t revision = next_revision(*db_);
    const auto bind_spec_and_rest = [&](SQLite::Statement& statement, const ServiceSpec& spec) {
      bind_spec(statement, spec, 2);
      bind_push_token(statement, extra, spec);
      statement.bind(extra + 1, revision);
      statement.bind(extra + 2, ms(now));
    };

    SyncResult result;
    for (const auto& spec : specs) {
      const auto found = by_name.find(spec.name);
      if (found == by_name.end()) {
        insert.tryReset();
        insert.bind(1, spec.name);
        bind_spec_and_rest(insert, spec);
        insert.exec();
        result.inserted.push_back(spec.name);
        continue;
      }
      const auto& row = stored[found->second];
      if (row.source != kFileSource) {
        // Names are unique across sources; the file cannot take over a service it does not own.
        log_warn("storage: service '" + spec.name + "' in the services file is ignored: " +
                 "a service of that name is managed by " + row.source);
        continue;
      }
      // A reactivation is reported as an update: the row changed, its history is kept.
      if (!row.service.active || row.service.spec != spec) {
        update.tryReset();
        update.bind(1, row.service.id);
        bind_spec_and_rest(update, spec);
        update.bind(extra + 3, spec.name);
        update.exec();
        result.updated.push_back(spec.name);
      }
    }
    for (const auto& row : stored) {
      if (row.source != kFileSource || !row.service.active) continue;
      if (wanted.contains(row.service.spec.name)) continue;
      deactivate.tryReset();
      deactivate.bind(1, row.service.id);
      deactivate.bind(2, ms(now));
      deactivate.bind(3, revision);
      deactivate.exec();
      result.deactivated.push_back(row.service.spec.name);
    }
    txn.commit();
    return result;
  });
}

std::vector<Service> SqliteStore::active_services() {
  return guarded("active_services", [&] {
    auto db = readers_.acquire();
    SQLite::Statement select(*db, std::string("SELECT ") + column_codecs::kServiceColumns +
                                      " FROM services s WHERE s.active = 1 ORDER BY s.id");
    std::vector<Service> services;
    while (select.executeStep())
      services.push_back(column_codecs::read_service(StatementRow(select), 0));
    return services;
  });
}

Service SqliteStore::create_service(const ServiceSpec& spec, TimePoint now) {
  std::lock_guard lock(write_mutex_);
  return guarded("create_service", [&] {
    SQLite::Transaction txn(*db_, SQLite::TransactionBehavior::IMMEDIATE);
    throw_if_name_taken(spec.name, std::nullopt);
    SQLite::Statement insert(*db_, insert_service_sql("api"));
    insert.bind(1, spec.name);
    bind_spec(insert, spec, 2);
    const int extra = 2 + kSpecColumnCount;
    bind_push_token(insert, extra, spec);
    insert.bind(extra + 1, next_revision(*db_));
    insert.bind(extra + 2, ms(now));
    insert.exec();
    auto created = read_service_by_id(*db_, db_->getLastInsertRowid());
    txn.commit();
    return *created;
  });
}

std::optional<Service> SqliteStore::update_service(ServiceId id, const ServiceSpec& spec,
                                                   TimePoint now) {
  std::lock_guard lock(write_mutex_);
  return guarded("update_service", [&]() -> std::optional<Service> {
    SQLite::Transaction txn(*db_, SQLite::TransactionBehavior::IMMEDIATE);
    if (!read_service_by_id(*db_, id)) return std::nullopt;
    throw_if_name_taken(spec.name, id);
    SQLite::Statement update(*db_, update_service_sql(""));
    update.bind(1, id);
    bind_spec(update, spec, 2);
    const int extra = 2 + kSpecColumnCount;
    bind_push_token(update, extra, spec);
    update.bind(extra + 1, next_revision(*db_));
    update.bind(extra + 2, ms(now));
    update.bind(extra + 3, spec.name);
    update.exec();
    auto updated = read_service_by_id(*db_, id);
    txn.commit();
    return updated;
  });
}

std::optional<Service> SqliteStore::edit_service(
    ServiceId id, const std::function<ServiceEdit(const Service&)>& edit, TimePoint now) {
  std::lock_guard lock(write_mutex_);
  return guarded("edit_service", [&]() -> std::optional<Service> {
    // IMMEDIATE: the read below already holds the write lock, so no other process's write
    // can come between it and ours.
    SQLite::Transaction txn(*db_, SQLite::TransactionBehavior::IMMEDIATE);
    auto current = read_service_by_id(*db_, id);
    if (!current) return std::nullopt;
    const ServiceEdit edited = edit(*current);
    if (edited.spec == current->spec && edited.active == current->active) return current;
    throw_if_name_taken(edited.spec.name, id);
    SQLite::Statement update(
        *db_, update_service_sql(", active = ?" + std::to_string(6 + kSpecColumnCount)));
    update.bind(1, id);
    bind_spec(update, edited.spec, 2);
    const int extra = 2 + kSpecColumnCount;
    bind_push_token(update, extra, edited.spec);
    update.bind(extra + 1, next_revision(*db_));
    update.bind(extra + 2, ms(now));
    update.bind(extra + 3, edited.spec.name);
    update.bind(extra + 4, edited.active ? 1 : 0);
    update.exec();
    auto updated = read_service_by_id(*db_, id);
    txn.commit();
    return updated;
  });
}

std::optional<Service> SqliteStore::set_service_active(ServiceId id, bool active, TimePoint now) {
  std::lock_guard lock(write_mutex_);
  return guarded("set_service_active", [&]() -> std::optional<Service> {
    SQLite::Transaction txn(*db_, SQLite::TransactionBehavior::IMMEDIATE);
    SQLite::Statement update(
        *db_, "UPDATE services SET active = ?2, revision = ?3, updated_at = ?4 WHERE id = ?1");
    update.bind(1, id);
    update.bind(2, active ? 1 : 0);
    update.bind(3, next_revision(*db_));
    update.bind(4, ms(now));
    if (update.exec() == 0) return std::nullopt;
    auto changed = read_service_by_id(*db_, id);
    txn.commit();
    return changed;
  });
}

bool SqliteStore::purge_service(ServiceId id) {
  // The history goes first, in short transactions, so the writer is never held up for long;
  // the service row (and what the cascade finds left) goes last, with its tombstone.
  for (;;) {
    std::lock_guard lock(write_mutex_);
    const int deleted = guarded("purge_service", [&] {
      SQLite::Statement erase(*db_,
                              "DELETE FROM service_ticks WHERE (service_id, ts, seq) IN (SELECT"
                              " service_id, ts, seq FROM service_ticks WHERE service_id = ?1"
                              " LIMIT ?2)");
      erase.bind(1, id);
      erase.bind(2, static_cast<std::int64_t>(kPurgeBatch));
      return erase.exec();
    });
    if (deleted < static_cast<int>(kPurgeBatch)) break;
  }
  std::lock_guard lock(write_mutex_);
  return guarded("purge_service", [&] {
    SQLite::Transaction txn(*db_, SQLite::TransactionBehavior::IMMEDIATE);
    // Taken while the row still counts: once it is gone, the newest revision may be its own,
    // which a follower has already seen, and the purge would never reach it.
    const std::int64_t revision = next_revision(*db_);
    SQLite::Statement erase(*db_, "DELETE FROM services WHERE id = ?1");
    erase.bind(1, id);
    if (erase.exec() == 0) return false;
    SQLite::Statement tombstone(
        *db_, "INSERT INTO service_tombstones(revision, service_id) VALUES(?, ?)");
    tombstone.bind(1, revision);
    tombstone.bind(2, id);
    tombstone.exec();
    txn.commit();
    return true;
  });
}

std::optional<Service> SqliteStore::find_by_push_token(const std::string& token) {
  if (token.empty()) return std::nullopt;
  return guarded("find_by_push_token", [&]() -> std::optional<Service> {
    auto db = readers_.acquire();
    SQLite::Statement select(*db, std::string("SELECT ") + column_codecs::kServiceColumns +
                                      " FROM services s WHERE s.push_token = ? AND s.active = 1");
    select.bind(1, token);
    if (!select.executeStep()) return std::nullopt;
    return column_codecs::read_service(StatementRow(select), 0);
  });
}

std::int64_t SqliteStore::services_revision() {
  return guarded("services_revision", [&] {
    auto db = readers_.acquire();
    return next_revision(*db) - 1;
  });
}

ServiceChanges SqliteStore::service_changes(std::int64_t after_revision) {
  return guarded("service_changes", [&] {
    auto db = readers_.acquire();
    // One read transaction: the three reads see the same snapshot.
    SQLite::Transaction snapshot(*db);
    ServiceChanges changes;
    changes.revision = next_revision(*db) - 1;
    if (changes.revision <= after_revision) return changes;
    SQLite::Statement changed(*db, std::string("SELECT ") + column_codecs::kServiceColumns +
                                       " FROM services s WHERE s.revision > ? ORDER BY s.id");
    changed.bind(1, after_revision);
    while (changed.executeStep())
      changes.changed.push_back(column_codecs::read_service(StatementRow(changed), 0));
    SQLite::Statement purged(
        *db, "SELECT service_id FROM service_tombstones WHERE revision > ? ORDER BY revision");
    purged.bind(1, after_revision);
    while (purged.executeStep()) changes.purged.push_back(purged.getColumn(0).getInt64());
    return changes;
  });
}

std::optional<Service> SqliteStore::read_service_by_id(SQLite::Database& db, ServiceId id) {
  SQLite::Statement select(db, std::string("SELECT ") + column_codecs::kServiceColumns +
                                   " FROM services s WHERE s.id = ?");
  select.bind(1, id);
  if (!select.executeStep()) return std::nullopt;
  return column_codecs::read_service(StatementRow(select), 0);
}

void SqliteStore::throw_if_name_taken(const std::string& name, std::optional<ServiceId> except) {
  SQLite::Statement select(*db_, "SELECT id, active FROM services WHERE name = ?");
  select.bind(1, name);
  if (!select.executeStep()) return;
  const ServiceId owner = select.getColumn(0).getInt64();
  if (except && owner == *except) return;
  throw ConflictError("service name \"" + name + "\" is already taken by service " +
                      std::to_string(owner) +
                      (select.getColumn(1).getInt() != 0 ? "" : " (inactive)"));
}

}  // namespace vigil::sqlite

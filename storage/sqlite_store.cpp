// SqliteStore: the embedded Store. One write connection (serialised by a mutex, with the hot
// apply() statements prepared once) and a pool of read-only connections, so API threads read
// concurrently from WAL snapshots and never wait for the writer.
#include <SQLiteCpp/SQLiteCpp.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "config/logging.h"
#include "storage/model.h"
#include "storage/sqlite_schema.h"
#include "storage/store.h"

namespace vigil {
namespace {

// Long enough to ride out the other process's write transaction (vigil runner and vigil api
// share the file), short enough that a wedged lock surfaces as an error.
constexpr int kBusyTimeoutMs = 5000;
// Idle read connections kept open; more are opened on demand and closed when returned.
constexpr std::size_t kMaxIdleReaders = 8;

constexpr const char* kFileSource = "file";

// ---- encoding of the spec fields that are not plain columns ----

std::string encode_headers(const std::vector<std::pair<std::string, std::string>>& headers) {
  auto array = nlohmann::json::array();
  for (const auto& [name, value] : headers) array.push_back({name, value});
  return array.dump();
}

std::vector<std::pair<std::string, std::string>> decode_headers(const std::string& text) {
  std::vector<std::pair<std::string, std::string>> headers;
  for (const auto& pair : nlohmann::json::parse(text))
    headers.emplace_back(pair.at(0).get<std::string>(), pair.at(1).get<std::string>());
  return headers;
}

std::string encode_status(const std::vector<StatusRange>& ranges) {
  std::string text;
  for (const auto& range : ranges) {
    if (!text.empty()) text += ',';
    text += std::to_string(range.lo);
    if (range.hi != range.lo) text += '-' + std::to_string(range.hi);
  }
  return text;
}

int parse_code(std::string_view text) {
  int value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size())
    throw StorageError("malformed expected_status code '" + std::string(text) + "'");
  return value;
}

std::vector<StatusRange> decode_status(std::string_view text) {
  std::vector<StatusRange> ranges;
  while (!text.empty()) {
    const auto comma = text.find(',');
    const auto item = text.substr(0, comma);
    const auto dash = item.find('-');
    if (dash == std::string_view::npos) {
      const int code = parse_code(item);
      ranges.push_back({code, code});
    } else {
      ranges.push_back({parse_code(item.substr(0, dash)), parse_code(item.substr(dash + 1))});
    }
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return ranges;
}

std::optional<EventKind> parse_kind(const std::string& text) {
  if (text == "uptime") return EventKind::uptime;
  if (text == "downtime") return EventKind::downtime;
  return std::nullopt;
}

EventKind require_kind(const std::string& text) {
  if (auto kind = parse_kind(text)) return *kind;
  throw StorageError("unknown event kind '" + text + "' in service_events");
}

std::int64_t ms(TimePoint t) { return to_unix_ms(t); }
std::int64_t ms(Millis d) { return d.count(); }

// Columns s.id .. s.updated_at in this order, starting at `first`.
constexpr const char* kServiceColumns =
    "s.id, s.name, s.url, s.interval_ms, s.timeout_ms, s.method, s.headers, s.expected_status, "
    "s.active, s.created_at, s.updated_at";
constexpr int kServiceColumnCount = 11;

Service read_service(const SQLite::Statement& row, int first) {
  Service service;
  service.id = row.getColumn(first + 0).getInt64();
  service.spec.name = row.getColumn(first + 1).getString();
  service.spec.url = row.getColumn(first + 2).getString();
  service.spec.interval = Millis(row.getColumn(first + 3).getInt64());
  service.spec.timeout = Millis(row.getColumn(first + 4).getInt64());
  service.spec.method = row.getColumn(first + 5).getString();
  service.spec.headers = decode_headers(row.getColumn(first + 6).getString());
  service.spec.expected_status = decode_status(row.getColumn(first + 7).getString());
  service.active = row.getColumn(first + 8).getInt() != 0;
  service.created_at = from_unix_ms(row.getColumn(first + 9).getInt64());
  service.updated_at = from_unix_ms(row.getColumn(first + 10).getInt64());
  return service;
}

// services ⟕ service_metrics ⟕ open event, in one pass: the partial unique index makes the
// open-event join an index lookup, so 10,000 services is one query, not 10,001.
constexpr const char* kViewColumnsAndJoins =
    ", m.tick_count, m.up_count, m.down_count, m.average_response_time_ms, m.uptime_percent,"
    " e.id, e.event, e.date_started, e.created_at, e.updated_at"
    " FROM services s"
    " LEFT JOIN service_metrics m ON m.service_id = s.id"
    " LEFT JOIN service_events e ON e.service_id = s.id AND e.date_ended IS NULL";

ServiceView read_view(const SQLite::Statement& row) {
  ServiceView view;
  view.service = read_service(row, 0);
  const int m = kServiceColumnCount;
  if (!row.isColumnNull(m)) {
    view.metric.tick_count = row.getColumn(m + 0).getInt64();
    view.metric.up_count = row.getColumn(m + 1).getInt64();
    view.metric.down_count = row.getColumn(m + 2).getInt64();
    view.metric.average_response_time_ms = row.getColumn(m + 3).getDouble();
    view.metric.uptime_percent = row.getColumn(m + 4).getDouble();
  }
  const int e = m + 5;
  if (!row.isColumnNull(e)) {
    Event event;
    event.id = row.getColumn(e + 0).getInt64();
    event.service_id = view.service.id;
    event.kind = require_kind(row.getColumn(e + 1).getString());
    event.date_started = from_unix_ms(row.getColumn(e + 2).getInt64());
    event.created_at = from_unix_ms(row.getColumn(e + 3).getInt64());
    event.updated_at = from_unix_ms(row.getColumn(e + 4).getInt64());
    view.open_event = event;
  }
  return view;
}

// Runs `body`, turning the library's exceptions into StorageError naming the operation, so
// callers only ever see the one documented exception type.
template <typename Body>
auto guarded(const char* operation, Body&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const StorageError& e) {
    throw StorageError(std::string("storage: ") + operation + ": " + e.what());
  } catch (const SQLite::Exception& e) {
    throw StorageError(std::string("storage: ") + operation + ": " + e.what());
  } catch (const nlohmann::json::exception& e) {
    throw StorageError(std::string("storage: ") + operation + ": bad JSON: " + e.what());
  }
}

// Read-only connections, opened on demand and handed out one per caller.
class ReadPool {
 public:
  explicit ReadPool(std::string path) : path_(std::move(path)) {}

  class Lease {
   public:
    Lease(ReadPool& pool, std::unique_ptr<SQLite::Database> db) : pool_(pool), db_(std::move(db)) {}
    ~Lease() { pool_.give_back(std::move(db_)); }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    SQLite::Database& operator*() const { return *db_; }

   private:
    ReadPool& pool_;
    std::unique_ptr<SQLite::Database> db_;
  };

  Lease acquire() {
    {
      std::lock_guard lock(mutex_);
      if (!idle_.empty()) {
        auto db = std::move(idle_.back());
        idle_.pop_back();
        return Lease(*this, std::move(db));
      }
    }
    // Opened outside the lock: opening touches the file and must not stall other readers.
    // NOMUTEX: a connection is only ever used by the thread holding its lease.
    return Lease(*this, std::make_unique<SQLite::Database>(
                            path_, SQLite::OPEN_READONLY | SQLite::OPEN_NOMUTEX, kBusyTimeoutMs));
  }

 private:
  void give_back(std::unique_ptr<SQLite::Database> db) {
    std::lock_guard lock(mutex_);
    if (idle_.size() < kMaxIdleReaders) idle_.push_back(std::move(db));
  }

  const std::string path_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<SQLite::Database>> idle_;
};

// apply()'s statements, compiled once: apply runs for every batch the writer commits. Each use
// starts with tryReset(): a statement whose last step threw keeps that error, and reset() would
// rethrow it.
struct ApplyStatements {
  explicit ApplyStatements(SQLite::Database& db)
      : insert_tick(db,
                    "INSERT INTO service_ticks"
                    "(service_id, ts, up, status_code, response_ms, error, region)"
                    " VALUES(?, ?, ?, ?, ?, ?, ?)"),
        close_open_event(db,
                         "UPDATE service_events SET date_ended = ?2, updated_at = ?2"
                         " WHERE service_id = ?1 AND date_ended IS NULL"),
        open_event(db,
                   "INSERT INTO service_events"
                   "(service_id, event, date_started, date_ended, created_at, updated_at)"
                   " VALUES(?1, ?2, ?3, NULL, ?3, ?3)"),
        upsert_metric(db,
                      "INSERT INTO service_metrics(service_id, tick_count, up_count, down_count,"
                      " average_response_time_ms, uptime_percent, last_tick_at, updated_at)"
                      " VALUES(?, ?, ?, ?, ?, ?, ?, ?)"
                      " ON CONFLICT(service_id) DO UPDATE SET"
                      " tick_count = excluded.tick_count, up_count = excluded.up_count,"
                      " down_count = excluded.down_count,"
                      " average_response_time_ms = excluded.average_response_time_ms,"
                      " uptime_percent = excluded.uptime_percent,"
                      " last_tick_at = MAX(service_metrics.last_tick_at, excluded.last_tick_at),"
                      " updated_at = excluded.updated_at") {}

  SQLite::Statement insert_tick;
  SQLite::Statement close_open_event;
  SQLite::Statement open_event;
  SQLite::Statement upsert_metric;
};

class SqliteStore final : public Store {
 public:
  explicit SqliteStore(const std::string& path) : path_(path), readers_(path) {
    try {
      // NOMUTEX: write_mutex_ already serialises every use of this connection.
      db_ = std::make_unique<SQLite::Database>(
          path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE | SQLite::OPEN_NOMUTEX,
          kBusyTimeoutMs);
      const auto mode = db_->execAndGet("PRAGMA journal_mode = WAL").getString();
      if (mode != "wal")
        throw StorageError("cannot enable WAL on " + path + " (journal_mode is " + mode + ")");
      // With WAL, NORMAL still survives a process crash with every committed transaction (the
      // WAL is written before COMMIT returns); only an OS crash or power loss may lose the last
      // transactions, never corrupt the file. It saves an fsync per commit.
      db_->exec("PRAGMA synchronous = NORMAL");
      db_->exec("PRAGMA foreign_keys = ON");
      sqlite_schema::migrate(*db_, path);
      apply_statements_ = std::make_unique<ApplyStatements>(*db_);
    } catch (const StorageError&) {
      throw;
    } catch (const SQLite::Exception& e) {
      throw StorageError("storage: cannot open database " + path + ": " + e.what());
    }
  }

  SyncResult sync_services(const std::vector<ServiceSpec>& specs, TimePoint now) override {
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
      SQLite::Statement select(*db_, std::string("SELECT ") + kServiceColumns +
                                         ", s.source FROM services s ORDER BY s.id");
      while (select.executeStep()) {
        stored.push_back(
            {read_service(select, 0), select.getColumn(kServiceColumnCount).getString()});
        by_name.emplace(stored.back().service.spec.name, stored.size() - 1);
      }

      SQLite::Statement insert(
          *db_,
          "INSERT INTO services(name, url, interval_ms, timeout_ms, method, headers,"
          " expected_status, active, source, created_at, updated_at)"
          " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, 'file', ?8, ?8)");
      SQLite::Statement update(
          *db_,
          "UPDATE services SET url = ?2, interval_ms = ?3, timeout_ms = ?4, method = ?5,"
          " headers = ?6, expected_status = ?7, active = 1, updated_at = ?8 WHERE id = ?1");
      SQLite::Statement deactivate(*db_,
                                   "UPDATE services SET active = 0, updated_at = ?2 WHERE id = ?1");
      const auto bind_spec = [&](SQLite::Statement& statement, const ServiceSpec& spec) {
        statement.bind(2, spec.url);
        statement.bind(3, ms(spec.interval));
        statement.bind(4, ms(spec.timeout));
        statement.bind(5, spec.method);
        statement.bind(6, encode_headers(spec.headers));
        statement.bind(7, encode_status(spec.expected_status));
        statement.bind(8, ms(now));
      };

      SyncResult result;
      for (const auto& spec : specs) {
        const auto found = by_name.find(spec.name);
        if (found == by_name.end()) {
          insert.tryReset();
          insert.bind(1, spec.name);
          bind_spec(insert, spec);
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
          bind_spec(update, spec);
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
        deactivate.exec();
        result.deactivated.push_back(row.service.spec.name);
      }
      txn.commit();
      return result;
    });
  }

  std::vector<Service> active_services() override {
    return guarded("active_services", [&] {
      auto db = readers_.acquire();
      SQLite::Statement select(*db, std::string("SELECT ") + kServiceColumns +
                                        " FROM services s WHERE s.active = 1 ORDER BY s.id");
      std::vector<Service> services;
      while (select.executeStep()) services.push_back(read_service(select, 0));
      return services;
    });
  }

  std::unordered_map<ServiceId, ServiceRuntime> load_runtime() override {
    return guarded("load_runtime", [&] {
      auto db = readers_.acquire();
      SQLite::Statement select(
          *db,
          "SELECT m.service_id, m.tick_count, m.up_count, m.down_count,"
          " m.average_response_time_ms, m.uptime_percent, m.last_tick_at,"
          " e.event, e.date_started"
          " FROM service_metrics m"
          " LEFT JOIN service_events e ON e.service_id = m.service_id AND e.date_ended IS NULL");
      std::unordered_map<ServiceId, ServiceRuntime> runtime;
      while (select.executeStep()) {
        ServiceRuntime state;
        state.metric.tick_count = select.getColumn(1).getInt64();
        state.metric.up_count = select.getColumn(2).getInt64();
        state.metric.down_count = select.getColumn(3).getInt64();
        state.metric.average_response_time_ms = select.getColumn(4).getDouble();
        state.metric.uptime_percent = select.getColumn(5).getDouble();
        state.last_tick_at = from_unix_ms(select.getColumn(6).getInt64());
        if (!select.isColumnNull(7)) {
          state.open_event_kind = require_kind(select.getColumn(7).getString());
          state.open_event_started = from_unix_ms(select.getColumn(8).getInt64());
        }
        runtime.emplace(select.getColumn(0).getInt64(), state);
      }
      return runtime;
    });
  }

  void apply(const std::vector<TickRecord>& batch) override {
    if (batch.empty()) return;
    // The last record of each service carries its metric; the newest ts is its last tick.
    struct Touched {
      std::size_t last_record;
      std::int64_t last_tick_at;
    };
    std::vector<ServiceId> order;  // first-seen order, so the writes are deterministic
    std::unordered_map<ServiceId, Touched> touched;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      const auto& tick = batch[i].tick;
      auto [it, inserted] = touched.try_emplace(tick.service_id, Touched{i, ms(tick.ts)});
      if (inserted) {
        order.push_back(tick.service_id);
      } else {
        it->second.last_record = i;
        it->second.last_tick_at = std::max(it->second.last_tick_at, ms(tick.ts));
      }
    }

    std::lock_guard lock(write_mutex_);
    guarded("apply", [&] {
      auto& s = *apply_statements_;
      // IMMEDIATE takes the write lock up front (waiting up to busy_timeout for the other
      // process) instead of failing on a read-to-write upgrade halfway through the batch.
      // Its destructor rolls back unless commit() was reached: all or nothing.
      SQLite::Transaction txn(*db_, SQLite::TransactionBehavior::IMMEDIATE);
      for (const auto& record : batch) {
        const auto& tick = record.tick;
        // Every parameter is rebound for every row, so the bindNoCopy pointers into `batch` are
        // never read after this call returns.
        s.insert_tick.tryReset();
        s.insert_tick.bind(1, tick.service_id);
        s.insert_tick.bind(2, ms(tick.ts));
        s.insert_tick.bind(3, tick.up ? 1 : 0);
        if (tick.status_code)
          s.insert_tick.bind(4, *tick.status_code);
        else
          s.insert_tick.bind(4);
        s.insert_tick.bind(5, tick.response_ms);
        if (tick.error.empty())
          s.insert_tick.bind(6);
        else
          s.insert_tick.bindNoCopy(6, tick.error);
        s.insert_tick.bindNoCopy(7, tick.region);
        s.insert_tick.exec();

        if (record.opens_event) {
          s.close_open_event.tryReset();
          s.close_open_event.bind(1, tick.service_id);
          s.close_open_event.bind(2, ms(tick.ts));
          s.close_open_event.exec();
          s.open_event.tryReset();
          s.open_event.bind(1, tick.service_id);
          s.open_event.bind(2, to_string(*record.opens_event));
          s.open_event.bind(3, ms(tick.ts));
          s.open_event.exec();
        }
      }
      const auto written_at = ms(now_ms());
      for (const ServiceId id : order) {
        const auto& info = touched.at(id);
        const auto& metric = batch[info.last_record].metric_after;
        s.upsert_metric.tryReset();
        s.upsert_metric.bind(1, id);
        s.upsert_metric.bind(2, metric.tick_count);
        s.upsert_metric.bind(3, metric.up_count);
        s.upsert_metric.bind(4, metric.down_count);
        s.upsert_metric.bind(5, metric.average_response_time_ms);
        s.upsert_metric.bind(6, metric.uptime_percent);
        s.upsert_metric.bind(7, info.last_tick_at);
        s.upsert_metric.bind(8, written_at);
        s.upsert_metric.exec();
      }
      txn.commit();
    });
  }

  std::vector<ServiceView> list_services() override {
    return guarded("list_services", [&] {
      auto db = readers_.acquire();
      SQLite::Statement select(*db, std::string("SELECT ") + kServiceColumns +
                                        kViewColumnsAndJoins + " WHERE s.active = 1 ORDER BY s.id");
      std::vector<ServiceView> views;
      while (select.executeStep()) views.push_back(read_view(select));
      return views;
    });
  }

  std::optional<ServiceView> get_service(ServiceId id) override {
    return guarded("get_service", [&]() -> std::optional<ServiceView> {
      auto db = readers_.acquire();
      SQLite::Statement select(
          *db, std::string("SELECT ") + kServiceColumns + kViewColumnsAndJoins + " WHERE s.id = ?");
      select.bind(1, id);
      if (!select.executeStep()) return std::nullopt;
      return read_view(select);
    });
  }

  std::vector<Event> events(ServiceId id, int limit, std::optional<std::int64_t> before) override {
    if (limit <= 0) return {};
    return guarded("events", [&] {
      auto db = readers_.acquire();
      // Two texts rather than "(? IS NULL OR id < ?)", which would hide the range from the index.
      SQLite::Statement select(
          *db, std::string("SELECT id, event, date_started, date_ended, created_at, updated_at"
                           " FROM service_events WHERE service_id = ?1") +
                   (before ? " AND id < ?3" : "") + " ORDER BY id DESC LIMIT ?2");
      select.bind(1, id);
      select.bind(2, limit);
      if (before) select.bind(3, *before);
      std::vector<Event> events;
      while (select.executeStep()) {
        Event event;
        event.id = select.getColumn(0).getInt64();
        event.service_id = id;
        event.kind = require_kind(select.getColumn(1).getString());
        event.date_started = from_unix_ms(select.getColumn(2).getInt64());
        if (!select.isColumnNull(3))
          event.date_ended = from_unix_ms(select.getColumn(3).getInt64());
        event.created_at = from_unix_ms(select.getColumn(4).getInt64());
        event.updated_at = from_unix_ms(select.getColumn(5).getInt64());
        events.push_back(event);
      }
      return events;
    });
  }

  std::vector<Tick> ticks(ServiceId id, const TickQuery& query) override {
    if (query.limit <= 0) return {};
    return guarded("ticks", [&] {
      auto db = readers_.acquire();
      // rowid breaks ties between ticks of the same millisecond (e.g. two regions), newest first.
      SQLite::Statement select(
          *db,
          "SELECT ts, up, status_code, response_ms, error, region FROM service_ticks"
          " WHERE service_id = ? AND ts >= ? AND ts <= ? ORDER BY ts DESC, rowid DESC LIMIT ?");
      select.bind(1, id);
      select.bind(2, query.from ? ms(*query.from) : std::numeric_limits<std::int64_t>::min());
      select.bind(3, query.to ? ms(*query.to) : std::numeric_limits<std::int64_t>::max());
      select.bind(4, query.limit);
      std::vector<Tick> ticks;
      while (select.executeStep()) {
        Tick tick;
        tick.service_id = id;
        tick.ts = from_unix_ms(select.getColumn(0).getInt64());
        tick.up = select.getColumn(1).getInt() != 0;
        if (!select.isColumnNull(2)) tick.status_code = select.getColumn(2).getInt();
        tick.response_ms = select.getColumn(3).getDouble();
        if (!select.isColumnNull(4)) tick.error = select.getColumn(4).getString();
        tick.region = select.getColumn(5).getString();
        ticks.push_back(std::move(tick));
      }
      return ticks;
    });
  }

  bool ping() override {
    try {
      auto db = readers_.acquire();
      // Reads a real table, so a missing or unreadable file fails, unlike "SELECT 1".
      (*db).execAndGet("SELECT COUNT(*) FROM schema_version");
      return true;
    } catch (const std::exception& e) {
      log_warn(std::string("storage: ping failed: ") + e.what());
      return false;
    }
  }

 private:
  const std::string path_;
  std::mutex write_mutex_;  // guards db_ and apply_statements_
  std::unique_ptr<SQLite::Database> db_;
  std::unique_ptr<ApplyStatements> apply_statements_;  // declared after db_: destroyed first
  ReadPool readers_;
};

}  // namespace

std::unique_ptr<Store> open_sqlite_store(const std::string& path) {
  // Read connections open the path again; a private in-memory database cannot be shared.
  if (path.empty() || path == ":memory:")
    throw StorageError("storage: '" + path + "' is not a database file path");
  return std::make_unique<SqliteStore>(path);
}

}  // namespace vigil

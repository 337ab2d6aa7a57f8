#include <SQLiteCpp/SQLiteCpp.h>
#include <sqlite3.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "storage/sqlite/rollup_sql.h"
#include "storage/sqlite/sqlite_codecs.h"
#include "storage/sqlite/sqlite_store.h"

namespace vigil::sqlite {
namespace {

using rollup_sql::from_us;

// A statement stepped through SQLite's C API, for the read whose rows are many (a page of up to
// 1,001 services, ~35 columns each): SQLiteCpp's getColumn() makes a Column holding a
// shared_ptr to the statement per call; without them a page of 1,000 read in 1.60 ms, not 2.06.
// getColumn and isColumnNull mirror SQLite::Statement's, so the row readers take either.
class RawStatement {
 public:
  class Column {
   public:
    Column(sqlite3_stmt* stmt, int index) : stmt_(stmt), index_(index) {}
    std::int64_t getInt64() const { return sqlite3_column_int64(stmt_, index_); }
    int getInt() const { return sqlite3_column_int(stmt_, index_); }
    double getDouble() const { return sqlite3_column_double(stmt_, index_); }
    std::string getString() const {  // as SQLite::Column::getString: NULL reads as ""
      const auto* text = static_cast<const char*>(sqlite3_column_blob(stmt_, index_));
      if (!text) return {};
      return std::string(text, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, index_)));
    }

   private:
    sqlite3_stmt* stmt_;
    int index_;
  };

  RawStatement(SQLite::Database& db, const std::string& sql) : db_(db.getHandle()) {
    sqlite3_stmt* stmt = nullptr;
    const int rc =
        sqlite3_prepare_v2(db_, sql.c_str(), static_cast<int>(sql.size()), &stmt, nullptr);
    stmt_.reset(stmt);
    check(rc);
  }

  void bind(int index, std::int64_t value) { check(sqlite3_bind_int64(stmt_.get(), index, value)); }
  void bind(int index, const std::string& value) {
    check(sqlite3_bind_text(stmt_.get(), index, value.data(), static_cast<int>(value.size()),
                            SQLITE_TRANSIENT));
  }
  // The next row: true while there is one.
  bool executeStep() {
    const int rc = sqlite3_step(stmt_.get());
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw SQLite::Exception(db_, rc);
  }
  Column getColumn(int index) const { return Column(stmt_.get(), index); }
  bool isColumnNull(int index) const {
    return sqlite3_column_type(stmt_.get(), index) == SQLITE_NULL;
  }

 private:
  struct Finalize {
    void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
  };
  void check(int rc) const {
    if (rc != SQLITE_OK) throw SQLite::Exception(db_, rc);
  }

  sqlite3* db_;
  std::unique_ptr<sqlite3_stmt, Finalize> stmt_;
};

// services ⟕ service_metrics ⟕ open event, in one pass: the partial unique index makes the
// open-event join an index lookup, so 10,000 services is one query, not 10,001.
constexpr const char* kViewColumnsAndJoins =
    ", m.tick_count, m.up_count, m.down_count, m.average_response_time_ms, m.uptime_percent,"
    " m.last_tick_at, e.id, e.event, e.date_started, e.created_at, e.updated_at"
    " FROM services s"
    " LEFT JOIN service_metrics m ON m.service_id = s.id"
    " LEFT JOIN service_events e ON e.service_id = s.id AND e.date_ended IS NULL";

template <typename Row>
ServiceView read_view(const Row& row) {
  ServiceView view;
  view.service = column_codecs::read_service(StatementRow(row), 0);
  const int m = column_codecs::kServiceColumnCount;
  if (!row.isColumnNull(m)) {
    view.metric.tick_count = row.getColumn(m + 0).getInt64();
    view.metric.up_count = row.getColumn(m + 1).getInt64();
    view.metric.down_count = row.getColumn(m + 2).getInt64();
    view.metric.average_response_time_ms = row.getColumn(m + 3).getDouble();
    view.metric.uptime_percent = row.getColumn(m + 4).getDouble();
    view.last_tick_at = from_unix_ms(row.getColumn(m + 5).getInt64());
  }
  const int e = m + 6;
  if (!row.isColumnNull(e)) {
    Event event;
    event.id = row.getColumn(e + 0).getInt64();
    event.service_id = view.service.id;
    event.kind = column_codecs::decode_event_kind(row.getColumn(e + 1).getString());
    event.date_started = from_unix_ms(row.getColumn(e + 2).getInt64());
    event.created_at = from_unix_ms(row.getColumn(e + 3).getInt64());
    event.updated_at = from_unix_ms(row.getColumn(e + 4).getInt64());
    view.open_event = event;
  }
  return view;
}

// An event of service `id` from a row of (id, event, date_started, date_ended, created_at,
// updated_at), as the event queries select it.
Event read_event(SQLite::Statement& row, ServiceId id) {
  Event event;
  event.id = row.getColumn(0).getInt64();
  event.service_id = id;
  event.kind = column_codecs::decode_event_kind(row.getColumn(1).getString());
  event.date_started = from_unix_ms(row.getColumn(2).getInt64());
  if (!row.isColumnNull(3)) event.date_ended = from_unix_ms(row.getColumn(3).getInt64());
  event.created_at = from_unix_ms(row.getColumn(4).getInt64());
  event.updated_at = from_unix_ms(row.getColumn(5).getInt64());
  return event;
}

}  // namespace

std::unordered_map<ServiceId, ServiceRuntime> SqliteStore::load_runtime() {
  return guarded("load_runtime", [&] {
    auto db = readers_.acquire();
    SQLite::Statement select(
        *db,
        "SELECT m.service_id, m.tick_count, m.up_count, m.down_count,"
        " m.average_response_time_ms, m.uptime_percent, m.last_tick_at,"
        " e.event, e.date_started,"
        // A heartbeat's newest report, found from its newest tick backwards.
        " CASE WHEN s.kind = 'heartbeat' THEN (SELECT t.ts FROM service_ticks t"
        "   WHERE t.service_id = m.service_id AND t.error IS NOT ?1"
        "   ORDER BY t.ts DESC LIMIT 1) END"
        " FROM service_metrics m"
        " JOIN services s ON s.id = m.service_id"
        " LEFT JOIN service_events e ON e.service_id = m.service_id AND e.date_ended IS NULL");
    select.bind(1, kMissedHeartbeat);
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
        state.open_event_kind = column_codecs::decode_event_kind(select.getColumn(7).getString());
        state.open_event_started = from_unix_ms(select.getColumn(8).getInt64());
      }
      if (!select.isColumnNull(9))
        state.last_beat_at = from_unix_ms(select.getColumn(9).getInt64());
      runtime.emplace(select.getColumn(0).getInt64(), state);
    }
    return runtime;
  });
}

std::vector<ServiceView> SqliteStore::list_services(const ServiceFilter& filter) {
  return guarded("list_services", [&] {
    auto db = readers_.acquire();
    // Each filter adds one condition with its own numbered parameter; one query either way.
    std::string where = " WHERE s.active = 1";
    if (filter.team) where += " AND s.team = ?1";
    if (filter.tag) where += " AND EXISTS (SELECT 1 FROM json_each(s.tags) WHERE value = ?2)";
    // is_stale (storage/store.h) in SQL, with `now` at ?9.
    constexpr const char* kStale =
        "(s.active = 1 AND s.kind <> 'heartbeat' AND ?9 - MAX(COALESCE(m.last_tick_at,"
        " s.updated_at), s.updated_at) > 2 * s.interval_ms + s.timeout_ms)";
    if (filter.status) where += std::string(" AND e.event = ?3 AND NOT ") + kStale;
    if (filter.stale) where += std::string(" AND ") + kStale;
    if (filter.muted) {
      where += std::string(*filter.muted ? " AND " : " AND NOT ") +
               "(s.muted = 1 AND (s.muted_until IS NULL OR s.muted_until > ?4))";
    }
    if (filter.kind) where += " AND s.kind = ?5";
    if (filter.after_id) where += " AND s.id > ?8";
    RawStatement select(*db, std::string("SELECT ") + column_codecs::kServiceColumns +
                                 kViewColumnsAndJoins + where +
                                 " ORDER BY s.id LIMIT ?6 OFFSET ?7");
    if (filter.team) select.bind(1, *filter.team);
    if (filter.tag) select.bind(2, *filter.tag);
    if (filter.status) select.bind(3, std::string(to_string(*filter.status)));
    if (filter.muted) select.bind(4, ms(filter.now));
    if (filter.kind) select.bind(5, std::string(to_string(*filter.kind)));
    select.bind(6, std::int64_t{filter.limit ? *filter.limit : -1});  // -1: no limit
    select.bind(7, std::int64_t{std::max(filter.offset, 0)});
    if (filter.after_id) select.bind(8, std::int64_t{*filter.after_id});
    if (filter.status || filter.stale) select.bind(9, ms(filter.now));
    std::vector<ServiceView> views;
    // A page (the API's largest reads 1,001 rows) fills without regrowing; bounded, since a
    // limit is an upper bound, not a count.
    if (filter.limit) views.reserve(static_cast<std::size_t>(std::clamp(*filter.limit, 0, 1024)));
    while (select.executeStep()) views.push_back(read_view(select));
    return views;
  });
}

std::optional<ServiceView> SqliteStore::get_service(ServiceId id) {
  return guarded("get_service", [&]() -> std::optional<ServiceView> {
    auto db = readers_.acquire();
    SQLite::Statement select(*db, std::string("SELECT ") + column_codecs::kServiceColumns +
                                      kViewColumnsAndJoins + " WHERE s.id = ?");
    select.bind(1, id);
    if (!select.executeStep()) return std::nullopt;
    return read_view(select);
  });
}

std::vector<ServiceFreshness> SqliteStore::freshness() {
  return guarded("freshness", [&] {
    auto db = readers_.acquire();
    SQLite::Statement select(
        *db,
        "SELECT s.id, s.name, s.kind, s.interval_ms, s.timeout_ms, s.updated_at, m.last_tick_at"
        " FROM services s LEFT JOIN service_metrics m ON m.service_id = s.id"
        " WHERE s.active = 1 ORDER BY s.id");
    std::vector<ServiceFreshness> out;
    while (select.executeStep()) {
      ServiceFreshness& f = out.emplace_back();
      f.id = select.getColumn(0).getInt64();
      f.name = select.getColumn(1).getString();
      f.kind = select.getColumn(2).getString() == to_string(ServiceKind::heartbeat)
                   ? ServiceKind::heartbeat
                   : ServiceKind::http;
      f.interval = Millis(select.getColumn(3).getInt64());
      f.timeout = Millis(select.getColumn(4).getInt64());
      f.updated_at = from_unix_ms(select.getColumn(5).getInt64());
      if (!select.isColumnNull(6)) f.last_tick_at = from_unix_ms(select.getColumn(6).getInt64());
    }
    return out;
  });
}

std::vector<Event> SqliteStore::events(ServiceId id, int limit,
                                       std::optional<std::int64_t> before) {
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
      events.push_back(read_event(select, id));
    }
    return events;
  });
}

std::vector<Tick> SqliteStore::ticks(ServiceId id, const TickQuery& query) {
  if (query.limit <= 0) return {};
  return guarded("ticks", [&] {
    auto db = readers_.acquire();
    // seq breaks ties between ticks of the same millisecond (e.g. two regions), newest first,
    // and is the seq of the paging position. With a position, the upper ts bound becomes
    // min(to, position ts), so the key range stays a plain seek; the seq condition only
    // sorts out the ticks of that one ts (any lower ts satisfies it through the OR).
    SQLite::Statement select(
        *db, std::string("SELECT t.ts, t.up, t.status_code, t.response_us, t.error, r.name,"
                         " t.message, t.resolve_us, t.connect_us, t.tls_us, t.processing_us,"
                         " t.transfer_us, t.seq FROM service_ticks t"
                         " LEFT JOIN regions r ON r.id = t.region_id"
                         " WHERE t.service_id = ?1 AND t.ts >= ?2 AND t.ts <= ?3") +
                 (query.before ? " AND (t.ts < ?5 OR t.seq < ?6)" : "") +
                 " ORDER BY t.ts DESC, t.seq DESC LIMIT ?4");
    std::int64_t upper = query.to ? ms(*query.to) : std::numeric_limits<std::int64_t>::max();
    if (query.before) upper = std::min(upper, ms(query.before->ts));
    select.bind(1, id);
    select.bind(2, query.from ? ms(*query.from) : std::numeric_limits<std::int64_t>::min());
    select.bind(3, upper);
    select.bind(4, query.limit);
    if (query.before) {
      select.bind(5, ms(query.before->ts));
      select.bind(6, query.before->seq);
    }
    std::vector<Tick> ticks;
    while (select.executeStep()) {
      Tick tick;
      tick.service_id = id;
      tick.ts = from_unix_ms(select.getColumn(0).getInt64());
      tick.up = select.getColumn(1).getInt() != 0;
      if (!select.isColumnNull(2)) tick.status_code = select.getColumn(2).getInt();
      tick.response_ms = from_us(select.getColumn(3).getInt64());
      if (!select.isColumnNull(4)) tick.error = select.getColumn(4).getString();
      tick.region = select.getColumn(5).getString();
      if (!select.isColumnNull(6)) tick.message = select.getColumn(6).getString();
      tick.phases = read_phases(select, 7);
      tick.seq = select.getColumn(12).getInt64();
      ticks.push_back(std::move(tick));
    }
    return ticks;
  });
}

std::vector<Event> SqliteStore::events_overlapping(ServiceId id, TimePoint from, TimePoint to) {
  return guarded("events_overlapping", [&] {
    auto db = readers_.acquire();
    SQLite::Statement select(*db,
                             "SELECT id, event, date_started, date_ended, created_at, updated_at"
                             " FROM service_events WHERE service_id = ?1 AND date_started < ?3"
                             " AND (date_ended IS NULL OR date_ended > ?2) ORDER BY id");
    select.bind(1, id);
    select.bind(2, ms(from));
    select.bind(3, ms(to));
    std::vector<Event> out;
    while (select.executeStep()) {
      out.push_back(read_event(select, id));
    }
    return out;
  });
}

}  // namespace vigil::sqlite

// SqliteStore: the embedded Store. One write connection (serialised by a mutex, with the hot
// apply() statements prepared once) and a pool of read-only connections, so API threads read
// concurrently from WAL snapshots and never wait for the writer.
#include <SQLiteCpp/SQLiteCpp.h>
#include <sqlite3.h>
#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <limits>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "core/conditions.h"
#include "core/config_error.h"
#include "core/logging.h"
#include "core/model.h"
#include "core/probe_options.h"
#include "storage/rollup_sql.h"
#include "storage/sqlite_schema.h"
#include "storage/store.h"

namespace vigil {
namespace {

// Long enough to ride out the other process's write transaction (vigil runner and vigil api
// share the file), short enough that a wedged lock surfaces as an error.
constexpr int kBusyTimeoutMs = 5000;
// Idle read connections kept open; more are opened on demand and closed when returned.
constexpr std::size_t kMaxIdleReaders = 8;

// SQLite's memory statistics take a global mutex on every allocation, which every connection
// of the process then contends on; vigil never reads them. Must run before SQLite initialises,
// hence at static initialisation.
[[maybe_unused]] const int kMemoryStatisticsOff = sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);

constexpr const char* kFileSource = "file";
// Purge deletes a service's ticks in batches of this many, each its own transaction, so the
// writer never waits behind one huge delete.
constexpr std::size_t kPurgeBatch = 5000;

// ---- encoding of the spec fields that are not plain columns ----

std::string encode_headers(const std::vector<std::pair<std::string, std::string>>& headers) {
  auto array = nlohmann::json::array();
  for (const auto& [name, value] : headers) array.push_back({name, value});
  return array.dump();
}

// Most services have no headers, tags or channels: "[]" skips the JSON parser (GET
// /v1/services decodes three per service).
bool is_empty_array(const std::string& text) { return text == "[]"; }

std::vector<std::pair<std::string, std::string>> decode_headers(const std::string& text) {
  std::vector<std::pair<std::string, std::string>> headers;
  if (is_empty_array(text)) return headers;
  for (const auto& pair : nlohmann::json::parse(text))
    headers.emplace_back(pair.at(0).get<std::string>(), pair.at(1).get<std::string>());
  return headers;
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

// ---- service management ----

std::string encode_tags(const std::vector<std::string>& tags) {
  return nlohmann::json(tags).dump();
}

std::vector<std::string> decode_tags(const std::string& text) {
  if (is_empty_array(text)) return {};
  return nlohmann::json::parse(text).get<std::vector<std::string>>();
}

ServiceKind decode_service_kind(const std::string& text) {
  if (text == "http") return ServiceKind::http;
  if (text == "heartbeat") return ServiceKind::heartbeat;
  throw StorageError("unknown service kind '" + text + "' in services");
}

// A push token: 192 bits from the kernel's CSPRNG, base64url without padding (32 characters),
// so it can sit in a URL path as is.
// 192 random bits, base64url; never starting with '-', which a command line (`vigil beat
// <token>`, curl) would take for an option.
std::string new_push_token() {
  unsigned char bytes[24];
  std::size_t filled = 0;
  while (filled < sizeof bytes || (bytes[0] >> 2) == 62) {  // 62: '-' in the alphabet
    if (filled == sizeof bytes) filled = 0;                 // draw again
    const ssize_t n = ::getrandom(bytes + filled, sizeof bytes - filled, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw StorageError("storage: cannot read random bytes for a push token");
    }
    filled += static_cast<std::size_t>(n);
  }
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string token;
  for (std::size_t i = 0; i < sizeof bytes; i += 3) {
    const unsigned v = unsigned(bytes[i]) << 16 | unsigned(bytes[i + 1]) << 8 | bytes[i + 2];
    for (int shift = 18; shift >= 0; shift -= 6) token += kAlphabet[(v >> shift) & 63];
  }
  return token;
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

// Columns s.id .. s.push_token in this order, starting at `first`.
constexpr const char* kServiceColumns =
    "s.id, s.name, s.url, s.interval_ms, s.timeout_ms, s.method, s.headers, s.expected_status, "
    "s.active, s.created_at, s.updated_at, "
    "s.kind, s.grace_ms, s.threshold, s.team, s.priority, s.runbook, s.tags, s.muted, "
    "s.muted_until, s.source, s.push_token, "
    "s.probe_options, "
    "s.alert_channels, s.repeat_every_ms";
constexpr int kServiceColumnCount = 25;

// ---- probe depth: services.probe_options and the ticks' phase columns ----

ProbeOptions read_probe_options(const std::string& text) {
  try {
    return decode_probe_options(text);
  } catch (const ConfigError& e) {
    throw StorageError(std::string("bad services.probe_options: ") + e.what());
  }
}

using rollup_sql::from_us;
using rollup_sql::to_us;

// Binds the five phase columns at ?first.. (NULL without phases).
void bind_phases(SQLite::Statement& statement, int first, const std::optional<PhaseTimings>& p) {
  if (!p) {
    for (int i = 0; i < 5; ++i) statement.bind(first + i);
    return;
  }
  statement.bind(first + 0, to_us(p->resolve_ms));
  statement.bind(first + 1, to_us(p->connect_ms));
  statement.bind(first + 2, to_us(p->tls_ms));
  statement.bind(first + 3, to_us(p->processing_ms));
  statement.bind(first + 4, to_us(p->transfer_ms));
}

// Reads the five phase columns starting at `first`; NULL resolve_us means no phases.
std::optional<PhaseTimings> read_phases(const SQLite::Statement& row, int first) {
  if (row.isColumnNull(first)) return std::nullopt;
  PhaseTimings p;
  p.resolve_ms = from_us(row.getColumn(first + 0).getInt64());
  p.connect_ms = from_us(row.getColumn(first + 1).getInt64());
  p.tls_ms = from_us(row.getColumn(first + 2).getInt64());
  p.processing_ms = from_us(row.getColumn(first + 3).getInt64());
  p.transfer_ms = from_us(row.getColumn(first + 4).getInt64());
  return p;
}

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

// `Row`: SQLite::Statement or RawStatement.
template <typename Row>
Service read_service(const Row& row, int first) {
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
  // Kind, heartbeat deadline, metadata, source, push token.
  const int m = first + 11;
  service.spec.kind = decode_service_kind(row.getColumn(m + 0).getString());
  service.spec.grace = Millis(row.getColumn(m + 1).getInt64());
  service.spec.threshold = row.getColumn(m + 2).getInt();
  service.spec.team = row.getColumn(m + 3).getString();
  service.spec.priority = row.getColumn(m + 4).getInt();
  service.spec.runbook = row.getColumn(m + 5).getString();
  service.spec.tags = decode_tags(row.getColumn(m + 6).getString());
  service.spec.muted = row.getColumn(m + 7).getInt() != 0;
  if (!row.isColumnNull(m + 8))
    service.spec.muted_until = from_unix_ms(row.getColumn(m + 8).getInt64());
  service.source =
      row.getColumn(m + 9).getString() == "api" ? ServiceSource::api : ServiceSource::file;
  if (!row.isColumnNull(m + 10)) service.push_token = row.getColumn(m + 10).getString();
  service.spec.probe = read_probe_options(row.getColumn(first + 22).getString());
  // Alert routing of the service.
  service.spec.alert_channels = decode_tags(row.getColumn(first + 23).getString());
  if (!row.isColumnNull(first + 24))
    service.spec.repeat_every = Millis(row.getColumn(first + 24).getInt64());
  return service;
}

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
  statement.bind(i++, encode_headers(spec.headers));
  statement.bind(i++, format_status_ranges(spec.expected_status));
  statement.bind(i++, to_string(spec.kind));
  statement.bind(i++, ms(spec.grace));
  statement.bind(i++, spec.threshold);
  statement.bind(i++, spec.team);
  statement.bind(i++, spec.priority);
  statement.bind(i++, spec.runbook);
  statement.bind(i++, encode_tags(spec.tags));
  statement.bind(i++, spec.muted ? 1 : 0);
  if (spec.muted_until)
    statement.bind(i++, ms(*spec.muted_until));
  else
    statement.bind(i++);
  statement.bind(i++, encode_probe_options(spec.probe));
  statement.bind(i++, encode_tags(spec.alert_channels));
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
  view.service = read_service(row, 0);
  const int m = kServiceColumnCount;
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
    event.kind = require_kind(row.getColumn(e + 1).getString());
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
  event.kind = require_kind(row.getColumn(1).getString());
  event.date_started = from_unix_ms(row.getColumn(2).getInt64());
  if (!row.isColumnNull(3)) event.date_ended = from_unix_ms(row.getColumn(3).getInt64());
  event.created_at = from_unix_ms(row.getColumn(4).getInt64());
  event.updated_at = from_unix_ms(row.getColumn(5).getInt64());
  return event;
}

// Runs `body`, turning the library's exceptions into StorageError naming the operation, so
// callers only ever see the one documented exception type.
template <typename Body>
auto guarded(const char* operation, Body&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const ConflictError&) {
    throw;  // its message is for the API client as it is
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
// A summary with its histogram encoded, as summarize_all_recent keeps one per service between
// calls: about 100 bytes where a RollupSummary takes about 700.
struct PackedSummary {
  std::int64_t count = 0;
  std::int64_t up = 0;
  std::int64_t down = 0;
  double sum_ms = 0;
  double min_ms = 0;
  double max_ms = 0;
  std::int64_t phase_count = 0;
  PhaseTimings phase_sums;
  std::string histogram;  // LatencyHistogram::encode()

  static PackedSummary pack(const RollupSummary& s) {
    return {s.count,       s.up,         s.down,
            s.sum_ms,      s.min_ms,     s.max_ms,
            s.phase_count, s.phase_sums, s.histogram.encode()};
  }
  RollupSummary unpack() const {
    RollupSummary s;
    s.count = count;
    s.up = up;
    s.down = down;
    s.sum_ms = sum_ms;
    s.min_ms = min_ms;
    s.max_ms = max_ms;
    s.phase_count = phase_count;
    s.phase_sums = phase_sums;
    s.histogram = LatencyHistogram::decode(histogram.data(), histogram.size());
    return s;
  }
};

// The cached part of one window length of summarize_all_recent or count_all_recent, by service
// id: [from, closed_to), which moves every hour, and within it the whole days [days_from,
// days_to), which move once a day, so an hour's refresh reads only the hours around them.
template <typename Stored>
struct WindowCache {
  std::int64_t from = 0;
  std::int64_t closed_to = 0;
  std::vector<std::pair<ServiceId, Stored>> services;
  std::int64_t days_from = 0;
  std::int64_t days_to = 0;
  std::vector<std::pair<ServiceId, Stored>> days;
};

struct ApplyStatements {
  explicit ApplyStatements(SQLite::Database& db)
      : insert_tick(db,
                    "INSERT INTO service_ticks"
                    "(service_id, ts, up, status_code, response_us, error, region_id, message,"
                    " resolve_us, connect_us, tls_us, processing_us, transfer_us, seq)"
                    " VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT DO NOTHING"),
        next_seq(db,
                 "SELECT COALESCE(MAX(seq), -1) + 1 FROM service_ticks"
                 " WHERE service_id = ?1 AND ts = ?2"),
        insert_region(db, "INSERT INTO regions(name) VALUES(?1) ON CONFLICT DO NOTHING"),
        select_region(db, "SELECT id FROM regions WHERE name = ?1"),
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
  SQLite::Statement next_seq;  // for a second tick of a service in the same millisecond
  SQLite::Statement insert_region;
  SQLite::Statement select_region;
  std::unordered_map<std::string, std::int64_t> region_ids;  // committed regions rows only
  SQLite::Statement close_open_event;
  SQLite::Statement open_event;
  SQLite::Statement upsert_metric;
};

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
    statement.bind(index, new_push_token());
  else
    statement.bind(index);
}

class SqliteStore final : public Store {
 public:
  explicit SqliteStore(const std::string& path) : path_(path), readers_(path) {
    // Two processes (`vigil runner` and `vigil api`) may open a new file at the same moment.
    // Switching to WAL and migrating take locks for which SQLite may answer SQLITE_BUSY without
    // calling the busy handler, so the whole opening is retried until kBusyTimeoutMs.
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(kBusyTimeoutMs);
    for (int attempt = 0;; ++attempt) {
      try {
        open_write_connection();
        return;
      } catch (const StorageError&) {
        throw;
      } catch (const SQLite::Exception& e) {
        const bool busy =
            (e.getErrorCode() & 0xff) == SQLITE_BUSY || (e.getErrorCode() & 0xff) == SQLITE_LOCKED;
        if (!busy || std::chrono::steady_clock::now() >= deadline)
          throw StorageError("storage: cannot open database " + path + ": " + e.what());
        rollup_writer_.reset();
        apply_statements_.reset();
        db_.reset();
        std::this_thread::sleep_for(std::chrono::milliseconds(5 + 5 * std::min(attempt, 9)));
      }
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
          state.open_event_kind = require_kind(select.getColumn(7).getString());
          state.open_event_started = from_unix_ms(select.getColumn(8).getInt64());
        }
        if (!select.isColumnNull(9))
          state.last_beat_at = from_unix_ms(select.getColumn(9).getInt64());
        runtime.emplace(select.getColumn(0).getInt64(), state);
      }
      return runtime;
    });
  }

  void apply(const std::vector<TickRecord>& batch) override {
    if (batch.empty()) return;
    // The records by service, each service's in submission order: inserting in key order walks
    // each B-tree page once per batch instead of once per record. Sorted as compact (id, index)
    // pairs rather than by reaching into the records.
    std::vector<std::pair<ServiceId, std::size_t>> by_service(batch.size());
    for (std::size_t i = 0; i < batch.size(); ++i) by_service[i] = {batch[i].tick.service_id, i};
    std::sort(by_service.begin(), by_service.end());
    // Each service of the batch: the last record carries its metric; the newest ts is its last
    // tick.
    struct Touched {
      ServiceId id;
      std::size_t last_record;
      std::int64_t last_tick_at;
    };
    std::vector<Touched> touched;  // ascending ids, like the keys of every table written
    for (const auto& [id, index] : by_service) {
      const std::int64_t ts = ms(batch[index].tick.ts);
      if (touched.empty() || touched.back().id != id) {
        touched.push_back({id, index, ts});
      } else {
        touched.back().last_record = index;
        touched.back().last_tick_at = std::max(touched.back().last_tick_at, ts);
      }
    }

    std::unordered_set<ServiceId> gone;  // services of the batch that no longer exist
    // Region ids this transaction added: cached once it commits (a rollback takes them back).
    std::unordered_map<std::string, std::int64_t> new_regions;
    std::lock_guard lock(write_mutex_);
    guarded("apply", [&] {
      gone.clear();  // a retried batch starts over
      // The ticks inserted, which the rollups fold in.
      std::vector<const Tick*> inserted;
      inserted.reserve(batch.size());
      auto& s = *apply_statements_;
      new_regions.clear();
      // IMMEDIATE takes the write lock up front (waiting up to busy_timeout for the other
      // process) instead of failing on a read-to-write upgrade halfway through the batch.
      // Its destructor rolls back unless commit() was reached: all or nothing.
      SQLite::Transaction txn(*db_, SQLite::TransactionBehavior::IMMEDIATE);
      for (const auto& [id, index] : by_service) {
        const auto& record = batch[index];
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
        s.insert_tick.bind(5, to_us(tick.response_ms));
        if (tick.error.empty())
          s.insert_tick.bind(6);
        else
          s.insert_tick.bindNoCopy(6, tick.error);
        s.insert_tick.bind(7, region_id(tick.region, new_regions));
        if (tick.message.empty())
          s.insert_tick.bind(8);
        else
          s.insert_tick.bindNoCopy(8, tick.message);
        bind_phases(s.insert_tick, 9, tick.phases);
        s.insert_tick.bind(14, 0);
        if (gone.contains(tick.service_id)) continue;
        try {
          if (s.insert_tick.exec() == 0) {  // the service has a tick of this ms already
            s.next_seq.tryReset();
            s.next_seq.bind(1, tick.service_id);
            s.next_seq.bind(2, ms(tick.ts));
            s.next_seq.executeStep();
            s.insert_tick.tryReset();
            s.insert_tick.bind(14, s.next_seq.getColumn(0).getInt64());
            s.next_seq.tryReset();
            if (s.insert_tick.exec() == 0) throw StorageError("tick key conflict");
          }
        } catch (const SQLite::Exception& e) {
          // The service was purged after the runner produced this tick: skip its records
          // rather than fail (and forever retry) the whole batch.
          if (e.getExtendedErrorCode() != SQLITE_CONSTRAINT_FOREIGNKEY) throw;
          gone.insert(tick.service_id);
          continue;
        }
        inserted.push_back(&tick);

        // The open event ends where the next starts: first those of dropped records, then this
        // record's own.
        const auto start_event = [&](EventKind kind, TimePoint started) {
          s.close_open_event.tryReset();
          s.close_open_event.bind(1, tick.service_id);
          s.close_open_event.bind(2, ms(started));
          s.close_open_event.exec();
          s.open_event.tryReset();
          s.open_event.bind(1, tick.service_id);
          s.open_event.bind(2, to_string(kind));
          s.open_event.bind(3, ms(started));
          s.open_event.exec();
        };
        for (const auto& folded : record.folded_events) start_event(folded.kind, folded.started);
        if (record.opens_event) start_event(*record.opens_event, tick.ts);
      }
      const auto written_at = ms(now_ms());
      for (const auto& info : touched) {
        const ServiceId id = info.id;
        if (gone.contains(id)) continue;
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
      rollup_writer_->write(inserted);  // same transaction as the ticks
      txn.commit();
      rollup_writer_->committed();
      s.region_ids.merge(new_regions);
    });
    if (!gone.empty()) {
      std::size_t skipped = 0;
      for (const auto& record : batch) skipped += gone.contains(record.tick.service_id) ? 1 : 0;
      log_warn("storage: skipped " + std::to_string(skipped) + " tick record(s) of " +
               std::to_string(gone.size()) + " service(s) that no longer exist (purged)");
    }
  }

  std::uint64_t corrupt_rows_rebuilt() override {
    std::lock_guard lock(write_mutex_);
    return rollup_writer_->corrupt_rows_rebuilt();
  }

  using Store::list_services;
  std::vector<ServiceView> list_services(const ServiceFilter& filter) override {
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
      RawStatement select(*db, std::string("SELECT ") + kServiceColumns + kViewColumnsAndJoins +
                                   where + " ORDER BY s.id LIMIT ?6 OFFSET ?7");
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

  std::vector<ServiceFreshness> freshness() override {
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
        events.push_back(read_event(select, id));
      }
      return events;
    });
  }

  std::vector<Tick> ticks(ServiceId id, const TickQuery& query) override {
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

  // ---- service management, heartbeats, retention ----

  Service create_service(const ServiceSpec& spec, TimePoint now) override {
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

  std::optional<Service> update_service(ServiceId id, const ServiceSpec& spec,
                                        TimePoint now) override {
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

  std::optional<Service> edit_service(ServiceId id,
                                      const std::function<ServiceEdit(const Service&)>& edit,
                                      TimePoint now) override {
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

  std::optional<Service> set_service_active(ServiceId id, bool active, TimePoint now) override {
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

  bool purge_service(ServiceId id) override {
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

  std::optional<Service> find_by_push_token(const std::string& token) override {
    if (token.empty()) return std::nullopt;
    return guarded("find_by_push_token", [&]() -> std::optional<Service> {
      auto db = readers_.acquire();
      SQLite::Statement select(*db, std::string("SELECT ") + kServiceColumns +
                                        " FROM services s WHERE s.push_token = ? AND s.active = 1");
      select.bind(1, token);
      if (!select.executeStep()) return std::nullopt;
      return read_service(select, 0);
    });
  }

  std::int64_t services_revision() override {
    return guarded("services_revision", [&] {
      auto db = readers_.acquire();
      return next_revision(*db) - 1;
    });
  }

  ServiceChanges service_changes(std::int64_t after_revision) override {
    return guarded("service_changes", [&] {
      auto db = readers_.acquire();
      // One read transaction: the three reads see the same snapshot.
      SQLite::Transaction snapshot(*db);
      ServiceChanges changes;
      changes.revision = next_revision(*db) - 1;
      if (changes.revision <= after_revision) return changes;
      SQLite::Statement changed(*db, std::string("SELECT ") + kServiceColumns +
                                         " FROM services s WHERE s.revision > ? ORDER BY s.id");
      changed.bind(1, after_revision);
      while (changed.executeStep()) changes.changed.push_back(read_service(changed, 0));
      SQLite::Statement purged(
          *db, "SELECT service_id FROM service_tombstones WHERE revision > ? ORDER BY revision");
      purged.bind(1, after_revision);
      while (purged.executeStep()) changes.purged.push_back(purged.getColumn(0).getInt64());
      return changes;
    });
  }

  BeatQueued enqueue_beat(ServiceId id, const BeatReport& beat) override {
    std::lock_guard lock(write_mutex_);
    return guarded("enqueue_beat", [&] {
      // Ids only grow, and beats are taken oldest first: the id span bounds the queue length
      // with two index lookups instead of a count.
      const std::int64_t span =
          db_->execAndGet("SELECT COALESCE(MAX(id) - MIN(id) + 1, 0) FROM pending_beats")
              .getInt64();
      if (span >= kMaxPendingBeats) return BeatQueued::full;
      SQLite::Statement insert(*db_,
                               "INSERT INTO pending_beats(service_id, at, up, message, duration_ms)"
                               " VALUES(?, ?, ?, ?, ?)");
      insert.bind(1, id);
      insert.bind(2, ms(beat.at));
      insert.bind(3, beat.up ? 1 : 0);
      insert.bind(4, beat.message);
      if (beat.duration_ms)
        insert.bind(5, *beat.duration_ms);
      else
        insert.bind(5);
      try {
        insert.exec();
      } catch (const SQLite::Exception& e) {
        if (e.getExtendedErrorCode() == SQLITE_CONSTRAINT_FOREIGNKEY)
          return BeatQueued::unknown_service;
        throw;
      }
      return BeatQueued::queued;
    });
  }

  std::vector<std::pair<ServiceId, BeatReport>> take_beats(std::size_t max) override {
    std::vector<std::pair<ServiceId, BeatReport>> beats;
    if (max == 0) return beats;
    // Polled every half second by the runner process: a read first, so an empty queue never
    // takes the write lock.
    const bool any = guarded("take_beats", [&] {
      auto db = readers_.acquire();
      return (*db).execAndGet("SELECT EXISTS (SELECT 1 FROM pending_beats)").getInt() != 0;
    });
    if (!any) return beats;
    std::lock_guard lock(write_mutex_);
    return guarded("take_beats", [&] {
      beats.clear();
      SQLite::Transaction txn(*db_, SQLite::TransactionBehavior::IMMEDIATE);
      SQLite::Statement select(*db_,
                               "SELECT id, service_id, at, up, message, duration_ms FROM"
                               " pending_beats ORDER BY id LIMIT ?");
      select.bind(1, static_cast<std::int64_t>(max));
      std::int64_t last_id = 0;
      while (select.executeStep()) {
        last_id = select.getColumn(0).getInt64();
        BeatReport beat;
        beat.at = from_unix_ms(select.getColumn(2).getInt64());
        beat.up = select.getColumn(3).getInt() != 0;
        beat.message = select.getColumn(4).getString();
        if (!select.isColumnNull(5)) beat.duration_ms = select.getColumn(5).getDouble();
        beats.emplace_back(select.getColumn(1).getInt64(), std::move(beat));
      }
      SQLite::Statement erase(*db_, "DELETE FROM pending_beats WHERE id <= ?");
      erase.bind(1, last_id);
      erase.exec();
      txn.commit();
      return beats;
    });
  }

  std::size_t delete_ticks_older_than(TimePoint cutoff, std::optional<TimePoint> lone_cutoff,
                                      std::size_t batch_size) override {
    if (batch_size == 0) return 0;
    std::lock_guard lock(write_mutex_);
    return guarded("delete_ticks_older_than", [&] {
      const std::int64_t all_before = std::min(ms(cutoff), lone_cutoff ? ms(*lone_cutoff) : kNever);
      // Ticks in [lone from, cutoff) go only when their minute has a row. Minute rows are not
      // written for old minutes, so what an earlier cleanup checked needs no second look.
      const std::int64_t lone_from = std::max(all_before, lone_checked_before_);
      std::size_t deleted = 0;
      bool wrapped = retention_cursor_ == 0;
      for (;;) {
        deleted += delete_ticks_from(retention_cursor_, all_before, lone_from, ms(cutoff),
                                     batch_size - deleted);
        if (deleted == batch_size) break;
        // Fewer than asked: every service from the cursor on is clean.
        retention_cursor_ = 0;
        if (wrapped) {
          lone_checked_before_ = std::max(lone_checked_before_, ms(cutoff));
          break;
        }
        wrapped = true;
      }
      return deleted;
    });
  }

  // ---- time series ----

  RollupSummary summarize(ServiceId id, TimePoint from, TimePoint to) override {
    return guarded("summarize", [&] {
      auto db = readers_.acquire();
      SQLite::Transaction snapshot(*db);  // one consistent view across the pieces
      auto all = rollup_sql::summarize(*db, id, ms(from), ms(to));
      const auto it = all.find(id);
      return it == all.end() ? RollupSummary{} : it->second;
    });
  }

  std::map<ServiceId, RollupSummary> summarize_all(TimePoint from, TimePoint to) override {
    return guarded("summarize_all", [&] {
      auto db = readers_.acquire();
      SQLite::Transaction snapshot(*db);
      return rollup_sql::summarize(*db, std::nullopt, ms(from), ms(to));
    });
  }

  RecentSummaries summarize_all_recent(Millis window, TimePoint now) override {
    auto [from, services] = recent<RollupSummary>(
        "summarize_all_recent", window, now, recent_summaries_,
        [](SQLite::Database& db, std::int64_t a, std::int64_t b) {
          return rollup_sql::summarize(db, std::nullopt, a, b);
        },
        [](const RollupSummary& s) { return PackedSummary::pack(s); },
        [](const PackedSummary& p) { return p.unpack(); });
    return {from, std::move(services)};
  }

  RecentCounts count_all_recent(Millis window, TimePoint now) override {
    const auto same = [](const UptimeCounts& c) { return c; };
    auto [from, services] = recent<UptimeCounts>("count_all_recent", window, now, recent_counts_,
                                                 rollup_sql::count_all, same, same);
    return {from, std::move(services)};
  }

  std::vector<std::pair<TimePoint, RollupSummary>> rollups(ServiceId id,
                                                           RollupResolution resolution,
                                                           TimePoint from, TimePoint to) override {
    return guarded("rollups", [&] {
      auto db = readers_.acquire();
      std::vector<std::pair<TimePoint, RollupSummary>> out;
      for (auto& [bucket, summary] : rollup_sql::rows(*db, resolution, id, ms(from), ms(to)))
        out.emplace_back(from_unix_ms(bucket), std::move(summary));
      return out;
    });
  }

  std::vector<Event> events_overlapping(ServiceId id, TimePoint from, TimePoint to) override {
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

  std::size_t delete_rollups_older_than(RollupResolution resolution, TimePoint cutoff,
                                        std::size_t batch_size) override {
    if (batch_size == 0) return 0;
    std::lock_guard lock(write_mutex_);
    return guarded("delete_rollups_older_than", [&] {
      return rollup_sql::delete_older_than(*db_, resolution, ms(cutoff), batch_size);
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
  void open_write_connection() {
    // NOMUTEX: write_mutex_ already serialises every use of this connection.
    db_ = std::make_unique<SQLite::Database>(
        path_, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE | SQLite::OPEN_NOMUTEX, kBusyTimeoutMs);
    const auto mode = db_->execAndGet("PRAGMA journal_mode = WAL").getString();
    if (mode != "wal")
      throw StorageError("cannot enable WAL on " + path_ + " (journal_mode is " + mode + ")");
    // With WAL, NORMAL still survives a process crash with every committed transaction (the
    // WAL is written before COMMIT returns); only an OS crash or power loss may lose the last
    // transactions, never corrupt the file. It saves an fsync per commit.
    db_->exec("PRAGMA synchronous = NORMAL");
    // Each batch dirties pages all over the per-service indexes and rollup tables; letting the
    // WAL grow to 64 MB (16,384 pages, not 1,000) before a checkpoint copies them back writes a
    // hot page once per many commits: measured +30 % ticks/s at 1,000-10,000 services.
    db_->exec("PRAGMA wal_autocheckpoint = 16384");
    db_->exec("PRAGMA foreign_keys = ON");
    sqlite_schema::migrate(*db_, path_);
    apply_statements_ = std::make_unique<ApplyStatements>(*db_);
    rollup_writer_ = std::make_unique<rollup_sql::RollupWriter>(*db_);
  }

  // Service-management helpers; the caller holds write_mutex_ and a transaction on db_.
  static std::optional<Service> read_service_by_id(SQLite::Database& db, ServiceId id) {
    SQLite::Statement select(
        db, std::string("SELECT ") + kServiceColumns + " FROM services s WHERE s.id = ?");
    select.bind(1, id);
    if (!select.executeStep()) return std::nullopt;
    return read_service(select, 0);
  }

  void throw_if_name_taken(const std::string& name, std::optional<ServiceId> except) {
    SQLite::Statement select(*db_, "SELECT id, active FROM services WHERE name = ?");
    select.bind(1, name);
    if (!select.executeStep()) return;
    const ServiceId owner = select.getColumn(0).getInt64();
    if (except && owner == *except) return;
    throw ConflictError("service name \"" + name + "\" is already taken by service " +
                        std::to_string(owner) +
                        (select.getColumn(1).getInt() != 0 ? "" : " (inactive)"));
  }

  // The regions row of `name`, inserted when new. Needs write_mutex_ and apply's transaction;
  // ids it adds go to `added`, cached by apply() once the transaction commits.
  std::int64_t region_id(const std::string& name,
                         std::unordered_map<std::string, std::int64_t>& added) {
    auto& s = *apply_statements_;
    if (const auto it = s.region_ids.find(name); it != s.region_ids.end()) return it->second;
    if (const auto it = added.find(name); it != added.end()) return it->second;
    s.insert_region.tryReset();
    s.insert_region.bind(1, name);
    s.insert_region.exec();
    s.select_region.tryReset();
    s.select_region.bind(1, name);
    if (!s.select_region.executeStep()) throw StorageError("regions row of '" + name + "' missing");
    const std::int64_t id = s.select_region.getColumn(0).getInt64();
    s.select_region.tryReset();
    added.emplace(name, id);
    return id;
  }

  // Retention, one pass over the services with id >= first_service, in id order: deletes up
  // to `limit` ticks with ts < all_before, or with ts in [lone_from, cutoff) whose minute has a
  // row, in one transaction. Moves retention_cursor_ to the last service it deleted from.
  // Needs write_mutex_.
  std::size_t delete_ticks_from(ServiceId first_service, std::int64_t all_before,
                                std::int64_t lone_from, std::int64_t cutoff, std::size_t limit) {
    SQLite::Transaction txn(*db_, SQLite::TransactionBehavior::IMMEDIATE);
    SQLite::Statement services(*db_, "SELECT id FROM services WHERE id >= ?1 ORDER BY id");
    services.bind(1, first_service);
    // Each a seek into one service's key range, deleting in place.
    SQLite::Statement old(*db_,
                          "DELETE FROM service_ticks WHERE (service_id, ts, seq) IN (SELECT"
                          " service_id, ts, seq FROM service_ticks WHERE service_id = ?1"
                          " AND ts < ?2 LIMIT ?3)");
    SQLite::Statement not_lone(
        *db_,
        "DELETE FROM service_ticks WHERE (service_id, ts, seq) IN (SELECT t.service_id, t.ts,"
        " t.seq FROM service_ticks t WHERE t.service_id = ?1 AND t.ts >= ?2 AND t.ts < ?3"
        " AND EXISTS (SELECT 1 FROM service_rollups_minute m"
        " WHERE m.bucket = t.ts - t.ts % 60000 AND m.service_id = t.service_id) LIMIT ?4)");
    std::size_t deleted = 0;
    while (services.executeStep()) {
      const ServiceId id = services.getColumn(0).getInt64();
      old.tryReset();
      old.bind(1, id);
      old.bind(2, all_before);
      old.bind(3, static_cast<std::int64_t>(limit - deleted));
      std::size_t here = static_cast<std::size_t>(old.exec());
      if (deleted + here < limit && lone_from < cutoff) {
        not_lone.tryReset();
        not_lone.bind(1, id);
        not_lone.bind(2, lone_from);
        not_lone.bind(3, cutoff);
        not_lone.bind(4, static_cast<std::int64_t>(limit - deleted - here));
        here += static_cast<std::size_t>(not_lone.exec());
      }
      deleted += here;
      if (here > 0) retention_cursor_ = id;
      if (deleted >= limit) break;
    }
    txn.commit();
    return deleted;
  }

  // The window of summarize_all_recent and count_all_recent (storage/store.h): `read(db, a, b)`
  // gives each service's Value over [a, b); `pack` and `unpack` turn one into what the cache
  // keeps and back.
  template <typename Value, typename Stored, typename Read, typename Pack, typename Unpack>
  std::pair<TimePoint, std::map<ServiceId, Value>> recent(
      const char* operation, Millis window, TimePoint now,
      std::map<std::int64_t, WindowCache<Stored>>& caches, Read&& read, Pack&& pack,
      Unpack&& unpack) {
    const std::int64_t length = window.count();
    return guarded(operation, [&]() -> std::pair<TimePoint, std::map<ServiceId, Value>> {
      auto db = readers_.acquire();
      if (length < rollup_sql::kDayMs) {
        SQLite::Transaction snapshot(*db);
        return {now - window, read(*db, ms(now) - length, ms(now))};
      }
      const std::int64_t from = rollup_sql::floor_to(ms(now) - length, rollup_sql::kHourMs);
      const std::int64_t current_hour = rollup_sql::floor_to(ms(now), rollup_sql::kHourMs);
      // The previous hour stays live too: its last ticks may commit just after it ended.
      const std::int64_t closed_to = std::max(from, current_hour - rollup_sql::kHourMs);
      std::lock_guard lock(recent_mutex_);
      auto& cache = caches[length];
      if (cache.from != from || cache.closed_to != closed_to) {
        SQLite::Transaction snapshot(*db);
        const std::int64_t days_from = rollup_sql::floor_to(from, rollup_sql::kDayMs) +
                                       (from % rollup_sql::kDayMs == 0 ? 0 : rollup_sql::kDayMs);
        const std::int64_t days_to =
            std::max(days_from, rollup_sql::floor_to(closed_to, rollup_sql::kDayMs));
        if (cache.days_from != days_from || cache.days_to != days_to) {
          cache.days.clear();
          for (const auto& [id, value] : read(*db, days_from, days_to))
            cache.days.emplace_back(id, pack(value));
          cache.days_from = days_from;
          cache.days_to = days_to;
        }
        std::map<ServiceId, Value> closed;
        for (const auto& [id, stored] : cache.days) closed.emplace(id, unpack(stored));
        for (const auto& [a, b] : {std::pair{from, std::min(days_from, closed_to)},
                                   std::pair{std::max(days_to, from), closed_to}}) {
          if (a >= b) continue;
          for (const auto& [id, value] : read(*db, a, b)) closed[id].merge(value);
        }
        cache.services.clear();
        for (const auto& [id, value] : closed) cache.services.emplace_back(id, pack(value));
        cache.from = from;
        cache.closed_to = closed_to;
      }
      std::map<ServiceId, Value> out;
      for (const auto& [id, stored] : cache.services) out.emplace(id, unpack(stored));
      // Whole rows up to the end of the current hour: no tick is newer than now.
      for (const auto& [id, value] : read(*db, closed_to, current_hour + rollup_sql::kHourMs))
        out[id].merge(value);
      return {from_unix_ms(from), std::move(out)};
    });
  }

  static constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::min();

  const std::string path_;
  std::mutex write_mutex_;  // guards db_ and apply_statements_
  std::unique_ptr<SQLite::Database> db_;
  std::unique_ptr<ApplyStatements> apply_statements_;  // declared after db_: destroyed first
  // Declared after db_ as well.
  std::unique_ptr<rollup_sql::RollupWriter> rollup_writer_;
  ReadPool readers_;
  // Retention (guarded by write_mutex_): the service the next batch starts from, and below
  // which ts every lone tick was found to have no minute row.
  ServiceId retention_cursor_ = 0;
  std::int64_t lone_checked_before_ = kNever;
  // The closed parts of summarize_all_recent's and count_all_recent's windows, by length in ms
  // (guarded by recent_mutex_).
  std::mutex recent_mutex_;
  std::map<std::int64_t, WindowCache<PackedSummary>> recent_summaries_;
  std::map<std::int64_t, WindowCache<UptimeCounts>> recent_counts_;
};

}  // namespace

std::unique_ptr<Store> open_sqlite_store(const std::string& path) {
  // Read connections open the path again; a private in-memory database cannot be shared.
  if (path.empty() || path == ":memory:")
    throw StorageError("storage: '" + path + "' is not a database file path");
  return std::make_unique<SqliteStore>(path);
}

}  // namespace vigil

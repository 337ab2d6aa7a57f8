// PostgresStore: opening, services (file sync, the write API, revisions, push tokens) and the
// beat queue.
#include <algorithm>
#include <string>
#include <unordered_set>

#include "core/conditions.h"
#include "core/logging.h"
#include "core/probe_options.h"
#include "core/shards.h"
#include "storage/column_codecs.h"
#include "storage/postgres/postgres_store.h"
#include "storage/postgres/schema.h"
#include "storage/postgres/store_impl.h"

namespace vigil {
namespace postgres {
namespace {

constexpr const char* kFileSource = "file";
// Purge deletes a service's ticks in batches of this many, each its own transaction.
constexpr std::int64_t kPurgeBatch = 5000;
// The advisory lock services transactions take ("vigil" + 1 in ASCII).
constexpr const char* kServicesLock = "SELECT pg_advisory_xact_lock(517097515373)";
// Partitions created ahead of time at opening: yesterday (a clock a little behind) to the day
// after tomorrow. Batches create any other day they need.
constexpr std::int64_t kPartitionsBehind = 1;
constexpr std::int64_t kPartitionsAhead = 2;
// The write session's statements (batches, migrations, retention) have no statement_timeout: a
// large one may take long on a busy server. The client's bound only ends a wait on a server that
// stopped answering at all, so the writer retries on a new session rather than hang.
constexpr SessionLimits kWriteLimits{.reply_timeout = std::chrono::seconds(60)};

// The columns a ServiceSpec is stored in (beside name), in the order spec_params gives them.
constexpr const char* kSpecColumns[] = {
    "url",  "interval_ms", "timeout_ms",  "method",        "headers",        "expected_status",
    "kind", "grace_ms",    "threshold",   "team",          "priority",       "runbook",
    "tags", "muted",       "muted_until", "probe_options", "alert_channels", "repeat_every_ms"};
constexpr int kSpecColumnCount = static_cast<int>(std::size(kSpecColumns));

void add_spec_params(Params& params, const ServiceSpec& spec) {
  params.push_back(spec.url);
  params.push_back(text(ms(spec.interval)));
  params.push_back(text(ms(spec.timeout)));
  params.push_back(spec.method);
  params.push_back(column_codecs::encode_headers(spec.headers));
  params.push_back(format_status_ranges(spec.expected_status));
  params.push_back(std::string(to_string(spec.kind)));
  params.push_back(text(ms(spec.grace)));
  params.push_back(text(spec.threshold));
  params.push_back(spec.team);
  params.push_back(text(spec.priority));
  params.push_back(spec.runbook);
  params.push_back(column_codecs::encode_tags(spec.tags));
  params.push_back(text(spec.muted));
  params.push_back(spec.muted_until ? Param(text(ms(*spec.muted_until))) : std::nullopt);
  params.push_back(encode_probe_options(spec.probe));
  params.push_back(column_codecs::encode_tags(spec.alert_channels));
  params.push_back(spec.repeat_every ? Param(text(ms(*spec.repeat_every))) : std::nullopt);
}

Param push_token_param(const ServiceSpec& spec) {
  return spec.kind == ServiceKind::heartbeat ? Param(column_codecs::new_push_token())
                                             : std::nullopt;
}

std::string placeholders(int first, int count) {
  std::string out;
  for (int i = 0; i < count; ++i) out += (i ? ", $" : "$") + std::to_string(first + i);
  return out;
}

// INSERT of an active service: $1 name, $2.. the spec, then push token, revision, time. A new
// service's id is above every id ever given, purged ones included (their tombstones stay).
std::string insert_service_sql(const char* source) {
  std::string columns;
  for (const char* column : kSpecColumns) columns += std::string(", ") + column;
  const int extra = 2 + kSpecColumnCount;
  return "INSERT INTO services(id, name" + columns +
         ", active, source, push_token, revision, created_at, updated_at) VALUES("
         "(SELECT MAX(n) + 1 FROM (SELECT COALESCE(MAX(id), 0) AS n FROM services"
         " UNION ALL SELECT COALESCE(MAX(service_id), 0) FROM service_tombstones) AS ids), $1, " +
         placeholders(2, kSpecColumnCount) + ", true, '" + source + "', $" + std::to_string(extra) +
         "::text, $" + std::to_string(extra + 1) + "::int8, $" + std::to_string(extra + 2) +
         "::int8, $" + std::to_string(extra + 2) + "::int8) RETURNING id";
}

// UPDATE of a service's spec: $1 id, $2.. the spec, then push token, revision, time and name. A
// heartbeat keeps the token it has; other kinds lose it.
std::string update_service_sql(const std::string& also_set) {
  const std::string token = "$" + std::to_string(2 + kSpecColumnCount) + "::text";
  std::string assignments;
  for (int i = 0; i < kSpecColumnCount; ++i)
    assignments += std::string(i ? ", " : "") + kSpecColumns[i] + " = $" + std::to_string(2 + i);
  return "UPDATE services SET " + assignments + ", push_token = CASE WHEN " + token +
         " IS NULL THEN NULL ELSE COALESCE(push_token, " + token + ") END, revision = $" +
         std::to_string(3 + kSpecColumnCount) + "::int8, updated_at = $" +
         std::to_string(4 + kSpecColumnCount) + "::int8, name = $" +
         std::to_string(5 + kSpecColumnCount) + also_set + " WHERE id = $1::int8";
}

// A unique violation on a service's name, raced past throw_if_name_taken by another process.
[[noreturn]] void throw_conflict(const PgError& e, const std::string& name) {
  if (e.sqlstate() == "23505")
    throw ConflictError("service name \"" + name + "\" is already taken");
  throw e;
}

}  // namespace

Event read_event(const Result& r, int row, ServiceId id) {
  Event event;
  event.id = int_at(r, row, 0);
  event.service_id = id;
  event.kind = column_codecs::decode_event_kind(text_at(r, row, 1));
  event.date_started = from_unix_ms(int_at(r, row, 2));
  if (!null_at(r, row, 3)) event.date_ended = from_unix_ms(int_at(r, row, 3));
  event.created_at = from_unix_ms(int_at(r, row, 4));
  event.updated_at = from_unix_ms(int_at(r, row, 5));
  return event;
}

PostgresStore::PostgresStore(std::string conninfo)
    : conninfo_(std::move(conninfo)), writes_(conninfo_, kWriteLimits), readers_(conninfo_) {
  Session* session = nullptr;
  try {
    session = &writes_.get();
  } catch (const PgError& e) {
    throw StorageError(std::string("storage: cannot open the PostgreSQL database: ") + e.what());
  }
  name_ = "(" + writes_.description() + ")";
  guarded("opening", [&] {
    postgres_schema::migrate(*session, name_);
    partition_days_ = postgres_schema::partition_days(*session);
    const std::int64_t today = postgres_schema::partition_day(to_unix_ms(now_ms()));
    std::set<std::int64_t> days;
    for (std::int64_t day = today - kPartitionsBehind; day <= today + kPartitionsAhead; ++day)
      days.insert(day);
    ensure_partitions(*session, days);
  });
}

PostgresStore::ApiWrite::ApiWrite(PostgresStore& store)
    : store_(store), lock_(store.write_mutex_, std::defer_lock) {
  if (!lock_.try_lock_for(kApiWriteWait)) {
    throw StorageUnavailable("the write connection to the database " + store_.name_ +
                             " stayed busy for " + std::to_string(kApiWriteWait.count()) +
                             " ms (the server is slow or does not answer)");
  }
  try {
    store_.writes_.tighten(SessionLimits::answering_within(SessionPool::kStatementTimeout));
  } catch (...) {
    store_.writes_.relax();  // the destructor does not run for a constructor that throws
    throw;
  }
}

Session& PostgresStore::writer() { return writes_.get(); }

Session& PostgresStore::begin_writing(std::optional<Transaction>& txn) {
  return writes_.begin(txn);
}

void PostgresStore::lock_services(Session& session) { session.exec(kServicesLock); }

std::int64_t PostgresStore::next_revision(Session& session) {
  return int_at(session.run("SELECT COALESCE(MAX(r), 0) + 1 FROM (SELECT MAX(revision) AS r FROM"
                            " services UNION ALL SELECT MAX(revision) FROM service_tombstones)"
                            " AS revisions"),
                0, 0);
}

std::optional<Service> PostgresStore::read_service_by_id(Session& session, ServiceId id,
                                                         bool for_update) {
  const auto r =
      session.run(std::string("SELECT ") + column_codecs::kServiceColumns +
                      " FROM services s WHERE s.id = $1" + (for_update ? " FOR UPDATE" : ""),
                  {text(id)});
  if (r.rows() == 0) return std::nullopt;
  return column_codecs::read_service(ResultRow(r, 0), 0);
}

void PostgresStore::throw_if_name_taken(Session& session, const std::string& name,
                                        std::optional<ServiceId> except) {
  const auto r = session.run("SELECT id, active FROM services WHERE name = $1", {name});
  if (r.rows() == 0) return;
  const ServiceId owner = int_at(r, 0, 0);
  if (except && owner == *except) return;
  throw ConflictError("service name \"" + name + "\" is already taken by service " +
                      std::to_string(owner) + (bool_at(r, 0, 1) ? "" : " (inactive)"));
}

SyncResult PostgresStore::sync_services(const std::vector<ServiceSpec>& specs, TimePoint now) {
  std::unordered_set<std::string> wanted;
  for (const auto& spec : specs)
    if (!wanted.insert(spec.name).second)
      throw StorageError("storage: sync_services: duplicate service name '" + spec.name + "'");

  std::lock_guard lock(write_mutex_);
  return guarded("sync_services", [&] {
    std::optional<Transaction> txn;
    Session& session = begin_writing(txn);
    lock_services(session);
    struct Stored {
      Service service;
      std::string source;
    };
    std::vector<Stored> stored;
    std::unordered_map<std::string, std::size_t> by_name;
    const auto rows = session.run(std::string("SELECT ") + column_codecs::kServiceColumns +
                                  ", s.source FROM services s ORDER BY s.id");
    for (int row = 0; row < rows.rows(); ++row) {
      stored.push_back({column_codecs::read_service(ResultRow(rows, row), 0),
                        text_at(rows, row, column_codecs::kServiceColumnCount)});
      by_name.emplace(stored.back().service.spec.name, stored.size() - 1);
    }
    const std::int64_t revision = next_revision(session);
    SyncResult result;
    for (const auto& spec : specs) {
      const auto found = by_name.find(spec.name);
      if (found == by_name.end()) {
        Params params{spec.name};
        add_spec_params(params, spec);
        params.push_back(push_token_param(spec));
        params.push_back(text(revision));
        params.push_back(text(ms(now)));
        session.run(insert_service_sql(kFileSource), params);
        result.inserted.push_back(spec.name);
        continue;
      }
      const auto& row = stored[found->second];
      if (row.source != kFileSource) {
        log_warn("storage: service '" + spec.name + "' in the services file is ignored: " +
                 "a service of that name is managed by " + row.source);
        continue;
      }
      if (!row.service.active || row.service.spec != spec) {
        Params params{text(row.service.id)};
        add_spec_params(params, spec);
        params.push_back(push_token_param(spec));
        params.push_back(text(revision));
        params.push_back(text(ms(now)));
        params.push_back(spec.name);
        session.run(update_service_sql(", active = true"), params);
        result.updated.push_back(spec.name);
      }
    }
    for (const auto& row : stored) {
      if (row.source != kFileSource || !row.service.active) continue;
      if (wanted.contains(row.service.spec.name)) continue;
      session.run(
          "UPDATE services SET active = false, revision = $3, updated_at = $2 WHERE id = $1",
          {text(row.service.id), text(ms(now)), text(revision)});
      result.deactivated.push_back(row.service.spec.name);
    }
    txn->commit();
    return result;
  });
}

Service PostgresStore::create_service(const ServiceSpec& spec, TimePoint now) {
  return guarded("create_service", [&] {
    ApiWrite write(*this);
    std::optional<Transaction> txn;
    Session& session = begin_writing(txn);
    lock_services(session);
    throw_if_name_taken(session, spec.name, std::nullopt);
    Params params{spec.name};
    add_spec_params(params, spec);
    params.push_back(push_token_param(spec));
    params.push_back(text(next_revision(session)));
    params.push_back(text(ms(now)));
    ServiceId id = 0;
    try {
      id = int_at(session.run(insert_service_sql("api"), params), 0, 0);
    } catch (const PgError& e) {
      throw_conflict(e, spec.name);
    }
    auto created = read_service_by_id(session, id, false);
    txn->commit();
    return *created;
  });
}

std::optional<Service> PostgresStore::update_service(ServiceId id, const ServiceSpec& spec,
                                                     TimePoint now) {
  return guarded("update_service", [&]() -> std::optional<Service> {
    ApiWrite write(*this);
    std::optional<Transaction> txn;
    Session& session = begin_writing(txn);
    lock_services(session);
    if (!read_service_by_id(session, id, true)) return std::nullopt;
    throw_if_name_taken(session, spec.name, id);
    Params params{text(id)};
    add_spec_params(params, spec);
    params.push_back(push_token_param(spec));
    params.push_back(text(next_revision(session)));
    params.push_back(text(ms(now)));
    params.push_back(spec.name);
    try {
      session.run(update_service_sql(""), params);
    } catch (const PgError& e) {
      throw_conflict(e, spec.name);
    }
    auto updated = read_service_by_id(session, id, false);
    txn->commit();
    return updated;
  });
}

std::optional<Service> PostgresStore::edit_service(
    ServiceId id, const std::function<ServiceEdit(const Service&)>& edit, TimePoint now) {
  return guarded("edit_service", [&]() -> std::optional<Service> {
    ApiWrite write(*this);
    std::optional<Transaction> txn;
    Session& session = begin_writing(txn);
    lock_services(session);
    // FOR UPDATE: another process's edit of this row waits until this one commits, then reads
    // its result.
    auto current = read_service_by_id(session, id, true);
    if (!current) return std::nullopt;
    const ServiceEdit edited = edit(*current);
    if (edited.spec == current->spec && edited.active == current->active) return current;
    throw_if_name_taken(session, edited.spec.name, id);
    Params params{text(id)};
    add_spec_params(params, edited.spec);
    params.push_back(push_token_param(edited.spec));
    params.push_back(text(next_revision(session)));
    params.push_back(text(ms(now)));
    params.push_back(edited.spec.name);
    params.push_back(text(edited.active));
    try {
      session.run(
          update_service_sql(", active = $" + std::to_string(6 + kSpecColumnCount) + "::boolean"),
          params);
    } catch (const PgError& e) {
      throw_conflict(e, edited.spec.name);
    }
    auto updated = read_service_by_id(session, id, false);
    txn->commit();
    return updated;
  });
}

std::optional<Service> PostgresStore::set_service_active(ServiceId id, bool active, TimePoint now) {
  return guarded("set_service_active", [&]() -> std::optional<Service> {
    ApiWrite write(*this);
    std::optional<Transaction> txn;
    Session& session = begin_writing(txn);
    lock_services(session);
    const auto r =
        session.run("UPDATE services SET active = $2, revision = $3, updated_at = $4 WHERE id = $1",
                    {text(id), text(active), text(next_revision(session)), text(ms(now))});
    if (r.affected_rows() == 0) return std::nullopt;
    auto changed = read_service_by_id(session, id, false);
    txn->commit();
    return changed;
  });
}

bool PostgresStore::purge_service(ServiceId id) {
  // The history goes first, in short transactions, so the writer is never held up for long;
  // the service row (and what the cascade finds left) goes last, with its tombstone.
  for (;;) {
    const auto deleted = guarded("purge_service", [&] {
      ApiWrite write(*this);
      return writer()
          .run(
              "DELETE FROM service_ticks WHERE (service_id, ts, seq) IN (SELECT service_id, ts,"
              " seq FROM service_ticks WHERE service_id = $1 LIMIT $2)",
              {text(id), text(kPurgeBatch)})
          .affected_rows();
    });
    if (deleted < kPurgeBatch) break;
  }
  return guarded("purge_service", [&] {
    ApiWrite write(*this);
    std::optional<Transaction> txn;
    Session& session = begin_writing(txn);
    lock_services(session);
    // Taken while the row still counts: once it is gone, the newest revision may be its own,
    // which a follower has already seen.
    const std::int64_t revision = next_revision(session);
    if (session.run("DELETE FROM services WHERE id = $1", {text(id)}).affected_rows() == 0)
      return false;
    // Ticks have no foreign key (its check cost a batch more than the ticks' own insert): those
    // a batch committed since the loop above go here. A batch holds a KEY SHARE lock on its
    // services' rows until it commits, so the DELETE above waited for it, and later batches
    // find the row gone and skip the service.
    session.run("DELETE FROM service_ticks WHERE service_id = $1", {text(id)});
    session.run("INSERT INTO service_tombstones(revision, service_id) VALUES($1, $2)",
                {text(revision), text(id)});
    txn->commit();
    return true;
  });
}

std::optional<Service> PostgresStore::find_by_push_token(const std::string& token) {
  if (token.empty()) return std::nullopt;
  return reading("find_by_push_token", [&](Session& session) -> std::optional<Service> {
    const auto r = session.run(std::string("SELECT ") + column_codecs::kServiceColumns +
                                   " FROM services s WHERE s.push_token = $1 AND s.active",
                               {token});
    if (r.rows() == 0) return std::nullopt;
    return column_codecs::read_service(ResultRow(r, 0), 0);
  });
}

std::int64_t PostgresStore::services_revision() {
  return reading("services_revision", [&](Session& session) { return next_revision(session) - 1; });
}

ServiceChanges PostgresStore::service_changes(std::int64_t after_revision) {
  return reading("service_changes", [&](Session& session) {
    // One snapshot for the three reads.
    Transaction snapshot(session.connection());
    session.exec("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY");
    ServiceChanges changes;
    changes.revision = next_revision(session) - 1;
    if (changes.revision <= after_revision) return changes;
    const auto changed = session.run(std::string("SELECT ") + column_codecs::kServiceColumns +
                                         " FROM services s WHERE s.revision > $1 ORDER BY s.id",
                                     {text(after_revision)});
    for (int row = 0; row < changed.rows(); ++row)
      changes.changed.push_back(column_codecs::read_service(ResultRow(changed, row), 0));
    const auto purged = session.run(
        "SELECT service_id FROM service_tombstones WHERE revision > $1 ORDER BY revision",
        {text(after_revision)});
    for (int row = 0; row < purged.rows(); ++row) changes.purged.push_back(int_at(purged, row, 0));
    snapshot.commit();
    return changes;
  });
}

Store::BeatQueued PostgresStore::enqueue_beat(ServiceId id, const BeatReport& beat) {
  return guarded("enqueue_beat", [&] {
    ApiWrite write(*this);
    Session& session = writer();
    // Ids only grow, and beats are taken oldest first: the id span bounds the queue length
    // with two index lookups instead of a count.
    const std::int64_t span =
        int_at(session.run("SELECT COALESCE(MAX(id) - MIN(id) + 1, 0) FROM pending_beats"), 0, 0);
    if (span >= kMaxPendingBeats) return BeatQueued::full;
    try {
      session.run(
          "INSERT INTO pending_beats(service_id, at, up, message, duration_ms)"
          " VALUES($1, $2, $3, $4, $5)",
          {text(id), text(ms(beat.at)), text(beat.up), without_nul(beat.message),
           beat.duration_ms ? Param(text(*beat.duration_ms)) : std::nullopt});
    } catch (const PgError& e) {
      if (e.sqlstate() == "23503") return BeatQueued::unknown_service;  // foreign key
      throw;
    }
    return BeatQueued::queued;
  });
}

std::vector<Store::QueuedBeat> PostgresStore::claim_beats(
    const std::string& claimant, std::size_t max, const std::optional<std::vector<int>>& shards) {
  std::vector<QueuedBeat> beats;
  if (max == 0 || (shards && shards->empty())) return beats;
  const Param shard_list = shard_array(shards);
  // Unclaimed, or claimed by a cluster member whose lease ran out (it died before it stored
  // them), and of the shards asked for.
  const std::string claimable =
      " (claimed_by IS NULL OR EXISTS (SELECT 1 FROM cluster_members m"
      " WHERE m.name = pending_beats.claimed_by AND m.lease_until < now()))"
      " AND " +
      in_shards("service_id", 1);
  // Polled every half second by the runner process: a read first, so an empty queue never
  // takes the write lock.
  const bool any = reading("claim_beats", [&](Session& session) {
    return bool_at(session.run("SELECT EXISTS (SELECT 1 FROM pending_beats WHERE" + claimable + ")",
                               {shard_list}),
                   0, 0);
  });
  if (!any) return beats;
  std::lock_guard lock(write_mutex_);
  return guarded("claim_beats", [&] {
    beats.clear();
    // One statement: the beats claimed are those this call marked, whoever else claims at once.
    const auto r = writer().run(
        "UPDATE pending_beats SET claimed_by = $2 WHERE id IN (SELECT id FROM pending_beats"
        " WHERE" +
            claimable +
            " ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED)"
            " RETURNING id, service_id, at, up, message, duration_ms",
        {shard_list, claimant, text(static_cast<std::int64_t>(max))});
    for (int row = 0; row < r.rows(); ++row) {
      QueuedBeat queued;
      queued.id = int_at(r, row, 0);
      queued.service_id = int_at(r, row, 1);
      queued.beat.at = from_unix_ms(int_at(r, row, 2));
      queued.beat.up = bool_at(r, row, 3);
      queued.beat.message = text_at(r, row, 4);
      if (!null_at(r, row, 5)) queued.beat.duration_ms = double_at(r, row, 5);
      beats.push_back(std::move(queued));
    }
    // RETURNING gives no order.
    std::ranges::sort(beats, {}, &QueuedBeat::id);
    return beats;
  });
}

Param shard_array(const std::optional<std::vector<int>>& shards) {
  if (!shards) return std::nullopt;
  ArrayText list;
  for (const int shard : *shards) list.add(shard);
  return list.str();
}

std::string in_shards(std::string_view expression, int parameter) {
  const std::string array = "$" + std::to_string(parameter) + "::int[]";
  return "(" + array + " IS NULL OR (" + std::string(expression) + ") % " +
         std::to_string(kShardCount) + " = ANY(" + array + "))";
}

void PostgresStore::release_beats(const std::string& claimant) {
  std::lock_guard lock(write_mutex_);
  guarded("release_beats", [&] {
    writer().run("UPDATE pending_beats SET claimed_by = NULL WHERE claimed_by = $1", {claimant});
  });
}

void PostgresStore::unclaim_beats(const std::vector<std::int64_t>& ids) {
  for_each_queued_beat("unclaim_beats",
                       "UPDATE pending_beats SET claimed_by = NULL WHERE id = ANY($1::int8[])",
                       ids);
}

void PostgresStore::discard_beats(const std::vector<std::int64_t>& ids) {
  for_each_queued_beat("discard_beats", "DELETE FROM pending_beats WHERE id = ANY($1::int8[])",
                       ids);
}

void PostgresStore::for_each_queued_beat(const char* operation, const std::string& sql,
                                         const std::vector<std::int64_t>& ids) {
  if (ids.empty()) return;
  ArrayText id_array;
  for (const std::int64_t id : ids) id_array.add(id);
  std::lock_guard lock(write_mutex_);
  guarded(operation, [&] { writer().run(sql, {id_array.str()}); });
}

}  // namespace postgres

std::unique_ptr<Store> open_postgres_store(const std::string& conninfo) {
  return std::make_unique<postgres::PostgresStore>(conninfo);
}

int postgres_schema_version() { return postgres_schema::current_version(); }

}  // namespace vigil

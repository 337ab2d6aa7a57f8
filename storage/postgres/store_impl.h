// PostgresStore, the class behind open_postgres_store, shared by the files that implement it by
// concern: services.cpp (services, push tokens, revisions, beats), apply.cpp (batches of
// ticks), reads.cpp (the API's reads and the time series), retention.cpp (partitions and
// deletes). Internal to storage/postgres/.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "storage/postgres/rollups.h"
#include "storage/postgres/session.h"
#include "storage/recent_window.h"
#include "storage/retention.h"
#include "storage/store.h"
#include "storage/stored_row.h"

namespace vigil::postgres {

// Runs `body`, turning the library's exceptions into StorageError naming the operation, so
// callers only ever see the documented exception types.
template <typename Body>
auto guarded(const char* operation, Body&& body) -> decltype(body());

class PostgresStore final : public Store {
 public:
  explicit PostgresStore(std::string conninfo);

  SyncResult sync_services(const std::vector<ServiceSpec>& specs, TimePoint now) override;
  std::vector<Service> active_services() override;
  std::unordered_map<ServiceId, ServiceRuntime> load_runtime() override;
  void apply(const std::vector<TickRecord>& batch) override;
  using Store::list_services;
  std::vector<ServiceView> list_services(const ServiceFilter& filter) override;
  std::optional<ServiceView> get_service(ServiceId id) override;
  std::vector<ServiceFreshness> freshness() override;
  std::vector<Event> events(ServiceId id, int limit, std::optional<std::int64_t> before) override;
  std::vector<Tick> ticks(ServiceId id, const TickQuery& query) override;
  std::optional<std::string> ping_failure() override;
  std::uint64_t corrupt_rows_rebuilt() override;
  Service create_service(const ServiceSpec& spec, TimePoint now) override;
  std::optional<Service> update_service(ServiceId id, const ServiceSpec& spec,
                                        TimePoint now) override;
  std::optional<Service> edit_service(ServiceId id,
                                      const std::function<ServiceEdit(const Service&)>& edit,
                                      TimePoint now) override;
  std::optional<Service> set_service_active(ServiceId id, bool active, TimePoint now) override;
  bool purge_service(ServiceId id) override;
  std::optional<Service> find_by_push_token(const std::string& token) override;
  std::int64_t services_revision() override;
  ServiceChanges service_changes(std::int64_t after_revision) override;
  BeatQueued enqueue_beat(ServiceId id, const BeatReport& beat) override;
  std::vector<QueuedBeat> claim_beats(const std::string& claimant, std::size_t max,
                                      const std::optional<std::vector<int>>& shards) override;
  void release_beats(const std::string& claimant) override;
  void unclaim_beats(const std::vector<std::int64_t>& ids) override;
  void discard_beats(const std::vector<std::int64_t>& ids) override;
  std::size_t delete_ticks_older_than(TimePoint cutoff, std::optional<TimePoint> lone_cutoff,
                                      std::size_t batch_size) override;
  RollupSummary summarize(ServiceId id, TimePoint from, TimePoint to) override;
  std::map<ServiceId, RollupSummary> summarize_all(TimePoint from, TimePoint to) override;
  RecentSummaries summarize_all_recent(Millis window, TimePoint now) override;
  RecentCounts count_all_recent(Millis window, TimePoint now) override;
  std::vector<std::pair<TimePoint, RollupSummary>> rollups(ServiceId id,
                                                           RollupResolution resolution,
                                                           TimePoint from, TimePoint to) override;
  std::vector<Event> events_overlapping(ServiceId id, TimePoint from, TimePoint to) override;
  std::size_t delete_rollups_older_than(RollupResolution resolution, TimePoint cutoff,
                                        std::size_t batch_size) override;

 private:
  // Runs `sql` ($1: an int8[] of queued beats' ids) on `ids`, in one statement.
  void for_each_queued_beat(const char* operation, const std::string& sql,
                            const std::vector<std::int64_t>& ids);
  // The write session for a call the API waits on (services, pushed beats), for as long as it
  // lives: the write mutex is waited for at most kApiWriteWait (store.h; the writer may
  // hold it with a batch, or be waiting on a server that stopped answering), and the session's
  // statements are bounded as a read's are (SessionLimits::answering_within) until it ends. So
  // a slow or stuck server fails the call with StorageUnavailable within seconds instead of
  // holding the API's thread. Throws StorageUnavailable when the mutex stays taken, PgError as
  // SessionHolder::tighten; make it inside guarded().
  class ApiWrite {
   public:
    explicit ApiWrite(PostgresStore& store);
    ~ApiWrite() { store_.writes_.relax(); }
    ApiWrite(const ApiWrite&) = delete;
    ApiWrite& operator=(const ApiWrite&) = delete;

   private:
    PostgresStore& store_;
    std::unique_lock<std::timed_mutex> lock_;
  };

  // The write session (SessionHolder::get). Needs write_mutex_.
  Session& writer();
  // BEGIN on the write session (SessionHolder::begin). Needs write_mutex_.
  Session& begin_writing(std::optional<Transaction>& txn);
  // Runs `body(session)` on a read session as guarded(operation, ...) does. When it fails
  // because that session's connection was lost (an idle one the server ended), it runs once
  // more on a new one: reads change nothing, so a second try is always safe.
  template <typename Body>
  auto reading(const char* operation, Body&& body) -> decltype(body(std::declval<Session&>()));
  // Services transactions take this advisory lock first, so two processes writing services
  // compute distinct revisions, as SQLite's IMMEDIATE transactions do. Needs a transaction.
  void lock_services(Session& session);
  std::int64_t next_revision(Session& session);
  std::optional<Service> read_service_by_id(Session& session, ServiceId id, bool for_update);
  void throw_if_name_taken(Session& session, const std::string& name,
                           std::optional<ServiceId> except);
  // The regions row of `name`, inserted when new; ids it adds go to `added`. Needs write_mutex_
  // and apply's transaction.
  std::int64_t region_id(Session& session, const std::string& name,
                         std::unordered_map<std::string, std::int64_t>& added);
  // Creates the partitions of `days` that are missing (each in its own statement, outside any
  // batch transaction). Needs write_mutex_.
  void ensure_partitions(Session& session, const std::set<std::int64_t>& days);
  // Retention by rows: the pass over the services (TickRetentionWalk::DeleteFrom,
  // storage/retention.h) on `session`. Needs write_mutex_.
  TickRetentionWalk::Deleted delete_ticks_from(Session& session, ServiceId first_service,
                                               std::int64_t all_before, std::int64_t lone_from,
                                               std::int64_t cutoff, std::size_t limit);

  template <typename Value, typename Stored, typename Read, typename Pack, typename Unpack>
  std::pair<TimePoint, std::map<ServiceId, Value>> recent(
      const char* operation, Millis window, TimePoint now,
      std::map<std::int64_t, WindowCache<Stored>>& caches, Read&& read, Pack&& pack,
      Unpack&& unpack);

  static constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::min();

  const std::string conninfo_;
  std::string name_;              // host, port, database and user: for messages, never the password
  std::timed_mutex write_mutex_;  // guards everything below up to readers_
  SessionHolder writes_;
  std::unordered_map<std::string, std::int64_t> region_ids_;  // committed regions rows only
  std::set<std::int64_t> partition_days_;                     // partitions known to exist
  postgres_rollups::Writer rollup_writer_;
  TickRetentionWalk tick_retention_;
  SessionPool readers_;
  std::mutex recent_mutex_;
  std::map<std::int64_t, WindowCache<PackedSummary>> recent_summaries_;
  std::map<std::int64_t, WindowCache<UptimeCounts>> recent_counts_;
};

template <typename Body>
auto guarded(const char* operation, Body&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const ConflictError&) {
    throw;  // its message is for the API client as it is
  } catch (const StorageUnavailable& e) {
    throw StorageUnavailable(std::string("storage: ") + operation + ": " + e.what());
  } catch (const StorageError& e) {
    throw StorageError(std::string("storage: ") + operation + ": " + e.what());
  } catch (const PgError& e) {
    if (e.unavailable())
      throw StorageUnavailable(std::string("storage: ") + operation + ": " + e.what());
    throw StorageError(std::string("storage: ") + operation + ": " + e.what());
  } catch (const std::out_of_range& e) {
    throw StorageError(std::string("storage: ") + operation + ": " + e.what());
  } catch (const nlohmann::json::exception& e) {
    throw StorageError(std::string("storage: ") + operation + ": bad JSON: " + e.what());
  }
}

template <typename Body>
auto PostgresStore::reading(const char* operation, Body&& body)
    -> decltype(body(std::declval<Session&>())) {
  return guarded(operation, [&]() -> decltype(body(std::declval<Session&>())) {
    for (int attempt = 0;; ++attempt) {
      auto session = readers_.acquire();
      try {
        return body(*session);
      } catch (const PgError& e) {
        // The server's answer, a new session's failure, or a server that does not answer (and
        // would not answer a second try either).
        if (attempt > 0 || session->ok() || e.fault() == PgFault::no_answer) throw;
        readers_.discard_idle();
      }
    }
  });
}

// A row of a result as the readers every backend shares take it (storage/stored_row.h).
class ResultRow final : public StoredRow {
 public:
  ResultRow(const Result& rows, int row) : rows_(rows), row_(row) {}
  bool is_null(int column) const override { return null_at(rows_, row_, column); }
  std::int64_t integer(int column) const override { return int_at(rows_, row_, column); }
  bool boolean(int column) const override { return bool_at(rows_, row_, column); }
  std::string text(int column) const override { return text_at(rows_, row_, column); }

 private:
  const Result& rows_;
  int row_;
};

// An event of service `id` from (id, event, date_started, date_ended, created_at, updated_at).
Event read_event(const Result& result, int row, ServiceId id);

inline std::int64_t ms(TimePoint t) { return to_unix_ms(t); }
inline std::int64_t ms(Millis d) { return d.count(); }

// A cluster member's shards (core/shards.h) as an int[] parameter; NULL, for every shard,
// without them.
Param shard_array(const std::optional<std::vector<int>>& shards);
// "(NULL parameter, or the shard of `expression` is in it)": `parameter` is the $n of a
// shard_array.
std::string in_shards(std::string_view expression, int parameter);

}  // namespace vigil::postgres

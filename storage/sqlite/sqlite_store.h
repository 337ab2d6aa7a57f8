// SqliteStore: the embedded Store. One write connection (serialised by a mutex, with the hot
// apply() statements prepared once) and a pool of read-only connections, so API threads read
// concurrently from WAL snapshots and never wait for the writer. Internal to the SQLite
// backend: the rest of vigil opens it through open_sqlite_store (storage/sqlite/sqlite_database.h).
//
// Its methods live in one file per concern: sqlite_store.cpp (opening, ping),
// sqlite_store_services.cpp (the services table and its revisions), sqlite_store_apply.cpp (the
// writer's batches), sqlite_store_reads.cpp (services with their metric and event, events,
// ticks), sqlite_store_series.cpp (rollup reads), sqlite_store_beats.cpp (the queue of pushed
// beats), sqlite_store_retention.cpp.
#pragma once

#include <SQLiteCpp/SQLiteCpp.h>

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/model.h"
#include "storage/recent_window.h"
#include "storage/retention.h"
#include "storage/rollups.h"
#include "storage/sqlite/rollup_sql.h"
#include "storage/sqlite/sqlite_checkpointer.h"
#include "storage/sqlite/sqlite_connection.h"
#include "storage/store.h"

namespace vigil::sqlite {

// apply()'s statements, compiled once: apply runs for every batch the writer commits. Each use
// starts with tryReset(): a statement whose last step threw keeps that error, and reset() would
// rethrow it.
struct ApplyStatements {
  explicit ApplyStatements(SQLite::Database& db);

  SQLite::Statement insert_tick;
  SQLite::Statement next_seq;  // for a second tick of a service in the same millisecond
  SQLite::Statement insert_region;
  SQLite::Statement select_region;
  std::unordered_map<std::string, std::int64_t> region_ids;  // committed regions rows only
  SQLite::Statement close_open_event;
  SQLite::Statement open_event;
  SQLite::Statement upsert_metric;
  SQLite::Statement delete_queued_beat;
};

class SqliteStore final : public Store {
 public:
  // Opens the write connection (creating and migrating the file), retrying while another
  // process holds the locks that opening needs. Throws StorageError.
  explicit SqliteStore(const std::string& path);

  SyncResult sync_services(const std::vector<ServiceSpec>& specs, TimePoint now) override;
  std::vector<Service> active_services() override;
  std::unordered_map<ServiceId, ServiceRuntime> load_runtime() override;
  void apply(const std::vector<TickRecord>& batch) override;
  std::uint64_t corrupt_rows_rebuilt() override;
  using Store::list_services;
  std::vector<ServiceView> list_services(const ServiceFilter& filter) override;
  std::optional<ServiceView> get_service(ServiceId id) override;
  std::vector<ServiceFreshness> freshness() override;
  std::vector<Event> events(ServiceId id, int limit, std::optional<std::int64_t> before) override;
  std::vector<Tick> ticks(ServiceId id, const TickQuery& query) override;
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
  std::optional<std::string> ping_failure() override;

 private:
  // Runs `sql` (one ? for a queued beat's id) for each of `ids`, in one transaction.
  void for_each_queued_beat(const char* operation, const char* sql,
                            const std::vector<std::int64_t>& ids);
  // Opens db_ (connect_for_writing) and prepares apply()'s statements on it.
  void open_write_connection();

  // Service-management helpers; the caller holds write_mutex_ and a transaction on db_.
  static std::optional<Service> read_service_by_id(SQLite::Database& db, ServiceId id);
  // Throws ConflictError when a service other than `except` has `name`.
  void throw_if_name_taken(const std::string& name, std::optional<ServiceId> except);

  // The regions row of `name`, inserted when new. Needs write_mutex_ and apply's transaction;
  // ids it adds go to `added`, cached by apply() once the transaction commits.
  std::int64_t region_id(const std::string& name,
                         std::unordered_map<std::string, std::int64_t>& added);

  // Retention's pass over the services (TickRetentionWalk::DeleteFrom, storage/retention.h).
  // Needs write_mutex_.
  TickRetentionWalk::Deleted delete_ticks_from(ServiceId first_service, std::int64_t all_before,
                                               std::int64_t lone_from, std::int64_t cutoff,
                                               std::size_t limit);

  // The window of summarize_all_recent and count_all_recent (storage/store.h): `read(db, a, b)`
  // gives each service's Value over [a, b); `pack` and `unpack` turn one into what the cache
  // keeps and back.
  template <typename Value, typename Stored, typename Read, typename Pack, typename Unpack>
  std::pair<TimePoint, std::map<ServiceId, Value>> recent(
      const char* operation, Millis window, TimePoint now,
      std::map<std::int64_t, WindowCache<Stored>>& caches, Read&& read, Pack&& pack,
      Unpack&& unpack);

  const std::string path_;
  std::mutex write_mutex_;  // guards db_ and apply_statements_
  std::unique_ptr<SQLite::Database> db_;
  std::unique_ptr<ApplyStatements> apply_statements_;  // declared after db_: destroyed first
  // Declared after db_ as well.
  std::unique_ptr<rollup_sql::RollupWriter> rollup_writer_;
  // Declared after db_ as well: it hooks db_'s commits.
  std::unique_ptr<Checkpointer> checkpointer_;
  ReadPool readers_;
  TickRetentionWalk tick_retention_;  // guarded by write_mutex_
  // The closed parts of summarize_all_recent's and count_all_recent's windows, by length in ms
  // (guarded by recent_mutex_).
  std::mutex recent_mutex_;
  std::map<std::int64_t, WindowCache<PackedSummary>> recent_summaries_;
  std::map<std::int64_t, WindowCache<UptimeCounts>> recent_counts_;
};

}  // namespace vigil::sqlite

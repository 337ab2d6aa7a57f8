// Store: every operation the runner and the API need on services, ticks, metrics, events,
// rollups and the queue of pushed beats, and nothing about SQL. A backend implements it
// (storage/sqlite/, storage/postgres/) and opens it through its Database (storage/database.h);
// runner/, alerting/ and api/ know only this contract.
//
// Thread-safety: every method may be called from any thread, concurrently. Each write (a method
// that changes anything) is one transaction, atomic: all of it is committed or none. A read sees
// committed writes only, and one read is consistent within itself (one snapshot); reads must not
// wait for a write in progress.
//
// Errors: a method that cannot reach or use the database throws StorageError (ConflictError
// where said; StorageUnavailable when the database cannot be reached or does not answer in
// time); nothing of a failed write is committed. An unknown service id is not an error:
// each method says what it returns for one.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/model.h"
#include "storage/rollups.h"

namespace vigil {

class StorageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The database cannot be reached or did not answer in time (a database server gone, restarting,
// stuck, or a lock held elsewhere past the statement's bound): the same call may succeed later.
// The API answers 503.
class StorageUnavailable : public StorageError {
 public:
  using StorageError::StorageError;
};

// How long a request the API answers waits for storage before it gives up with
// StorageUnavailable (503): for the write connection while the writer holds it with a batch or
// a stuck server holds it (PostgreSQL), and for a pushed beat's tick to be committed by the
// writer (`vigil run`). Well under a client's usual timeout, long enough to ride out a slow
// commit.
inline constexpr std::chrono::milliseconds kApiWriteWait{5000};

// A write would give a service a name another service already has (the API answers 409).
class ConflictError : public StorageError {
 public:
  using StorageError::StorageError;
};

// What sync_services did, by service name.
struct SyncResult {
  std::vector<std::string> inserted;
  std::vector<std::string> updated;
  std::vector<std::string> deactivated;
};

// A service with what the API shows next to it.
struct ServiceView {
  Service service;
  Metric metric;                          // zeros before the first tick
  std::optional<Event> open_event;        // current_status; empty before the first tick
  std::optional<TimePoint> last_tick_at;  // the newest stored tick's ts; empty before the first
};

// Freshness. A probed (non-heartbeat) active service is stale when it has had no tick for
// longer than stale_after(its spec): two intervals (a probe missed, and the next one late) plus
// one timeout (the probe in flight). Counted from its last tick, or from its last change
// (created, edited, reactivated: service.updated_at) when that is later, since the runner
// schedules a changed service's next probe afresh. Exactly at the bound it is not yet stale.
// Heartbeats are never stale: their own deadline turns them down. `now` is the caller's clock.
inline Millis stale_after(Millis interval, Millis timeout) { return 2 * interval + timeout; }
inline bool is_stale(ServiceKind kind, Millis interval, Millis timeout, TimePoint updated_at,
                     std::optional<TimePoint> last_tick_at, TimePoint now) {
  if (kind == ServiceKind::heartbeat) return false;
  const TimePoint since = last_tick_at ? std::max(*last_tick_at, updated_at) : updated_at;
  return now - since > stale_after(interval, timeout);
}
inline bool is_stale(const ServiceView& view, TimePoint now) {
  const Service& s = view.service;
  return s.active && is_stale(s.spec.kind, s.spec.interval, s.spec.timeout, s.updated_at,
                              view.last_tick_at, now);
}

// What /metrics needs of an active service to show its freshness, without the rest of its row.
struct ServiceFreshness {
  ServiceId id = 0;
  std::string name;
  ServiceKind kind = ServiceKind::http;
  Millis interval{0};
  Millis timeout{0};
  TimePoint updated_at;
  std::optional<TimePoint> last_tick_at;
  bool stale_at(TimePoint now) const {
    return is_stale(kind, interval, timeout, updated_at, last_tick_at, now);
  }
};

// Which active services list_services returns (the filters combine) and which page of them.
// Every member has an initializer, so designated initializers may name only what they set.
struct ServiceFilter {
  std::optional<std::string> team{};
  std::optional<std::string> tag{};
  // uptime: the open event is uptime ("up"); downtime: "down"; either way not stale at `now`.
  std::optional<EventKind> status{};
  bool stale = false;  // true: only services stale at `now` (is_stale), whatever their event
  std::optional<bool> muted{};  // muted at `now` (a snooze that ran out is not muted)
  std::optional<ServiceKind> kind{};
  TimePoint now{};             // for `muted`, `status` and `stale`
  std::optional<int> limit{};  // every match when empty
  int offset = 0;
  std::optional<ServiceId> after_id{};  // keyset paging: only services with a greater id
};

// What changed in the services table after a revision, so that a runner process follows the
// writes of another (API) process.
struct ServiceChanges {
  std::vector<Service> changed;   // created, updated, deactivated or reactivated (see .active)
  std::vector<ServiceId> purged;  // deleted with their history
  std::int64_t revision = 0;      // the revision these reach: pass it to the next call
};

// Where a page of ticks starts: strictly after (older than) the tick at `ts` with `seq`.
struct TickPosition {
  TimePoint ts;
  std::int64_t seq = 0;  // Tick::seq
};

struct TickQuery {
  std::optional<TimePoint> from;  // inclusive
  std::optional<TimePoint> to;    // inclusive
  int limit = 100;
  std::optional<TickPosition> before{};  // keyset paging: only ticks after it, newest first
};

class Store {
 public:
  virtual ~Store() = default;

  // Makes the active set of services equal to `specs`, matched by name: new names are inserted,
  // changed specs updated, stored services whose name is absent are marked inactive (their
  // history is kept). A previously inactive service that reappears is reactivated.
  virtual SyncResult sync_services(const std::vector<ServiceSpec>& specs, TimePoint now) = 0;

  // Active services, ordered by id. Throws StorageError on a row that does not decode.
  virtual std::vector<Service> active_services() = 0;

  // The runner's starting state for each service that has ticks, keyed by id: its metric and
  // its open event. Services never probed are absent.
  virtual std::unordered_map<ServiceId, ServiceRuntime> load_runtime() = 0;

  // Writes a batch in one transaction: the ticks, each service's metric after its last tick in
  // the batch, and the event changes (for a record with opens_event: the open event of that
  // service gets date_ended = tick.ts, and a new open event of that kind starts at tick.ts; its
  // folded_events, each the same at its own start, come first); and removes the queued beats
  // the records stored (TickRecord::queued_beat).
  // Either all of it is committed or none of it (StorageError).
  virtual void apply(const std::vector<TickRecord>& batch) = 0;

  // API reads. Active services only for lists, ordered by id, in one query; get_service also
  // finds inactive ones (empty for an unknown id).
  virtual std::vector<ServiceView> list_services(const ServiceFilter& filter) = 0;
  std::vector<ServiceView> list_services() { return list_services(ServiceFilter{}); }
  virtual std::optional<ServiceView> get_service(ServiceId id) = 0;
  // Every active service's freshness inputs, ordered by id, in one query.
  virtual std::vector<ServiceFreshness> freshness() = 0;

  // Events of a service, newest first, at most `limit` (none when limit <= 0); with `before`,
  // only events whose id is smaller. Empty for an unknown id.
  virtual std::vector<Event> events(ServiceId id, int limit,
                                    std::optional<std::int64_t> before) = 0;

  // Ticks of a service within [from, to] (and after `before`), newest first: by ts, then by
  // seq (the insertion order of ticks with the same ts), both descending. Each has its seq set.
  // At most query.limit (none when it is <= 0); empty for an unknown id.
  virtual std::vector<Tick> ticks(ServiceId id, const TickQuery& query) = 0;

  // Nothing when a trivial read of the database succeeds (used by /healthz); otherwise why it
  // failed, naming the database (a file's path; a server's host, port, database and user, never
  // its password), also logged. Never throws.
  virtual std::optional<std::string> ping_failure() = 0;

  // Rollup rows that apply() found corrupt (an hour or day row whose histogram does not decode)
  // and rebuilt from the ticks of their period, since the store was opened. Such a row costs no
  // batch: the rest of it is written as usual.
  virtual std::uint64_t corrupt_rows_rebuilt() = 0;

  // ---- service management, heartbeats, retention ----

  // Inserts an active service owned by the API. A heartbeat gets a fresh random push token
  // (192 bits, base64url). Returns the stored row. Throws ConflictError when any service,
  // active or not, has that name.
  virtual Service create_service(const ServiceSpec& spec, TimePoint now) = 0;
  // Replaces the spec of service `id`, whatever its source or state. Empty when there is no
  // such service; ConflictError when another service has the new name. A kind change gives a
  // heartbeat a push token and takes it from a probed service.
  virtual std::optional<Service> update_service(ServiceId id, const ServiceSpec& spec,
                                                TimePoint now) = 0;
  // What edit_service writes back: the whole spec, and whether the service is active.
  struct ServiceEdit {
    ServiceSpec spec;
    bool active = true;
  };
  // A read-modify-write of service `id` in one write transaction: reads its row, calls
  // `edit(row)` and writes what it returns (the revision grows only when something changed), so
  // two concurrent edits of one service each start from the other's result and neither is lost.
  // Returns the stored row; empty when there is no such service (`edit` is not called).
  // Whatever `edit` throws propagates as it is and nothing is written. ConflictError when
  // another service has the new name. `edit` runs on the calling thread while this store's write
  // lock is held: it must be quick and must not call the store.
  virtual std::optional<Service> edit_service(
      ServiceId id, const std::function<ServiceEdit(const Service&)>& edit, TimePoint now) = 0;
  // Deactivates (history kept) or reactivates service `id`. Empty when there is no such service.
  virtual std::optional<Service> set_service_active(ServiceId id, bool active, TimePoint now) = 0;
  // Deletes service `id` with its ticks, metric and events. False when there was none. Ticks of
  // it that reach apply() afterwards are skipped, not an error.
  virtual bool purge_service(ServiceId id) = 0;
  // The active heartbeat whose push token is `token`; empty for any other token.
  virtual std::optional<Service> find_by_push_token(const std::string& token) = 0;

  // The revision of the services table: it grows with every transaction that writes services
  // (sync_services included). service_changes(r) lists what changed after revision r.
  virtual std::int64_t services_revision() = 0;
  virtual ServiceChanges service_changes(std::int64_t after_revision) = 0;

  // A beat pushed to a `vigil api` process, kept until the runner process has stored its tick.
  // At most kMaxPendingBeats wait: past that no runner process is storing them (full).
  enum class BeatQueued { queued, unknown_service, full };
  static constexpr std::int64_t kMaxPendingBeats = 100'000;
  virtual BeatQueued enqueue_beat(ServiceId id, const BeatReport& beat) = 0;
  // Claims for `claimant` (a runner process: its cluster member name, config's instance_name) up
  // to `max` queued beats that no live runner process has claimed, oldest first, in one
  // transaction: each is handed to one runner process only. With `shards`, only beats of
  // services in those shards (core/shards.h): a cluster member takes the beats of the heartbeats
  // it watches and leaves the others for their watchers. A claim by a cluster member whose lease
  // ran out (storage/cluster.h; PostgreSQL) counts as none. A claimed beat stays queued until the
  // apply() that stores its tick removes it (TickRecord::queued_beat) or discard_beats does, so a
  // runner process that dies first loses none: its next start gives them back (release_beats).
  struct QueuedBeat {
    std::int64_t id = 0;  // TickRecord::queued_beat
    ServiceId service_id = 0;
    BeatReport beat;
  };
  virtual std::vector<QueuedBeat> claim_beats(
      const std::string& claimant, std::size_t max,
      const std::optional<std::vector<int>>& shards = std::nullopt) = 0;
  // Gives back every beat `claimant` has claimed, to be claimed again: for a runner process
  // starting, whose previous run may have stopped before it stored them.
  virtual void release_beats(const std::string& claimant) = 0;
  // Gives back the queued beats `ids` (claimed, not stored), to be claimed again: their
  // heartbeats' shards went to another member since they were claimed.
  virtual void unclaim_beats(const std::vector<std::int64_t>& ids) = 0;
  // Removes queued beats that became no tick (their service is no longer a heartbeat).
  virtual void discard_beats(const std::vector<std::int64_t>& ids) = 0;

  // Retention: deletes up to `batch_size` ticks with ts < cutoff in one short transaction, so
  // the writer never waits long behind it, service by service. Returns how many it deleted
  // (fewer than batch_size: none is left). Metrics and events stay, and so does every minute's
  // rollup until `lone_cutoff` (the minute retention; forever when empty): a backend that keeps
  // a minute's only tick as that minute's rollup keeps such a tick until then.
  virtual std::size_t delete_ticks_older_than(TimePoint cutoff,
                                              std::optional<TimePoint> lone_cutoff,
                                              std::size_t batch_size) = 0;

  // ---- time series: rollups written by apply(), read for any window ----

  // What the ticks of service `id` with ts in [from, to) said (count 0 when none): whole days
  // from day rollups, whole hours around them from hour rollups, whole minutes around those
  // from minute rollups (or their single tick), raw ticks at the edges.
  // Exact for counts and sums, percentiles within the histogram's bound, as long as the rows a
  // window needs are still retained.
  virtual RollupSummary summarize(ServiceId id, TimePoint from, TimePoint to) = 0;
  // The same for every service with ticks in the window, keyed by id, at a cost that does not
  // grow with one read per service.
  virtual std::map<ServiceId, RollupSummary> summarize_all(TimePoint from, TimePoint to) = 0;
  // Every service's summary over the last `window` before `now`, for the many-services views
  // (GET /v1/uptime, vigil_service_uptime_ratio). A window shorter than a day is exact,
  // [now - window, now]. A longer one starts at the UTC hour that contains now - window (up
  // to an hour more than asked, never less) and is made of whole rollups. Called often with the
  // same window (every scrape of /metrics): a backend may keep what ended over an hour ago until
  // the hour changes. `from` is where the window started.
  struct RecentSummaries {
    TimePoint from;
    std::map<ServiceId, RollupSummary> services;
  };
  virtual RecentSummaries summarize_all_recent(Millis window, TimePoint now) = 0;
  // The same window, counting only ticks and up ticks: for views that show no latency
  // (vigil_service_uptime_ratio), in a small part of the memory.
  struct RecentCounts {
    TimePoint from;
    std::map<ServiceId, UptimeCounts> services;
  };
  virtual RecentCounts count_all_recent(Millis window, TimePoint now) = 0;
  // Periods of service `id` that start in [from, to) and had ticks, oldest first, with their
  // summaries; empty for an unknown id.
  virtual std::vector<std::pair<TimePoint, RollupSummary>> rollups(ServiceId id,
                                                                   RollupResolution resolution,
                                                                   TimePoint from,
                                                                   TimePoint to) = 0;
  // Events of service `id` that overlap [from, to) (open ones included), oldest first.
  virtual std::vector<Event> events_overlapping(ServiceId id, TimePoint from, TimePoint to) = 0;
  // Retention: deletes up to `batch_size` rollups of `resolution` whose period starts before
  // `cutoff`, in one short transaction. Returns how many it deleted.
  virtual std::size_t delete_rollups_older_than(RollupResolution resolution, TimePoint cutoff,
                                                std::size_t batch_size) = 0;
};

}  // namespace vigil

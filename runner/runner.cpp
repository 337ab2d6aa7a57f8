#include "runner/runner.h"

#include <algorithm>
#include <bit>
#include <future>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <unordered_set>
#include <variant>

#include "core/logging.h"
#include "core/shards.h"
#include "runner/heartbeat.h"
#include "runner/probe_multi.h"
#include "runner/runner_metrics.h"
#include "runner/scheduler.h"
#include "runner/state_machine.h"

namespace vigil {

namespace {

using namespace std::chrono_literals;

// The loop wakes at least this often, so last_alive() proves it is not stuck.
constexpr auto kMaxSleep = 1000ms;

struct UpsertCommand {
  Service service;
};
struct RemoveCommand {
  ServiceId id;
};
struct BeatCommand {
  ServiceId id;
  BeatReport beat;
  CommitPromise stored;  // resolved with the beat's tick, or ignored with the beat
  std::optional<std::int64_t> queued_beat;  // TickRecord::queued_beat
};
struct AssignCommand {
  ShardAssignment assignment;
  std::promise<void> applied;
};
using Command = std::variant<UpsertCommand, RemoveCommand, BeatCommand, AssignCommand>;

static_assert(kShardCount <= 64, "a shard set is one 64-bit mask");

std::uint64_t mask_of(const std::vector<int>& shards) {
  std::uint64_t mask = 0;
  for (const int shard : shards)
    if (shard >= 0 && shard < kShardCount) mask |= std::uint64_t{1} << shard;
  return mask;
}

bool in_mask(std::uint64_t mask, ServiceId id) { return (mask >> shard_of(id)) & 1U; }

// Far enough for any heartbeat deadline, near enough that steady_clock (ns) cannot overflow.
constexpr Millis kFarestDeadline{50LL * 365 * 24 * 3600 * 1000};

std::chrono::nanoseconds interval_of(const ServiceSpec& spec) {
  // A zero interval would make the scheduler spin on one service.
  return std::max<std::chrono::nanoseconds>(spec.interval, 1ms);
}

// Whether a change of spec changes what a probe does (and so an in-flight probe is stale).
bool probe_changed(const ServiceSpec& a, const ServiceSpec& b) {
  return a.url != b.url || a.method != b.method || a.headers != b.headers ||
         a.timeout != b.timeout || a.expected_status != b.expected_status ||
         a.probe != b.probe;  // probe depth: conditions, TLS, TCP, thresholds
}

// Probe depth: the spec's failure/success thresholds for the state machine.
Thresholds thresholds_of(const ServiceSpec& spec) {
  return {spec.probe.failure_threshold, spec.probe.success_threshold};
}

}  // namespace

class Runner::Loop {
 public:
  std::shared_ptr<prometheus::Collectable> service_series() const {
    return metrics_.service_series();
  }
  Loop(RunnerOptions options, TickSink sink, prometheus::Registry& registry)
      : options_(std::move(options)),
        wall_(std::move(options_.clock.wall)),
        steady_(std::move(options_.clock.steady)),
        sink_(std::move(sink)),
        metrics_(registry) {
    options_.max_concurrency = std::max<std::size_t>(options_.max_concurrency, 1);
  }

  ~Loop() {
    stop();
    // Only reached with probes in flight when start() was never called or the thread died;
    // curl wants every easy handle out of the multi before curl_multi_cleanup.
    for (auto& [id, entry] : services_) abandon(entry);
  }

  void start(std::vector<Service> services, std::unordered_map<ServiceId, ServiceRuntime> runtime) {
    std::lock_guard lock(lifecycle_mutex_);
    if (started_) throw std::logic_error("Runner::start called twice");
    started_ = true;
    // The thread does not exist yet, so this thread may still build its state.
    read_clock();
    const auto now = now_steady_;
    // Stored state is kept like a deactivated service's: each active service takes its own back
    // in upsert() (a heartbeat's deadline then follows from its stored last report), the others
    // keep theirs for a reactivation.
    kept_ = std::move(runtime);
    for (auto& service : services) upsert(std::move(service), now);
    last_alive_ms_ = to_unix_ms(now_wall_);
    thread_ = std::thread([this] { run(); });
  }

  void enqueue(Command command) {
    {
      std::lock_guard lock(commands_mutex_);
      commands_.push_back(std::move(command));
      metrics_.queue_depth.Set(double(commands_.size()));
    }
    multi_.wakeup();
  }

  void wake() { multi_.wakeup(); }

  void stop() {
    std::lock_guard lock(lifecycle_mutex_);
    {
      std::lock_guard commands_lock(commands_mutex_);
      stop_requested_ = true;
    }
    if (thread_.joinable()) {
      multi_.wakeup();
      thread_.join();
    }
  }

  TimePoint last_alive() const { return from_unix_ms(last_alive_ms_.load()); }
  std::size_t in_flight() const { return in_flight_count_.load(); }
  bool sharded() const { return options_.sharded; }
  std::vector<int> shards() const {
    const std::uint64_t mask = options_.sharded ? owned_mask_.load() : ~std::uint64_t{0};
    std::vector<int> owned;
    for (int shard = 0; shard < kShardCount; ++shard)
      if ((mask >> shard) & 1U) owned.push_back(shard);
    return owned;
  }
  bool probes(ServiceId id) const { return !options_.sharded || in_mask(owned_mask_.load(), id); }

 private:
  // A probe multi_ is running. The owning Entry holds it, so abandoning or finishing it is one
  // place.
  struct InFlight : RunningProbe {
    InFlight(ServiceId id, std::unique_ptr<Probe> made, TimePoint at)
        : RunningProbe{made.get()}, service(id), owned(std::move(made)), started(at) {}
    ServiceId service;
    std::unique_ptr<Probe> owned;  // RunningProbe::probe
    TimePoint started;             // wall clock, becomes tick.ts
  };

  // Everything the runner keeps per service, kept small for 100,000 services.
  struct Entry {
    ServiceSpec spec;
    ServiceRuntime runtime;
    std::uint64_t generation = 0;  // the heap entry carrying this value is the live one
    SteadyTime next_due;           // the slot that heap entry holds
    std::unique_ptr<InFlight> in_flight;
    ServiceMetrics metrics;
    // Heartbeats: when silence gives the next down tick. Reports move it later
    // without touching the heap; the heap entry, when it pops early, is pushed again.
    SteadyTime deadline;
    TimePoint created_at;  // the deadline's base until the first report
    TimePoint resumed_at;  // its last reactivation: no heartbeat deadline is based before it
  };

  void run() {
    for (;;) {
      // One iteration's exception (a bug, memory) costs that iteration, not the process: the
      // thread is every service's monitor.
      try {
        if (!iterate()) break;
      } catch (const std::exception& e) {
        metrics_.errors.Increment();
        log_error(std::string("runner: error in the probe loop (probing goes on): ") + e.what());
        std::this_thread::sleep_for(10ms);  // do not spin on a persistent error
      } catch (...) {
        metrics_.errors.Increment();
        log_error("runner: unknown error in the probe loop (probing goes on)");
        std::this_thread::sleep_for(10ms);
      }
    }
    log_info("runner: stopped");
  }

  // Reads both clocks as one instant: read again (a few times at most) when the wall clock
  // moved past a millisecond, or an injected clock was advanced, between the two readings.
  void read_clock() {
    for (int attempt = 0; attempt < 3; ++attempt) {
      now_wall_ = wall_();
      now_steady_ = steady_();
      if (wall_() == now_wall_) return;
    }
  }

  // One round of the loop; false once stopping is done.
  bool iterate() {
    // The time first, then the commands: a command queued before the clock reached T is applied
    // before anything due at T happens (a test that moves its clock relies on it).
    read_clock();
    const TimePoint wall = now_wall_;
    const SteadyTime now = now_steady_;
    if (apply_commands() && !drain_deadline_) {
      drain_deadline_ = std::chrono::steady_clock::now() + options_.drain_timeout;
      log_info("runner: stopping; waiting for " + std::to_string(in_flight_count_.load()) +
               " probes in flight (at most " + std::to_string(options_.drain_timeout.count()) +
               " ms)");
    }
    const bool draining = drain_deadline_.has_value();
    if (options_.sharded && owned_mask_.load() != 0 &&
        std::chrono::steady_clock::now() >= lease_until_) {
      // Nobody renewed the shards' lease in time (the database is unreachable, or whoever
      // renews is stuck): another member may own them once the lease expires, so stop now.
      log_warn("runner: shard lease ran out before it was renewed; probing nothing until it is");
      own_shards(0, {});
    }
    if (!draining) {
      fire_missed_heartbeats(now, wall);
      start_due_probes(now, wall);
    }
    // Everything due at `wall` has started (see Runner::last_alive).
    last_alive_ms_ = to_unix_ms(wall);
    const CURLMcode performed = multi_.perform(finished_);
    if (performed != CURLM_OK) {
      log_error(std::string("runner: curl_multi_perform: ") + curl_multi_strerror(performed));
    }
    if (draining) {
      if (in_flight_count_ == 0) return false;
      if (std::chrono::steady_clock::now() >= *drain_deadline_) {
        abort_in_flight();
        return false;
      }
    }

    const CURLMcode polled = multi_.poll(poll_timeout());
    if (polled != CURLM_OK) {
      log_error(std::string("runner: curl_multi_poll: ") + curl_multi_strerror(polled));
      std::this_thread::sleep_for(10ms);  // do not spin on a persistent error
    }
    read_clock();  // the poll may have slept a while
    multi_.advance(finished_);
    return true;
  }

  // The drain bound passed: the probes still running are dropped. Nothing is recorded for them,
  // since nothing was measured (a down tick would be a false outage at every restart).
  void abort_in_flight() {
    const std::size_t aborted = in_flight_count_.load();
    for (auto& [id, entry] : services_) abandon(entry);
    log_warn("runner: " + std::to_string(aborted) + " probes still in flight after " +
             std::to_string(options_.drain_timeout.count()) +
             " ms aborted at shutdown; nothing recorded for them");
  }

  // Applies queued commands; returns whether stop() was requested.
  bool apply_commands() {
    bool stop = false;
    {
      std::lock_guard lock(commands_mutex_);
      stop = stop_requested_;
      if (commands_.empty()) return stop;
      // Swapping with a cleared scratch vector keeps both buffers' capacity: no allocation per
      // command batch.
      commands_.swap(scratch_commands_);
      metrics_.queue_depth.Set(0);
    }
    const auto now = now_steady_;
    for (auto& command : scratch_commands_) {
      if (auto* upsert_command = std::get_if<UpsertCommand>(&command)) {
        upsert(std::move(upsert_command->service), now);
      } else if (auto* beat_command = std::get_if<BeatCommand>(&command)) {
        beat(beat_command->id, beat_command->beat, std::move(beat_command->stored),
             beat_command->queued_beat);
      } else if (auto* assign_command = std::get_if<AssignCommand>(&command)) {
        ShardAssignment& assignment = assign_command->assignment;
        lease_until_ = assignment.valid_until;
        own_shards(mask_of(assignment.shards), std::move(assignment.runtime));
        assign_command->applied.set_value();
      } else {
        remove(std::get<RemoveCommand>(command).id);
      }
    }
    scratch_commands_.clear();
    return stop;
  }

  void upsert(Service service, SteadyTime now) {
    if (!service.active) {
      deactivate(service.id);
      return;
    }
    if (!probes(service.id)) {
      // Another member's shard: known, so that it starts at once when its shard comes here.
      unowned_.insert_or_assign(service.id, std::move(service));
      return;
    }
    auto [it, inserted] = services_.try_emplace(service.id);
    Entry& entry = it->second;
    // Reactivated (or stored at start): the service continues its metric and open event.
    bool resumed = false;
    if (inserted) {
      if (auto kept = kept_.extract(service.id)) {
        entry.runtime = kept.mapped();
        resumed = true;
        // Back from a deactivation (not a restart, whose state comes from the store): the time
        // it was off is not silence.
        if (deactivated_.erase(service.id) > 0) entry.resumed_at = now_wall_;
      }
    }
    ServiceSpec& spec = service.spec;
    entry.created_at = service.created_at;
    if (!inserted && entry.spec.kind != spec.kind) {
      // A probed service became a heartbeat or back: its schedule starts over, its history stays.
      abandon(entry);
      entry.generation = ++generation_counter_;  // the old heap entry becomes stale
      if (spec.kind == ServiceKind::heartbeat) {
        entry.spec = std::move(spec);
        schedule_heartbeat(entry, service.id);
        return;
      }
      entry.next_due = now + first_probe_offset(spec.name, interval_of(spec));
      scheduler_.schedule(service.id, entry.next_due, entry.generation);
      entry.spec = std::move(spec);
      return;
    }
    if (spec.kind == ServiceKind::heartbeat) {
      upsert_heartbeat(entry, service.id, std::move(spec), inserted);
      if (resumed) show_state(entry);
      return;
    }
    if (inserted) {
      entry.generation = ++generation_counter_;
      entry.next_due = now + first_probe_offset(spec.name, interval_of(spec));
      scheduler_.schedule(service.id, entry.next_due, entry.generation);
      entry.spec = std::move(spec);
      if (resumed) show_state(entry);
      metrics_.services.Set(double(services_.size()));
      log_debug("runner: added service " + entry.spec.name);
      return;
    }

    // A probe of the old URL/method/timeout measures something no longer asked for, and with a
    // long timeout it would hold back the new spec's first probe: abandon it.
    if (entry.in_flight && probe_changed(entry.spec, spec)) abandon(entry);
    if (entry.spec.interval != spec.interval) {
      // Keep the phase: the next slot is one new interval after the last slot, or now.
      const SteadyTime last_slot = entry.next_due - interval_of(entry.spec);
      entry.next_due = std::max(now, last_slot + interval_of(spec));
      entry.generation = ++generation_counter_;  // the old heap entry becomes stale
      scheduler_.schedule(service.id, entry.next_due, entry.generation);
    }
    const bool renamed = entry.spec.name != spec.name;
    entry.spec = std::move(spec);
    if (renamed) {
      // The name is the series' label: move them to the new one.
      metrics_.remove(entry.metrics);
      metrics_.record_state(entry.metrics, entry.spec.name, entry.runtime);
    }
    log_debug("runner: updated service " + entry.spec.name);
  }

  // Deactivated: no longer probed, its state kept for a reactivation.
  void deactivate(ServiceId id) {
    unowned_.erase(id);
    auto it = services_.find(id);
    if (it == services_.end()) return;  // already inactive
    ServiceRuntime kept = it->second.runtime;
    // A run of results does not span the time the service was off (nor does it a restart).
    kept.consecutive_failures = 0;
    kept.consecutive_successes = 0;
    drop(it);
    kept_.insert_or_assign(id, kept);
    deactivated_.insert(id);
  }

  // Purged: its state goes too.
  void remove(ServiceId id) {
    unowned_.erase(id);
    kept_.erase(id);
    deactivated_.erase(id);
    auto it = services_.find(id);
    if (it != services_.end()) drop(it);
  }

  void drop(std::unordered_map<ServiceId, Entry>::iterator it) {
    abandon(it->second);
    metrics_.remove(it->second.metrics);
    log_debug("runner: stopped probing service " + it->second.spec.name);
    // Its heap entry stays behind and is skipped: no service has that id and generation.
    services_.erase(it);
    metrics_.services.Set(double(services_.size()));
  }

  // ---- shards (sharded runners only) ----

  // Probes the services of the shards in `mask` and no others. A service whose shard went
  // elsewhere stops (an in-flight probe abandoned, unrecorded) and keeps its state as a
  // deactivated one does; one whose shard came here starts with its entry in `runtime` (what the
  // store says, written by whoever probed it before), else with its kept state, else fresh.
  void own_shards(std::uint64_t mask, std::unordered_map<ServiceId, ServiceRuntime> runtime) {
    const std::uint64_t before = owned_mask_.load();
    if (mask == before && runtime.empty()) return;
    std::vector<ServiceId> lost;
    for (const auto& [id, entry] : services_)
      if (!in_mask(mask, id)) lost.push_back(id);
    for (const ServiceId id : lost) disown(id);
    owned_mask_.store(mask);
    std::size_t gained = 0;
    for (auto it = unowned_.begin(); it != unowned_.end();) {
      if (!in_mask(mask, it->first)) {
        ++it;
        continue;
      }
      if (auto stored = runtime.extract(it->first))
        kept_.insert_or_assign(it->first, stored.mapped());
      deactivated_.erase(it->first);
      Service service = std::move(it->second);
      it = unowned_.erase(it);
      upsert(std::move(service), now_steady_);
      ++gained;
    }
    if (mask != before)
      log_info("runner: now probing " + std::to_string(std::popcount(mask)) + " of " +
               std::to_string(kShardCount) + " shards: " + std::to_string(gained) +
               " services taken, " + std::to_string(lost.size()) + " handed over");
  }

  void disown(ServiceId id) {
    auto it = services_.find(id);
    Entry& entry = it->second;
    Service service;
    service.id = id;
    service.spec = entry.spec;
    service.created_at = entry.created_at;
    ServiceRuntime kept = entry.runtime;
    kept.consecutive_failures = 0;
    kept.consecutive_successes = 0;
    drop(it);
    kept_.insert_or_assign(id, kept);
    unowned_.insert_or_assign(id, std::move(service));
  }

  // ---- heartbeats ----

  void upsert_heartbeat(Entry& entry, ServiceId id, ServiceSpec spec, bool inserted) {
    const bool renamed = !inserted && entry.spec.name != spec.name;
    const bool timing_changed = inserted || entry.spec.interval != spec.interval ||
                                entry.spec.grace != spec.grace ||
                                entry.spec.threshold != spec.threshold;
    entry.spec = std::move(spec);
    if (renamed) {
      metrics_.remove(entry.metrics);
      show_state(entry);
    }
    if (timing_changed) schedule_heartbeat(entry, id);
    if (inserted) {
      metrics_.services.Set(double(services_.size()));
      log_debug("runner: added heartbeat " + entry.spec.name);
    }
  }

  // A resumed service's series show its state before its first new tick.
  void show_state(Entry& entry) {
    metrics_.record_state(entry.metrics, entry.spec.name, entry.runtime);
    if (entry.spec.kind == ServiceKind::heartbeat && entry.runtime.last_beat_at)
      metrics_.record_beat(entry.metrics, entry.spec.name, *entry.runtime.last_beat_at);
  }

  // The steady-clock instant of a wall-clock one: deadlines are stored in wall time (ticks,
  // creation) but waited for on the steady clock. From one reading of both clocks, so a clock
  // moved between two readings cannot skew it.
  SteadyTime to_steady(TimePoint wall) const {
    const Millis ahead = std::clamp<Millis>(wall - now_wall_, -kFarestDeadline, kFarestDeadline);
    return now_steady_ + ahead;
  }

  SteadyTime deadline_of(const Entry& entry) const {
    return to_steady(heartbeat_deadline(entry.spec, entry.runtime,
                                        std::max(entry.created_at, entry.resumed_at)));
  }

  // Recomputes the deadline from the entry's state and gives it a fresh heap entry.
  void schedule_heartbeat(Entry& entry, ServiceId id) {
    entry.deadline = deadline_of(entry);
    entry.generation = ++generation_counter_;
    entry.next_due = entry.deadline;
    deadlines_.schedule(id, entry.deadline, entry.generation);
  }

  void fire_missed_heartbeats(SteadyTime now, TimePoint wall) {
    while (const auto due = deadlines_.pop_due(now)) {
      auto it = services_.find(due->service);
      if (it == services_.end() || it->second.generation != due->generation) continue;  // stale
      Entry& entry = it->second;
      if (entry.deadline > now) {
        // A report moved the deadline since this slot was queued.
        entry.next_due = entry.deadline;
        deadlines_.schedule(due->service, entry.deadline, entry.generation);
        continue;
      }
      record_result(entry, due->service, missed_heartbeat_result(), wall, {});
      entry.deadline = deadline_of(entry);
      entry.next_due = entry.deadline;
      deadlines_.schedule(due->service, entry.deadline, entry.generation);
    }
  }

  void beat(ServiceId id, const BeatReport& beat, CommitPromise stored,
            std::optional<std::int64_t> queued_beat) {
    auto it = services_.find(id);
    if (it == services_.end() && unowned_.contains(id)) {
      // Another member's shard (it moved since the beat was sent here): `stored` resolves
      // dropped, not ignored, so whoever holds the beat hands it to that member.
      log_debug("runner: beat for service " + std::to_string(id) + " dropped: watched elsewhere");
      return;
    }
    if (it == services_.end() || it->second.spec.kind != ServiceKind::heartbeat) {
      log_debug("runner: beat for service " + std::to_string(id) + " ignored: not a heartbeat");
      stored.ignored();
      return;
    }
    Entry& entry = it->second;
    // Ticks of one service stay in order: a beat queued before a missed-deadline tick was
    // written is stamped no earlier than that tick.
    TimePoint at = beat.at;
    if (entry.runtime.last_tick_at && at < *entry.runtime.last_tick_at)
      at = *entry.runtime.last_tick_at;
    record_result(entry, id, beat_result(beat), at, beat.message, std::move(stored), queued_beat);
    entry.runtime.last_beat_at = at;
    metrics_.record_beat(entry.metrics, entry.spec.name, at);

    entry.deadline = deadline_of(entry);
    if (entry.deadline < entry.next_due) {
      // Earlier than the queued slot (a failure report, which has no threshold's slack).
      entry.generation = ++generation_counter_;
      entry.next_due = entry.deadline;
      deadlines_.schedule(id, entry.deadline, entry.generation);
    }
  }

  // Drops an in-flight probe without recording anything.
  void abandon(Entry& entry) {
    if (!entry.in_flight) return;
    multi_.remove(*entry.in_flight);
    entry.in_flight.reset();
    --in_flight_count_;
    metrics_.in_flight.Set(double(in_flight_count_.load()));
  }

  // Starts every due probe there is room for. Entries past the concurrency cap stay in the heap
  // and start, late, as soon as probes finish.
  void start_due_probes(SteadyTime now, TimePoint wall) {
    while (in_flight_count_ < options_.max_concurrency) {
      const auto due = scheduler_.pop_due(now);
      if (!due) return;
      auto it = services_.find(due->service);
      if (it == services_.end() || it->second.generation != due->generation) continue;  // stale
      Entry& entry = it->second;

      // Fixed rate: the next slot follows from this slot, not from when the probe runs, so
      // lateness never accumulates into drift. Slots already past (the runner was saturated
      // or suspended) are skipped, not fired in a burst.
      const auto interval = interval_of(entry.spec);
      SteadyTime next = due->due + interval;
      if (next <= now) {
        const auto missed = (now - due->due) / interval;
        next = due->due + (missed + 1) * interval;
        metrics_.skipped.Increment(double(missed));
      }
      entry.next_due = next;
      scheduler_.schedule(due->service, next, entry.generation);

      if (entry.in_flight) {
        // Overlapping probes of one service would only pile up on a struggling target.
        metrics_.skipped.Increment();
        log_debug("runner: " + entry.spec.name + " still in flight, slot skipped");
        continue;
      }
      start_probe(entry, due->service, due->due, now, wall);
    }
  }

  void start_probe(Entry& entry, ServiceId id, SteadyTime due, SteadyTime now, TimePoint wall) {
    std::unique_ptr<Probe> probe;
    try {
      probe = make_probe(entry.spec, options_.probe);
    } catch (const std::exception& e) {
      not_started(entry, id, e.what(), wall);
      return;
    }
    auto in_flight = std::make_unique<InFlight>(id, std::move(probe), wall);
    const CURLMcode added = multi_.add(*in_flight);
    if (added != CURLM_OK) {
      not_started(entry, id, curl_multi_strerror(added), wall);
      return;
    }
    entry.in_flight = std::move(in_flight);
    ++in_flight_count_;
    metrics_.in_flight.Set(double(in_flight_count_.load()));
    metrics_.lateness.Observe(std::chrono::duration<double>(now - due).count());
  }

  // A probe that could not start is a down tick with the reason, like any failed probe (metrics,
  // events and alerts follow); its schedule goes on.
  void not_started(Entry& entry, ServiceId id, const std::string& why, TimePoint wall) {
    log_error("runner: cannot start probe of " + entry.spec.name + ": " + why);
    ProbeResult result;
    result.up = false;
    result.error = "cannot start probe: " + why;
    record_result(entry, id, result, wall, {});
    schedule_retry(entry, id, result);
  }

  // ---- probe depth: retries ----

  // While failing but not yet down, the next probe comes after retry_interval rather than the
  // interval; the schedule then continues from that slot.
  void schedule_retry(Entry& entry, ServiceId id, const ProbeResult& result) {
    const auto& retry = entry.spec.probe.retry_interval;
    if (result.up || !retry || entry.runtime.open_event_kind == EventKind::downtime) return;
    const SteadyTime due = now_steady_ + *retry;
    if (due >= entry.next_due) return;
    entry.generation = ++generation_counter_;  // the regular slot's heap entry becomes stale
    entry.next_due = due;
    scheduler_.schedule(id, due, entry.generation);
  }

  // A probe multi_ reports done: recorded for its service.
  void finish(RunningProbe& running) {
    auto* done = static_cast<InFlight*>(&running);
    auto it = services_.find(done->service);
    // remove() and upsert() take a probe out of the multi before dropping it, so a finished
    // probe always belongs to its service; anything else is a bug worth a line, not a crash.
    if (it == services_.end() || it->second.in_flight.get() != done) {
      log_error("runner: finished probe has no service");
      return;
    }
    Entry& entry = it->second;
    const std::unique_ptr<InFlight> owned = std::move(entry.in_flight);
    --in_flight_count_;
    metrics_.in_flight.Set(double(in_flight_count_.load()));

    const ProbeResult result = owned->probe->finish(owned->code);
    record_result(entry, done->service, result, owned->started, {});
    schedule_retry(entry, done->service, result);  // probe depth
  }

  // A probe result or heartbeat report through the state machine, the metrics, the log and the
  // sink: one path for every kind of service. `message` goes with the tick (heartbeats), and
  // so do `stored`, the promise a pushed beat's waiter holds the future of, and `queued_beat`.
  void record_result(Entry& entry, ServiceId id, const ProbeResult& result, TimePoint started,
                     std::string message, CommitPromise stored = {},
                     std::optional<std::int64_t> queued_beat = std::nullopt) {
    TickOutcome outcome = apply_probe_result(entry.runtime, id, result, started, options_.region,
                                             thresholds_of(entry.spec));
    outcome.record.tick.message = std::move(message);
    outcome.record.stored = std::move(stored);
    outcome.record.queued_beat = queued_beat;
    metrics_.record_probe(entry.metrics, entry.spec.name, result);
    metrics_.record_state(entry.metrics, entry.spec.name, entry.runtime);
    if (outcome.transition) {
      log_info(describe_transition(entry.spec.name, *outcome.transition, result));
    } else if (log_enabled(LogLevel::debug)) {
      log_debug("runner: " + entry.spec.name + (result.up ? " up" : " down: " + result.error) +
                " in " + std::to_string(result.response_ms) + " ms");
    }
    try {
      sink_(std::move(outcome.record));
    } catch (const std::exception& e) {
      // The sink must not throw; if it does, losing one tick beats losing the runner thread.
      log_error(std::string("runner: tick sink failed: ") + e.what());
    }
  }

  // How long the poll may sleep: until the next due slot when a probe could start, at most
  // kMaxSleep. curl shortens it further for its own timers (timeouts, connect retries), multi_
  // for conversations. Draining, until the drain bound at most.
  std::chrono::nanoseconds poll_timeout() const {
    auto wait = std::chrono::duration_cast<std::chrono::nanoseconds>(kMaxSleep);
    const auto real_now = std::chrono::steady_clock::now();
    if (drain_deadline_) {
      wait = std::clamp<std::chrono::nanoseconds>(*drain_deadline_ - real_now, 0ns, wait);
    } else {
      const SteadyTime now = steady_();
      if (in_flight_count_ < options_.max_concurrency) {
        if (const auto next = scheduler_.peek())
          wait = std::clamp<std::chrono::nanoseconds>(next->due - now, 0ns, wait);
      }
      if (const auto next = deadlines_.peek())
        wait = std::clamp<std::chrono::nanoseconds>(next->due - now, 0ns, wait);
      if (owned_mask_.load() != 0)
        wait = std::clamp<std::chrono::nanoseconds>(lease_until_ - real_now, 0ns, wait);
    }
    return wait;
  }

  RunnerOptions options_;
  std::function<TimePoint()> wall_;
  std::function<SteadyTime()> steady_;
  TickSink sink_;
  RunnerMetrics metrics_;
  ProbeMulti multi_;  // declared before services_: destroyed after every probe is out
  const ProbeMulti::Done finished_ = [this](RunningProbe& running) { finish(running); };

  // Runner thread only.
  Scheduler scheduler_;
  Scheduler deadlines_;  // heartbeats: not probed, so never held back by max_concurrency
  std::unordered_map<ServiceId, Entry> services_;
  // The state of services that are not active (deactivated, or stored and inactive at start),
  // until they are reactivated or purged.
  std::unordered_map<ServiceId, ServiceRuntime> kept_;
  std::unordered_set<ServiceId> deactivated_;  // the ids in kept_ that a deactivation put there
  // Sharded: the active services of shards this runner does not own, ready for when it does.
  std::unordered_map<ServiceId, Service> unowned_;
  // Sharded: until when the owned shards may be probed (real time; see ShardAssignment).
  std::chrono::steady_clock::time_point lease_until_{};
  std::uint64_t generation_counter_ = 0;
  std::vector<Command> scratch_commands_;
  // Both clocks as read once per round (read_clock): every decision of one round uses one now.
  TimePoint now_wall_;
  SteadyTime now_steady_;
  // Set when stop() was seen: when in-flight probes are given up (real time).
  std::optional<std::chrono::steady_clock::time_point> drain_deadline_;

  // Shared with other threads.
  std::mutex commands_mutex_;
  std::vector<Command> commands_;  // guarded by commands_mutex_
  bool stop_requested_ = false;    // guarded by commands_mutex_
  std::atomic<std::int64_t> last_alive_ms_{0};
  std::atomic<std::size_t> in_flight_count_{0};
  // Sharded: the shards probed (bit n: shard n); written by the runner thread only.
  std::atomic<std::uint64_t> owned_mask_{0};

  std::mutex lifecycle_mutex_;  // serialises start() and stop()
  bool started_ = false;
  std::thread thread_;
};

Runner::Runner(RunnerOptions options, TickSink sink, prometheus::Registry& registry)
    : loop_(std::make_unique<Loop>(std::move(options), std::move(sink), registry)) {}

Runner::~Runner() { stop(); }

void Runner::start(std::vector<Service> services,
                   std::unordered_map<ServiceId, ServiceRuntime> runtime) {
  loop_->start(std::move(services), std::move(runtime));
}

void Runner::upsert_service(Service service) { loop_->enqueue(UpsertCommand{std::move(service)}); }

void Runner::remove_service(ServiceId id) { loop_->enqueue(RemoveCommand{id}); }

CommitFuture Runner::record_beat(ServiceId id, BeatReport beat,
                                 std::optional<std::int64_t> queued_beat) {
  auto [stored, future] = make_commit_pair();
  loop_->enqueue(BeatCommand{id, std::move(beat), std::move(stored), queued_beat});
  return future;
}

std::future<void> Runner::assign_shards(ShardAssignment assignment) {
  if (!loop_->sharded()) throw std::logic_error("Runner::assign_shards on a runner not sharded");
  AssignCommand command{std::move(assignment), {}};
  auto applied = command.applied.get_future();
  loop_->enqueue(std::move(command));
  return applied;
}

bool Runner::probes(ServiceId id) const { return loop_->probes(id); }

std::vector<int> Runner::shards() const { return loop_->shards(); }

void Runner::stop() { loop_->stop(); }

void Runner::wake() { loop_->wake(); }

TimePoint Runner::last_alive() const { return loop_->last_alive(); }

std::size_t Runner::in_flight() const { return loop_->in_flight(); }

std::shared_ptr<prometheus::Collectable> Runner::service_series() const {
  return loop_->service_series();
}

}  // namespace vigil

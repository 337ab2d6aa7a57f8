// Runner: the one thread that owns all live service state. It runs the scheduler, one libcurl
// multi handle with every in-flight probe, and the state machine, and hands each tick to a sink
// (the Writer) without touching the disk. Other threads talk to it only through the thread-safe
// command methods below, which wake its loop with curl_multi_wakeup.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/commit.h"
#include "core/model.h"
#include "runner/probe.h"
#include "runner/scheduler.h"

namespace prometheus {
class Collectable;
class Registry;
}  // namespace prometheus

namespace vigil {

// The runner's two clocks (tests inject a manual one; see Runner::wake). `wall` stamps ticks
// and bases heartbeat deadlines and last_alive(); `steady` schedules probes and heartbeat
// deadlines. Both are called on the runner thread (and in start()), so they must be safe to
// call from there while another thread moves them; a test clock moves both together (the runner
// reads them as one instant, once per loop round). Probe timeouts are curl's own and run on real
// time whatever these say.
struct RunnerClock {
  std::function<TimePoint()> wall = now_ms;
  std::function<SteadyTime()> steady = [] { return std::chrono::steady_clock::now(); };
};

struct RunnerOptions {
  std::size_t max_concurrency = 1000;  // probes in flight at once; the rest wait, late
  std::string region;                  // written on every tick
  ProbeSettings probe;
  RunnerClock clock;
  // How long stop() lets in-flight probes finish (real time, whatever `clock` says). Probes
  // still running then are aborted and record nothing: nothing was measured, and a down tick
  // would open a false downtime (and page someone) for every service probed at that moment.
  // Kept well under a supervisor's stop timeout (systemd 90 s, docker 10 s), so the Writer's
  // queue is flushed before a SIGKILL.
  Millis drain_timeout{3000};
  // In a cluster (core/shards.h): probe only the services of the shards assign_shards() gives,
  // and none before the first assignment. Off: every active service is probed.
  bool sharded = false;
};

// What a sharded runner probes (Runner::assign_shards).
struct ShardAssignment {
  std::vector<int> shards;  // the shards owned now (core/shards.h), any order
  // Until when they may be probed, in real time: the runner stops probing them by itself at
  // this instant unless a newer assignment came, since another member may own them then.
  std::chrono::steady_clock::time_point valid_until;
  // The stored state of services of shards that come to this runner (written by whoever probed
  // them before); a service of such a shard without an entry continues from what this runner
  // kept, or starts fresh.
  std::unordered_map<ServiceId, ServiceRuntime> runtime = {};
};

// Receives every tick record, on the runner thread. Must not block (Writer::submit qualifies).
using TickSink = std::function<void(TickRecord)>;

class Runner {
 public:
  // Registers the runner's own vigil_* metrics in `registry`, which must outlive the Runner.
  // Per-service series (label `service` = name; see service_series()) appear once the service has
  // something to report (a probe result, or stored state from start()) and are removed with the
  // service. Throws std::runtime_error when libcurl cannot be initialised.
  Runner(RunnerOptions options, TickSink sink, prometheus::Registry& registry);
  // Calls stop().
  ~Runner();
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;

  // Starts the thread with these services and the state stored by a previous run (services
  // without an entry start fresh). Each service's first probe falls at first_probe_offset()
  // within its interval; inactive services are skipped, and the state of a service that is not
  // active is kept for when it is reactivated (as for a deactivation below). Call once (a second
  // call throws std::logic_error).
  void start(std::vector<Service> services, std::unordered_map<ServiceId, ServiceRuntime> runtime);

  // Commands, safe from any thread; applied by the runner thread within one loop iteration.
  // upsert: a new service starts being probed, a changed one continues with its new spec and
  // keeps its runtime state (metric, open event). A changed interval keeps the service's phase
  // (next slot = last slot + new interval, or now if that has passed); a changed URL, method,
  // headers, timeout or expected status abandons an in-flight probe of the old spec, unrecorded.
  // An inactive service (active == false) is no longer probed (an in-flight probe is abandoned,
  // unrecorded) but its state is kept: reactivated, it continues its metric and its open event
  // (a new event only when its status changes), so history stays continuous.
  void upsert_service(Service service);
  // The service was purged: it is no longer probed (an in-flight probe is abandoned,
  // unrecorded) and its state, kept or live, is dropped.
  void remove_service(ServiceId id);

  // Heartbeats: a service of kind heartbeat is not probed; it has a deadline in a heap
  // of its own. Silent past last report + interval x threshold + grace (from its creation when
  // it never reported), it gets a down tick with error kMissedHeartbeat, and then one more
  // every interval + grace while it stays silent, so its uptime stays tick-based like a probed
  // service's. At start() the deadline follows from the stored state, so a heartbeat that went
  // silent while vigil was down is down right away.
  // record_beat: a pushed report becomes a tick (up, or down at once whatever the threshold,
  // with the message and duration) through the same state machine and sink as a probe, and
  // moves the deadline. A beat for a service the runner does not have as a heartbeat is ignored.
  // Returns at once (it only queues; the runner loop never waits on the caller) the future of
  // what became of it: `ignored` for an ignored beat; otherwise the tick goes to the sink
  // carrying the promise (TickRecord::stored), which the sink resolves `committed` once it is
  // stored, and which resolves `dropped` when the tick or the command is dropped unresolved
  // (the runner stopped before applying it, the sink shed it, or — sharded — the heartbeat is
  // another member's now). Whoever answers the push waits
  // on it, bounded (CommitFuture::wait_for). `queued_beat`: the beat's row in the database's
  // queue when a `vigil api` process queued it (Store::claim_beats), carried by the tick's
  // record (TickRecord::queued_beat) so that the commit of the tick removes it.
  CommitFuture record_beat(ServiceId id, BeatReport beat,
                           std::optional<std::int64_t> queued_beat = std::nullopt);

  // Sharded runners: from the next loop round on, probe the services of `assignment.shards` and
  // no others; a service whose shard went elsewhere stops at once (its in-flight probe abandoned,
  // unrecorded), and one whose shard came here starts within one interval, at its usual phase
  // (first_probe_offset), from assignment.runtime. Heartbeat deadlines follow the same rule. The
  // future is ready once the runner applied it (broken if the runner stopped first). Safe from
  // any thread; std::logic_error unless options.sharded.
  std::future<void> assign_shards(ShardAssignment assignment);
  // Whether this runner probes (or watches, for a heartbeat) service `id` now: always true
  // unless sharded. Safe from any thread.
  bool probes(ServiceId id) const;
  // The shards assigned now, ascending (sharded runners; every shard otherwise). Safe from any
  // thread.
  std::vector<int> shards() const;

  // Stops scheduling, lets in-flight probes finish for at most options.drain_timeout (each also
  // ends by its own timeout), delivers their ticks to the sink, and joins the thread. Probes
  // still in flight at the bound are aborted unrecorded, and the log says how many. Idempotent.
  void stop();

  // Makes the loop go round now and re-read its clock: call it after moving an injected clock,
  // since the loop otherwise sleeps until the next slot it computed (at most a second). Safe from
  // any thread.
  void wake();

  // When the loop last went round (it wakes at least once a second), on the wall clock: the
  // time it read before applying its commands, firing heartbeat deadlines and starting due
  // probes, set once those are done (so a test that moved the clock to T knows, once this is
  // >= T, that everything due at T has started). /healthz reads it. The epoch before start().
  // Safe from any thread.
  TimePoint last_alive() const;
  // Probes in flight now. Safe from any thread.
  std::size_t in_flight() const;
  // The per-service series (probe_success{service}, ...): kept outside `registry` in a compact
  // form, so /metrics must collect them too (ApiOptions::collectables). Safe from any thread.
  std::shared_ptr<prometheus::Collectable> service_series() const;

 private:
  class Loop;
  std::unique_ptr<Loop> loop_;
};

}  // namespace vigil

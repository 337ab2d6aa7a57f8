// A cluster: every vigil process (`vigil run`, `vigil runner`, `vigil api`) on one PostgreSQL
// database is a member. Each member holds a lease on its row, renewed on the database's clock;
// a member whose lease ran out is gone. The runners of a region divide its services by shards
// (core/shards.h): the owner of a shard is chosen by rendezvous hashing over the region's live
// runners, and holds a lease on the shard (also on the database's clock) while it probes it, so
// that a shard has at most one holder at a time. A member that stops cleanly frees its shards at
// once; one that dies loses them when their lease expires; one that cannot renew stops probing
// before its lease can expire (ClusterMember, below).
//
// SQLite holds one machine's data: its Database opens no ClusterStore, and a single process
// probes everything as before.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/model.h"
#include "storage/store.h"

namespace prometheus {
class Registry;
template <typename T>
class Family;
class Gauge;
class Counter;
}  // namespace prometheus

namespace vigil {

// Who a member is. `incarnation` tells two processes of one name apart (a restart, or a
// mistake: two live processes given the same INSTANCE_NAME).
struct MemberIdentity {
  std::string name;         // INSTANCE_NAME
  std::string incarnation;  // unique per process start
  std::string region;       // PROBER_REGION
  std::string role;         // "run", "runner" or "api"
  std::string address;      // where its API listens (host:port); empty without one
  std::string version;
  bool takes_shards = false;  // it runs a runner
};

// A member as /v1/cluster shows it.
struct MemberView {
  std::string name;
  std::string region;
  std::string role;
  std::string address;
  std::string version;
  TimePoint started_at;
  Millis lease_age{0};           // since its last renewal, on the database's clock
  bool live = false;             // its lease has not run out
  std::vector<int> shards = {};  // held with a lease that has not run out, ascending
  std::string last_error = {};   // the last renewal error it reported; empty when none
};

// Another live member holds the name (two processes started with one INSTANCE_NAME, or a
// restart before the lease of the process it replaces ran out).
class NameTaken : public StorageError {
 public:
  NameTaken(const std::string& message, std::string holder)
      : StorageError(message), holder_(std::move(holder)) {}
  // The incarnation that holds the name.
  const std::string& holder() const { return holder_; }

 private:
  std::string holder_;
};

// An incarnation for a process starting now: "<host> <pid> <random>", so that a restart on the
// same host can tell a predecessor that died from one that lives (incarnation_is_dead).
std::string new_incarnation();
// Whether `incarnation` names a process of this host that is gone (no such pid, or the pid is
// this process's own: a container restarted under the same pid). False for another host's, and
// for text that is not an incarnation.
bool incarnation_is_dead(const std::string& incarnation);

// The members and shard leases of one database. Every call is one transaction, may be made
// from any thread (calls are serialised), and throws StorageError when the database cannot be
// reached or refuses (StorageUnavailable for an outage); nothing of a failed call is written.
class ClusterStore {
 public:
  virtual ~ClusterStore() = default;

  // Registers `member`, or renews its lease, until `lease` from now on the database's clock,
  // with `last_error` (empty: none). Returns the names of the live members of its region that
  // take shards, itself included when it does, ascending. Throws NameTaken when a live member of
  // another incarnation has the name (its row is left alone), unless that incarnation is
  // `replacing` (a predecessor known to be dead: its row and shards become this member's).
  virtual std::vector<std::string> renew(const MemberIdentity& member, Millis lease,
                                         const std::string& last_error,
                                         const std::string& replacing = {}) = 0;
  // Takes, or renews, the lease on each of `shards` of the member's region until `lease` from
  // now: a shard that is free, whose lease ran out, or that is the member's already. Returns the
  // shards the member holds afterwards, ascending.
  virtual std::vector<int> hold_shards(const MemberIdentity& member, const std::vector<int>& shards,
                                       Millis lease) = 0;
  // Frees those of `shards` the member holds in its region.
  virtual void release_shards(const MemberIdentity& member, const std::vector<int>& shards) = 0;
  // Removes the member's row (if it is still this incarnation's), frees its shards and gives
  // back the queued beats it claimed (Store::claim_beats).
  virtual void leave(const MemberIdentity& member) = 0;
  // Every member, live or not, by region then name. Rows whose lease ran out more than a day
  // ago are deleted by renew().
  virtual std::vector<MemberView> members() = 0;
};

struct ClusterMemberOptions {
  Millis lease{10'000};  // CLUSTER_LEASE_SECONDS
  // One renewal per period. Zero: a fifth of the lease, so that a renewal can fail a few times
  // before the lease is at risk.
  Millis period{0};
};

// What the member asks of its process (main.cpp wires them to the Runner and the Writer). Called
// on the member's thread.
struct ClusterMemberHandlers {
  // Probe the services of `shards` and no others until `valid_until` (real time); `gained` are
  // the shards new to this process, whose services' stored state must be loaded. The future is
  // ready once the runner applied it.
  std::function<std::future<void>(const std::vector<int>& shards, const std::vector<int>& gained,
                                  std::chrono::steady_clock::time_point valid_until)>
      assign;
  // Blocks until every tick produced so far is committed (Writer::flush): called before shards
  // are freed, so whoever takes one over reads the last state of its services.
  std::function<void()> flush;
  // Once the runner applied an assignment that brought `gained` shards (their alerts are this
  // member's to decide from then on: Alerter::reconcile_again). May be empty.
  std::function<void(const std::vector<int>& gained)> taken = {};
};

// The thread that keeps a member's lease and, for a member that takes shards, its shards: one
// round per period. A round renews the member, computes the shards it should own among the live
// runners of its region, holds those (and keeps the lease of those it still probes), hands the
// runner what it holds and should own, and, once the runner applied that, frees the shards it
// should no longer own. When renewals fail, the runner stops probing by itself shortly before the
// shards' lease could run out (a renewal period, at most a second, before), so a database outage
// shorter than that is ridden out without a pause; past it, the next successful round hands the
// shards over again, their services' stored state with them.
class ClusterMember {
 public:
  // Registers metrics in `registry` (vigil_cluster_*); `store` and `registry` must outlive the
  // member. The first round runs on the thread at once. A member without takes_shards only keeps
  // its row (`handlers` unused).
  ClusterMember(ClusterStore& store, MemberIdentity identity, ClusterMemberOptions options,
                ClusterMemberHandlers handlers, prometheus::Registry& registry);
  ~ClusterMember();  // stop() without leave()
  ClusterMember(const ClusterMember&) = delete;
  ClusterMember& operator=(const ClusterMember&) = delete;

  // The error of the last round (empty after a success), e.g. NameTaken's message.
  std::string last_error() const;
  // The shards handed to the runner now. Any thread.
  std::vector<int> shards() const;

  // Joins the thread. Idempotent.
  void stop();
  // stop(), then frees this member's shards and removes its row, so the others take its work
  // over at their next round. Call after the runner stopped and the writer flushed. A failure
  // is logged (the leases then simply run out).
  void leave();

  const MemberIdentity& identity() const { return identity_; }
  Millis period() const { return period_; }

 private:
  void run();
  void round();
  void lapse_if_due();

  ClusterStore& store_;
  const MemberIdentity identity_;
  const Millis lease_;
  const Millis period_;
  ClusterMemberHandlers handlers_;

  // Member thread only.
  std::vector<int> assigned_;  // what the runner was last told to probe
  std::chrono::steady_clock::time_point valid_until_{};
  std::uint64_t consecutive_failures_ = 0;

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  bool stop_requested_ = false;  // guarded by mutex_
  std::string last_error_;       // guarded by mutex_
  std::vector<int> shards_;      // guarded by mutex_: a copy of assigned_

  prometheus::Family<prometheus::Gauge>* members_family_;
  prometheus::Gauge* shards_owned_;
  prometheus::Counter* renewals_;
  prometheus::Counter* renewal_failures_;
  std::vector<std::string> member_regions_;  // regions with a vigil_cluster_members series
  std::thread thread_;
};

}  // namespace vigil

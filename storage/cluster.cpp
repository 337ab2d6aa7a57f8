#include "storage/cluster.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <iterator>
#include <map>
#include <sstream>

#include "core/logging.h"
#include "core/process_identity.h"
#include "core/shards.h"

namespace vigil {

namespace {

using SteadyClock = std::chrono::steady_clock;

std::vector<int> minus(const std::vector<int>& a, const std::vector<int>& b) {
  std::vector<int> out;
  std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  return out;
}

std::vector<int> intersection(const std::vector<int>& a, const std::vector<int>& b) {
  std::vector<int> out;
  std::set_intersection(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  return out;
}

std::vector<int> both(const std::vector<int>& a, const std::vector<int>& b) {
  std::vector<int> out;
  std::set_union(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  return out;
}

std::string shard_list(const std::vector<int>& shards) {
  std::string text;
  for (const int shard : shards) text += (text.empty() ? "" : ",") + std::to_string(shard);
  return text.empty() ? "none" : text;
}

}  // namespace

std::string new_incarnation() {
  return host_name() + " " + std::to_string(::getpid()) + " " + random_id();
}

bool incarnation_is_dead(const std::string& incarnation) {
  std::istringstream fields(incarnation);
  std::string host;
  long long pid = 0;
  if (!(fields >> host >> pid) || pid <= 0) return false;
  if (host != host_name()) return false;
  if (pid == ::getpid()) return true;
  return ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
}

ClusterMember::ClusterMember(ClusterStore& store, MemberIdentity identity,
                             ClusterMemberOptions options, ClusterMemberHandlers handlers,
                             prometheus::Registry& registry)
    : store_(store),
      identity_(std::move(identity)),
      lease_(std::max(options.lease, Millis{500})),
      period_(options.period > Millis{0} ? options.period : lease_ / 5),
      handlers_(std::move(handlers)),
      members_family_(&prometheus::BuildGauge()
                           .Name("vigil_cluster_members")
                           .Help("Live members of the cluster (processes on this database), by "
                                 "region, as this member last read them")
                           .Register(registry)),
      shards_owned_(&prometheus::BuildGauge()
                         .Name("vigil_cluster_shards_owned")
                         .Help("Shards of its region this member probes now")
                         .Register(registry)
                         .Add({})),
      renewals_(&prometheus::BuildCounter()
                     .Name("vigil_cluster_lease_renewals_total")
                     .Help("Rounds in which this member renewed its lease")
                     .Register(registry)
                     .Add({})),
      renewal_failures_(&prometheus::BuildCounter()
                             .Name("vigil_cluster_lease_renewal_failures_total")
                             .Help("Rounds in which this member could not renew its lease")
                             .Register(registry)
                             .Add({})) {
  thread_ = std::thread([this] { run(); });
}

ClusterMember::~ClusterMember() { stop(); }

void ClusterMember::stop() {
  {
    std::lock_guard lock(mutex_);
    stop_requested_ = true;
  }
  changed_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void ClusterMember::leave() {
  stop();
  try {
    store_.leave(identity_);
    log_info("cluster: " + identity_.name + " left; its shards are free");
  } catch (const StorageError& e) {
    log_warn(std::string("cluster: cannot leave (the leases will run out instead): ") + e.what());
  }
}

std::string ClusterMember::last_error() const {
  std::lock_guard lock(mutex_);
  return last_error_;
}

std::vector<int> ClusterMember::shards() const {
  std::lock_guard lock(mutex_);
  return shards_;
}

void ClusterMember::run() {
  for (;;) {
    const auto started = SteadyClock::now();
    std::string error;
    try {
      round();
      consecutive_failures_ = 0;
      renewals_->Increment();
    } catch (const std::exception& e) {
      error = e.what();
      renewal_failures_->Increment();
      if (consecutive_failures_++ == 0) log_warn("cluster: cannot renew the lease: " + error);
    }
    lapse_if_due();
    {
      std::lock_guard lock(mutex_);
      last_error_ = error;
      shards_ = assigned_;
    }
    changed_.notify_all();
    shards_owned_->Set(double(assigned_.size()));
    std::unique_lock lock(mutex_);
    if (changed_.wait_until(lock, started + period_, [this] { return stop_requested_; })) return;
  }
}

void ClusterMember::round() {
  const auto started = SteadyClock::now();
  const std::string reported = [&] {
    std::lock_guard lock(mutex_);
    return last_error_;
  }();
  const std::vector<std::string> live = store_.renew(identity_, lease_, reported);

  // Live members by region, for the gauge (a region whose members all left shows 0).
  std::map<std::string, int> by_region;
  for (const auto& region : member_regions_) by_region[region] = 0;
  for (const auto& member : store_.members())
    if (member.live) ++by_region[member.region];
  member_regions_.clear();
  for (const auto& [region, count] : by_region) {
    members_family_->Add({{"region", region}}).Set(count);
    member_regions_.push_back(region);
  }

  if (!identity_.takes_shards) return;
  const std::vector<int> desired = shards_of_member(identity_.name, live);
  // Keep the lease of what the runner probes until it stopped; take what this member should own.
  const std::vector<int> held = store_.hold_shards(identity_, both(desired, assigned_), lease_);
  const std::vector<int> owned = intersection(held, desired);
  // The shards were held from before `started` on the database's clock, so this is early; the
  // margin covers the runner's reaction and clocks that run at slightly different rates.
  const auto valid_until = started + lease_ - std::min<Millis>(period_, Millis{1000});
  const bool lapsed = assigned_.empty() || SteadyClock::now() >= valid_until_;
  const std::vector<int> gained = lapsed ? owned : minus(owned, assigned_);
  const std::vector<int> handed = minus(assigned_, owned);
  auto applied = handlers_.assign(owned, gained, valid_until);
  if (applied.wait_for(period_) != std::future_status::ready) {
    // The runner is slow to apply it: keep the leases as they are, try again next round.
    throw StorageError("the runner did not apply the shard assignment within a period");
  }
  applied.get();
  if (!gained.empty() && handlers_.taken) handlers_.taken(gained);
  if (owned != assigned_)
    log_info("cluster: " + identity_.name + " probes shards " + shard_list(owned) + " (of " +
             std::to_string(live.size()) + " runners in region " + identity_.region + ")");
  assigned_ = owned;
  valid_until_ = valid_until;
  // Held but someone else's now: the runner stopped them; their ticks reach the database before
  // they are freed.
  const std::vector<int> to_free = minus(held, owned);
  if (!to_free.empty()) {
    handlers_.flush();
    store_.release_shards(identity_, to_free);
    log_debug("cluster: freed shards " + shard_list(to_free) + " (handed " + shard_list(handed) +
              ")");
  }
}

void ClusterMember::lapse_if_due() {
  if (!identity_.takes_shards || assigned_.empty()) return;
  // The runner stops by itself at valid_until_; this is for the record, so that the next
  // successful round hands every shard over with its stored state again.
  if (SteadyClock::now() < valid_until_) return;
  log_warn("cluster: " + identity_.name + " stops probing its " + std::to_string(assigned_.size()) +
           " shards: its lease could not be renewed");
  auto applied = handlers_.assign({}, {}, SteadyClock::now());
  applied.wait_for(period_);
  assigned_.clear();
}

}  // namespace vigil

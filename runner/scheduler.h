// Scheduler: which service is due next. A min-heap of (due time, service) on the steady clock.
// Not thread-safe: owned by the runner thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <queue>
#include <string_view>
#include <vector>

#include "core/model.h"

namespace vigil {

using SteadyTime = std::chrono::steady_clock::time_point;

// Where in [0, interval) a service's first probe falls: a stable function of its name, so that
// thousands of services with one interval are spread evenly over it instead of firing at once.
std::chrono::nanoseconds first_probe_offset(std::string_view service_name,
                                            std::chrono::nanoseconds interval);

class Scheduler {
 public:
  struct Due {
    SteadyTime due;
    ServiceId service;
    std::uint64_t generation;  // lets a removed or changed service's stale entries be skipped
  };

  void schedule(ServiceId service, SteadyTime due, std::uint64_t generation);
  // The earliest entry, if any.
  std::optional<Due> peek() const;
  // Removes and returns the earliest entry when it is due at `now`.
  std::optional<Due> pop_due(SteadyTime now);

 private:
  struct Later {
    bool operator()(const Due& a, const Due& b) const { return a.due > b.due; }
  };
  std::priority_queue<Due, std::vector<Due>, Later> heap_;
};

}  // namespace vigil

#include "runner/scheduler.h"

#include <cstdint>

namespace vigil {

namespace {

// FNV-1a, then a splitmix64 finaliser: std::hash is not stable across builds or library
// versions, and a service's phase must not move when vigil is upgraded or restarted.
std::uint64_t stable_hash(std::string_view text) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (const char c : text) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  // FNV alone clusters names that differ only in a trailing digit ("svc-1", "svc-2"); the
  // finaliser spreads them over the whole range.
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  h ^= h >> 31;
  return h;
}

}  // namespace

std::chrono::nanoseconds first_probe_offset(std::string_view service_name,
                                            std::chrono::nanoseconds interval) {
  if (interval <= std::chrono::nanoseconds::zero()) return std::chrono::nanoseconds::zero();
  // The top 53 bits as a fraction in [0, 1), exact in a double.
  const double fraction = static_cast<double>(stable_hash(service_name) >> 11) * 0x1.0p-53;
  auto offset = std::chrono::nanoseconds(
      static_cast<std::int64_t>(fraction * static_cast<double>(interval.count())));
  // Rounding can land exactly on the interval for huge intervals; keep the result in range.
  if (offset >= interval) offset = interval - std::chrono::nanoseconds(1);
  return offset;
}

void Scheduler::schedule(ServiceId service, SteadyTime due, std::uint64_t generation) {
  heap_.push(Due{due, service, generation});
}

std::optional<Scheduler::Due> Scheduler::peek() const {
  if (heap_.empty()) return std::nullopt;
  return heap_.top();
}

std::optional<Scheduler::Due> Scheduler::pop_due(SteadyTime now) {
  if (heap_.empty() || heap_.top().due > now) return std::nullopt;
  Due due = heap_.top();
  heap_.pop();
  return due;
}

}  // namespace vigil

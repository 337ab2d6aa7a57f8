// The ticks a runner delivers, for runner tests: a TickSink that keeps every record with the
// time it arrived, and waits on a condition over them instead of sleeping. Header-only.
// Thread-safe: the runner thread appends while the test thread reads and waits.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "core/model.h"
#include "runner/runner.h"

namespace vigil::test {

class TickCollector {
 public:
  using Clock = std::chrono::steady_clock;
  struct Arrival {
    TickRecord record;
    Clock::time_point at;  // when the sink received it
  };

  // The sink to give the runner; the collector must outlive the runner.
  TickSink sink() {
    return [this](TickRecord record) {
      std::lock_guard lock(mutex_);
      arrivals_.push_back({std::move(record), Clock::now()});
      changed_.notify_all();
    };
  }

  // The records of service `id` (or all of them), in the order they arrived.
  std::vector<Arrival> arrivals(ServiceId id) const {
    std::lock_guard lock(mutex_);
    return arrivals_of(id);
  }
  std::vector<TickRecord> of(ServiceId id) const { return records(arrivals(id)); }
  std::vector<TickRecord> all() const {
    std::lock_guard lock(mutex_);
    return records(arrivals_);
  }
  std::size_t count(ServiceId id) const { return arrivals(id).size(); }

  // Wait until `done` holds over the records of `id` (or over all of them); false when
  // `timeout` passes first.
  bool wait_for_arrivals(ServiceId id, const std::function<bool(const std::vector<Arrival>&)>& done,
                         Clock::duration timeout) const {
    return wait([&] { return done(arrivals_of(id)); }, timeout);
  }
  bool wait_for(ServiceId id, const std::function<bool(const std::vector<TickRecord>&)>& done,
                Clock::duration timeout) const {
    return wait([&] { return done(records(arrivals_of(id))); }, timeout);
  }
  bool wait_for_all(const std::function<bool(const std::vector<TickRecord>&)>& done,
                    Clock::duration timeout) const {
    return wait([&] { return done(records(arrivals_)); }, timeout);
  }
  bool wait_for_count(ServiceId id, std::size_t n, Clock::duration timeout) const {
    return wait_for(
        id, [n](const auto& records) { return records.size() >= n; }, timeout);
  }

 private:
  // Needs mutex_ held.
  std::vector<Arrival> arrivals_of(ServiceId id) const {
    std::vector<Arrival> out;
    for (const auto& a : arrivals_)
      if (a.record.tick.service_id == id) out.push_back(a);
    return out;
  }
  static std::vector<TickRecord> records(const std::vector<Arrival>& arrivals) {
    std::vector<TickRecord> out;
    out.reserve(arrivals.size());
    for (const auto& a : arrivals) out.push_back(a.record);
    return out;
  }
  bool wait(const std::function<bool()>& done, Clock::duration timeout) const {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, done);
  }

  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  std::vector<Arrival> arrivals_;
};

// A probed service as runner tests declare one.
inline Service probed_service(ServiceId id, const std::string& name, const std::string& url,
                              Millis interval, Millis timeout = std::chrono::seconds(1)) {
  Service s;
  s.id = id;
  s.spec.name = name;
  s.spec.url = url;
  s.spec.interval = interval;
  s.spec.timeout = timeout;
  return s;
}

}  // namespace vigil::test

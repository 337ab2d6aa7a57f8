// A clock for the runner that moves only when a test says so: wall and steady time advance
// together (one offset), so heartbeat deadlines (wall) and probe slots (steady) stay consistent.
// Header-only. Thread-safe: the runner thread reads it while the test thread advances it.
#pragma once

#include <atomic>
#include <chrono>
#include <thread>

#include "runner/runner.h"

namespace vigil::test {

class ManualClock {
 public:
  // Starts at the real wall time (rounded to the millisecond) and the real steady time.
  ManualClock() : wall0_(now_ms()), steady0_(std::chrono::steady_clock::now()) {}

  TimePoint wall() const { return wall0_ + std::chrono::duration_cast<Millis>(offset()); }
  SteadyTime steady() const { return steady0_ + offset(); }
  // Where the clock started: wall() and steady() are these plus everything advanced.
  TimePoint wall0() const { return wall0_; }

  // Moves both clocks; a runner using this clock notices only when woken (see advance below).
  void advance(std::chrono::nanoseconds by) { offset_ns_ += by.count(); }

  // The runner's clock functions; the ManualClock must outlive the Runner.
  RunnerClock runner_clock() const {
    return {[this] { return wall(); }, [this] { return steady(); }};
  }

 private:
  std::chrono::nanoseconds offset() const { return std::chrono::nanoseconds(offset_ns_.load()); }

  TimePoint wall0_;
  SteadyTime steady0_;
  std::atomic<std::int64_t> offset_ns_{0};
};

// Moves `clock` by `by` (at least 1 ms: whole milliseconds, so wall and steady agree exactly, and
// the runner's last_alive() shows when it has seen the new time), wakes `runner`,
// and waits (up to 30 s of real time) until the runner has gone round at the new time: every
// heartbeat deadline and probe slot due by then has fired or started, and every command queued
// before the call is applied. Returns false when the runner did not get there in time.
inline bool advance(ManualClock& clock, Runner& runner, Millis by) {
  clock.advance(by);
  const TimePoint target = clock.wall();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (runner.last_alive() < target) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    runner.wake();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

}  // namespace vigil::test

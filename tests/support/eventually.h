// Waiting for what another thread or process eventually does, when there is nothing to wait on
// but the condition itself. Header-only.
#pragma once

#include <chrono>
#include <functional>
#include <thread>

namespace vigil::test {

// Polls `condition` every `poll` until it holds or `timeout` (real time) passes; returns its
// last value.
inline bool eventually(const std::function<bool()>& condition,
                       std::chrono::steady_clock::duration timeout = std::chrono::seconds(5),
                       std::chrono::steady_clock::duration poll = std::chrono::milliseconds(25)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(poll);
  }
  return condition();
}

}  // namespace vigil::test

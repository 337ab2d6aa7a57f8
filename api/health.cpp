#include "api/health.h"

#include <algorithm>
#include <cstdio>

namespace vigil {

std::string_view part_state_word(PartState state) {
  switch (state) {
    case PartState::alive:
      return "alive";
    case PartState::silent:
      return "silent";
    case PartState::not_running:
      return "not_running";
  }
  return "unknown";
}

std::vector<PartVerdict> judge_parts(const std::vector<PartProgress>& parts, TimePoint now,
                                     Millis silent_after) {
  std::vector<PartVerdict> verdicts;
  for (const std::string_view name : kHealthParts) {
    PartVerdict verdict;
    verdict.part = std::string(name);
    const PartProgress* stalest = nullptr;
    for (const auto& progress : parts)
      if (progress.part == name && (!stalest || progress.progressed_at < stalest->progressed_at))
        stalest = &progress;
    if (stalest) {
      // A beat from a clock slightly ahead of ours is fresh, not negative.
      verdict.age = std::max(Millis(0), now - stalest->progressed_at);
      verdict.instance = stalest->instance;
      verdict.state = *verdict.age > silent_after ? PartState::silent : PartState::alive;
    }
    verdicts.push_back(std::move(verdict));
  }
  return verdicts;
}

std::string describe_silent(const std::vector<PartVerdict>& verdicts) {
  std::string text;
  for (const auto& verdict : verdicts) {
    if (verdict.state != PartState::silent) continue;
    char seconds[32];
    std::snprintf(seconds, sizeof seconds, "%.1f", double(verdict.age->count()) / 1000.0);
    if (!text.empty()) text += ", ";
    text += verdict.part + " silent for " + seconds + " s";
  }
  return text;
}

}  // namespace vigil

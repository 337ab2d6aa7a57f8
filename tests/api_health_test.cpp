// The /healthz decision (api/health.h) at an injected instant: which part is silent, for how
// long, and which instance of it decides.
#include <gtest/gtest.h>

#include "api/health.h"

namespace vigil {
namespace {

using namespace std::chrono_literals;

const TimePoint kNow = from_unix_ms(1'700'000'000'000);
constexpr Millis kBound = 10s;

PartProgress progress(const std::string& part, Millis ago, const std::string& instance = "eu") {
  return PartProgress{part, instance, kNow - ago};
}

TEST(Health, EveryPartIsReportedInOrderAndAnAbsentOneIsNotRunning) {
  const auto verdicts = judge_parts({progress("writer", 300ms)}, kNow, kBound);
  ASSERT_EQ(verdicts.size(), 3u);
  EXPECT_EQ(verdicts[0].part, "runner");
  EXPECT_EQ(verdicts[0].state, PartState::not_running);
  EXPECT_FALSE(verdicts[0].age);
  EXPECT_EQ(verdicts[1].part, "writer");
  EXPECT_EQ(verdicts[1].state, PartState::alive);
  EXPECT_EQ(verdicts[1].age, 300ms);
  EXPECT_EQ(verdicts[1].instance, "eu");
  EXPECT_EQ(verdicts[2].part, "alerter");
  EXPECT_EQ(verdicts[2].state, PartState::not_running);
  EXPECT_EQ(describe_silent(verdicts), "");
}

TEST(Health, APartIsSilentOnlyPastTheBound) {
  EXPECT_EQ(judge_parts({progress("runner", kBound)}, kNow, kBound)[0].state, PartState::alive);
  const auto late = judge_parts({progress("runner", kBound + 1ms)}, kNow, kBound);
  EXPECT_EQ(late[0].state, PartState::silent);
  EXPECT_EQ(late[0].age, kBound + 1ms);
  EXPECT_EQ(describe_silent(late), "runner silent for 10.0 s");
}

TEST(Health, TheStalestInstanceDecidesAndEverySilentPartIsNamed) {
  const auto verdicts = judge_parts({progress("runner", 1s, "eu"), progress("runner", 42s, "us"),
                                     progress("writer", 2s), progress("alerter", 12'345ms)},
                                    kNow, kBound);
  EXPECT_EQ(verdicts[0].state, PartState::silent);
  EXPECT_EQ(verdicts[0].instance, "us");
  EXPECT_EQ(verdicts[1].state, PartState::alive);
  EXPECT_EQ(describe_silent(verdicts), "runner silent for 42.0 s, alerter silent for 12.3 s");
}

TEST(Health, ABeatFromAClockAheadIsFreshNotNegative) {
  const auto verdicts = judge_parts({progress("runner", -3s)}, kNow, kBound);
  EXPECT_EQ(verdicts[0].state, PartState::alive);
  EXPECT_EQ(verdicts[0].age, 0ms);
}

TEST(Health, TheDefaultBoundIsThreeBeatsWithATenSecondFloor) {
  EXPECT_EQ(default_silent_after(kDefaultBeatPeriod), 10s);
  EXPECT_EQ(default_silent_after(500ms), 10s);
  EXPECT_EQ(default_silent_after(5s), 15s);
}

}  // namespace
}  // namespace vigil

// `vigil beat`'s command line (api/push_client.h): a push token may start with '-' (base64url),
// so a bare token is never mistaken for an option; options stay strict.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "api/push_client.h"

namespace vigil {
namespace {

TEST(BeatArguments, ATokenStartingWithADashIsTheTarget) {
  const auto options =
      parse_beat_arguments({"-0I2nwTnFOiiapmlVRHhN62yNRLGV7wk", "--msg", "backup"});
  EXPECT_EQ(options.target, "-0I2nwTnFOiiapmlVRHhN62yNRLGV7wk");
  EXPECT_EQ(options.message, "backup");
  EXPECT_EQ(parse_beat_arguments({"--fail", "-abc"}).target, "-abc");
}

TEST(BeatArguments, UnknownOptionsAreStillRefused) {
  EXPECT_THROW(parse_beat_arguments({"--fast", "token"}), UsageError);
  EXPECT_THROW(parse_beat_arguments({"token", "-x"}), UsageError);
  EXPECT_THROW(parse_beat_arguments({
                   "token",
                   "--",
               }),
               UsageError);
  EXPECT_THROW(parse_beat_arguments({"--msg"}), UsageError);
  EXPECT_THROW(parse_beat_arguments(std::vector<std::string>{}), UsageError);
}

}  // namespace
}  // namespace vigil

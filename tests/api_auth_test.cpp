// The API's access rules as pure functions: token comparison, loopback addresses, and
// who may read, write and see secrets. The same rules over HTTP are in api_write_test.
#include <gtest/gtest.h>

#include <string>

#include "api/auth.h"

namespace vigil {
namespace {

constexpr const char* kWrite = "write-token-0123456789";
constexpr const char* kRead = "read-token-0123456789";

Credentials from(const std::string& authorization, const std::string& address) {
  static thread_local std::string header, remote;
  header = authorization;
  remote = address;
  return Credentials{header, remote};
}

TEST(ApiAuth, ConstantTimeEqualsIsPlainEquality) {
  EXPECT_TRUE(constant_time_equals("secret-token", "secret-token"));
  EXPECT_FALSE(constant_time_equals("secret-tokem", "secret-token"));
  EXPECT_FALSE(constant_time_equals("Secret-token", "secret-token"));
  EXPECT_FALSE(constant_time_equals("secret-toke", "secret-token"));
  EXPECT_FALSE(constant_time_equals("secret-token-", "secret-token"));
  // A repetition of the expected token must not pass through the modulo indexing.
  EXPECT_FALSE(constant_time_equals("abcabc", "abc"));
  EXPECT_FALSE(constant_time_equals("", "abc"));
  EXPECT_TRUE(constant_time_equals("", ""));
  EXPECT_FALSE(constant_time_equals("x", ""));
  EXPECT_FALSE(constant_time_equals(std::string("ab\0c", 4), "abxc"));
}

TEST(ApiAuth, LoopbackAddresses) {
  for (const char* yes : {"127.0.0.1", "127.255.0.9", "::1", "::ffff:127.0.0.1"})
    EXPECT_TRUE(is_loopback_address(yes)) << yes;
  for (const char* no : {"10.0.0.1", "128.0.0.1", "126.255.255.255", "::2", "fd00::1",
                         "::ffff:10.0.0.1", "", "localhost", "127.0.0.1 ", "0.0.0.0"})
    EXPECT_FALSE(is_loopback_address(no)) << no;
}

TEST(ApiAuth, WritesNeedTheWriteTokenOrLoopbackWithoutOne) {
  const AccessTokens with{kWrite, ""};
  EXPECT_EQ(write_access(with, from("", "127.0.0.1")), Access::unauthenticated);
  EXPECT_EQ(write_access(with, from("Bearer nope", "127.0.0.1")), Access::forbidden);
  EXPECT_EQ(write_access(with, from(std::string("Bearer ") + kWrite, "10.1.1.1")), Access::allowed);
  EXPECT_EQ(write_access(with, from(std::string("bearer  ") + kWrite + " ", "10.1.1.1")),
            Access::allowed);
  EXPECT_EQ(write_access(with, from(std::string("Basic ") + kWrite, "10.1.1.1")),
            Access::unauthenticated);
  const AccessTokens without{"", ""};
  EXPECT_EQ(write_access(without, from("", "127.0.0.1")), Access::allowed);
  EXPECT_EQ(write_access(without, from("", "::1")), Access::allowed);
  EXPECT_EQ(write_access(without, from("", "192.0.2.7")), Access::forbidden);
  EXPECT_EQ(write_access(without, from(std::string("Bearer ") + kWrite, "192.0.2.7")),
            Access::forbidden);
}

TEST(ApiAuth, ReadsAreOpenUnlessAReadTokenIsSet) {
  EXPECT_EQ(read_access({kWrite, ""}, from("", "192.0.2.7")), Access::allowed);
  const AccessTokens both{kWrite, kRead};
  EXPECT_EQ(read_access(both, from("", "127.0.0.1")), Access::unauthenticated);
  EXPECT_EQ(read_access(both, from("Bearer nope", "127.0.0.1")), Access::forbidden);
  EXPECT_EQ(read_access(both, from(std::string("Bearer ") + kRead, "192.0.2.7")), Access::allowed);
  EXPECT_EQ(read_access(both, from(std::string("Bearer ") + kWrite, "192.0.2.7")), Access::allowed);
  // The read token never writes.
  EXPECT_EQ(write_access(both, from(std::string("Bearer ") + kRead, "127.0.0.1")),
            Access::forbidden);
}

TEST(ApiAuth, SecretsAreForWritersAndReadTokenHolders) {
  const AccessTokens both{kWrite, kRead};
  EXPECT_TRUE(may_see_secrets(both, from(std::string("Bearer ") + kWrite, "192.0.2.7")));
  EXPECT_TRUE(may_see_secrets(both, from(std::string("Bearer ") + kRead, "192.0.2.7")));
  EXPECT_FALSE(may_see_secrets(both, from("", "127.0.0.1")));
  EXPECT_FALSE(may_see_secrets({kWrite, ""}, from("", "127.0.0.1")));
  EXPECT_TRUE(may_see_secrets({"", ""}, from("", "127.0.0.1")));
  EXPECT_FALSE(may_see_secrets({"", ""}, from("", "192.0.2.7")));
}

}  // namespace
}  // namespace vigil

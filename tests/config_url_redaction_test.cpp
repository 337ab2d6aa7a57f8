#include <gtest/gtest.h>

#include "core/url_redaction.h"

namespace vigil {
namespace {

std::string reader(std::string_view url) { return redact_url(url, UrlAudience::reader); }
std::string writer(std::string_view url) { return redact_url(url, UrlAudience::writer); }

TEST(UrlRedaction, HidesThePasswordFromEveryone) {
  const char* url = "http://user:s3cret@example.com:8080/health";
  EXPECT_EQ(reader(url), "http://user:<redacted>@example.com:8080/health");
  EXPECT_EQ(writer(url), "http://user:<redacted>@example.com:8080/health");
}

TEST(UrlRedaction, HidesAUserinfoWithoutPasswordWhole) {
  EXPECT_EQ(writer("https://ghp_token@example.com/"), "https://<redacted>@example.com/");
  EXPECT_EQ(writer("tcp://token@db:5432"), "tcp://<redacted>@db:5432");
}

TEST(UrlRedaction, ThePasswordEndsAtTheLastAtOfTheAuthority) {
  // An '@' in the path is not userinfo; two in the authority leave nothing of the password.
  EXPECT_EQ(writer("http://a:b@c@host/users/@me"), "http://a:<redacted>@host/users/@me");
  EXPECT_EQ(writer("http://host/users/@me?x=1"), "http://host/users/@me?x=1");
}

TEST(UrlRedaction, HidesQueryValuesFromReadersOnly) {
  const char* url = "https://example.com/p?api_key=abc123&region=eu&flag&empty=#frag?x=1";
  EXPECT_EQ(reader(url),
            "https://example.com/p?api_key=<redacted>&region=<redacted>&flag&empty=#frag?x=1");
  EXPECT_EQ(writer(url), url);
}

TEST(UrlRedaction, TreatsBothPartsTogether) {
  EXPECT_EQ(reader("http://user:password@host/x?api_key=k"),
            "http://user:<redacted>@host/x?api_key=<redacted>");
  EXPECT_EQ(reader("http://user:password@host?api_key=k"),
            "http://user:<redacted>@host?api_key=<redacted>");
}

TEST(UrlRedaction, LeavesUrlsWithoutSecretsAlone) {
  for (const char* url : {"http://127.0.0.1:8080/", "https://example.com", "tcp://db:5432", "",
                          "not a url", "https://example.com/#a@b"})
    EXPECT_EQ(reader(url), url) << url;
}

TEST(UrlRedaction, IsIdempotent) {
  for (const char* url : {"http://user:password@host/x?api_key=k&b=2", "http://token@host/?a=1"}) {
    const std::string once = reader(url);
    EXPECT_EQ(reader(once), once);
    EXPECT_EQ(writer(once), once);
  }
}

}  // namespace
}  // namespace vigil

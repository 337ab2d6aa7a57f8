// DATABASE_URL: which connection strings the settings accept, the conflict with DB_FILE, and the
// password kept out of every message and every rendering of the string.
#include <gtest/gtest.h>

#include <string>
#include <utility>

#include "config/config.h"
#include "config/database_url.h"
#include "support/text.h"

namespace vigil {
namespace {

using test::contains;

// The ConfigError load_settings throws for `env`, or a failure when it throws none.
std::string config_error(const EnvMap& env) {
  try {
    load_settings(env);
  } catch (const ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "accepted";
  return {};
}

TEST(DatabaseUrl, UnsetMeansSqliteAtDbFile) {
  const Settings s = load_settings({{"DB_FILE", "/tmp/x.db"}});
  EXPECT_TRUE(s.database_url.empty());
  EXPECT_EQ(s.db_file, "/tmp/x.db");
  EXPECT_TRUE(load_settings({{"DATABASE_URL", ""}}).database_url.empty());
}

TEST(DatabaseUrl, AcceptsBothUriSchemesAndKeyValueStrings) {
  for (const char* url :
       {"postgresql://vigil:secret@127.0.0.1:5432/vigil",
        "postgres://vigil@db.example/vigil?sslmode=require&connect_timeout=3", "postgresql://",
        "postgresql:///vigil?host=/run/postgresql", "postgresql://u:p@[::1]:5433,10.0.0.2:5434/db",
        "host=127.0.0.1 port=5432 dbname=vigil user=vigil password=secret",
        "host = db.example dbname='my db' password='it\\'s secret'"}) {
    const Settings s = load_settings({{"DATABASE_URL", url}});
    EXPECT_EQ(s.database_url, url);
    EXPECT_EQ(connection_string_problem(url), std::nullopt) << url;
  }
}

TEST(DatabaseUrl, WithDbFileIsAnErrorNamingBoth) {
  const auto message = config_error(
      {{"DATABASE_URL", "postgresql://vigil:hunter2-secret@127.0.0.1/vigil"}, {"DB_FILE", "a.db"}});
  EXPECT_TRUE(contains(message, "DATABASE_URL")) << message;
  EXPECT_TRUE(contains(message, "DB_FILE")) << message;
  EXPECT_FALSE(contains(message, "hunter2")) << message;
}

TEST(DatabaseUrl, BadValuesNameTheVariableAndNeverThePassword) {
  const std::pair<const char*, const char*> cases[] = {
      {"mysql://root:hunter2@127.0.0.1/vigil", "unsupported scheme \"mysql\""},
      {"postgresql://vigil:hunter2@127.0.0.1:99999/vigil", "invalid port"},
      {"postgresql://vigil:hunter2@127.0.0.1:54x/vigil", "invalid port"},
      {"postgresql://vigil:hunter2@[::1/vigil", "unterminated IPv6"},
      {"postgresql://vigil:hunter2@127.0.0.1/vigil?sslmode", "query option 1 has no '='"},
      {"postgresql://vigil:hunter2@127.0.0.1/vigil?pasword=x", "unknown connection option"},
      {"postgresql://vigil:hun%zzter2@127.0.0.1/vigil", "invalid percent-escape"},
      {"postgresql://vigil:hunter2 @127.0.0.1/vigil", "spaces or control characters"},
      {"hunter2", "item 1 has no '='"},
      {"host=127.0.0.1 hunter2", "item 2 has no '='"},
      {"host=127.0.0.1 password='hunter2", "no closing quote"},
      {"host=127.0.0.1 passwd=hunter2", "unknown connection option \"passwd\""},
  };
  for (const auto& [url, expected] : cases) {
    const auto message = config_error({{"DATABASE_URL", url}});
    EXPECT_TRUE(contains(message, "DATABASE_URL: ")) << url << ": " << message;
    EXPECT_TRUE(contains(message, expected)) << url << ": " << message;
    EXPECT_FALSE(contains(message, "hunter2")) << url << ": " << message;
  }
}

TEST(DatabaseUrl, RedactionHidesPasswordsAndKeepsTheRest) {
  const std::pair<const char*, const char*> cases[] = {
      {"postgresql://vigil:hunter2@127.0.0.1:5432/vigil",
       "postgresql://vigil:<redacted>@127.0.0.1:5432/vigil"},
      {"postgres://vigil@db/vigil", "postgres://vigil@db/vigil"},
      {"postgresql://db/vigil?user=v&password=hunter2&sslmode=require",
       "postgresql://db/vigil?user=v&password=<redacted>&sslmode=require"},
      {"postgresql://db/vigil?pass%77ord=hunter2", "postgresql://db/vigil?pass%77ord=<redacted>"},
      {"postgresql://db/vigil?sslpassword=hunter2", "postgresql://db/vigil?sslpassword=<redacted>"},
      // Unescaped '@', '/' and '?' in a password: hidden whole all the same.
      {"postgresql://vigil:hun@ter2@db/vigil", "postgresql://vigil:<redacted>@db/vigil"},
      {"postgresql://vigil:hu/n?ter2@db/vigil", "postgresql://vigil:<redacted>@db/vigil"},
      {"mysql://root:hunter2@db/x", "mysql://root:<redacted>@db/x"},
      {"host=db password=hunter2 dbname=vigil", "host=db password=<redacted> dbname=vigil"},
      {"host=db password = 'hun ter\\'2' user=v", "host=db password = <redacted> user=v"},
      {"password= hunter2", "password= <redacted>"},
      {"host=db sslpassword=hunter2", "host=db sslpassword=<redacted>"},
      // Not splittable into pairs: it may be a bare password, so nothing of it is shown.
      {"hunter2", "<redacted>"},
      {"host=db password='hunter2", "<redacted>"},
  };
  for (const auto& [text, expected] : cases) {
    const std::string once = redact_connection_string(text);
    EXPECT_EQ(once, expected) << text;
    EXPECT_FALSE(contains(once, "hunter2") || contains(once, "ter2")) << text;
    EXPECT_EQ(redact_connection_string(once), once) << "not idempotent for " << text;
  }
}

}  // namespace
}  // namespace vigil

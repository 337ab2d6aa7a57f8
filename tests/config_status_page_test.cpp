// STATUS_PAGE_TITLE and STATUS_PAGE_PUBLIC are validated like every other setting.
#include <gtest/gtest.h>

#include <string>

#include "config/config.h"

namespace vigil {
namespace {

std::string error_of(const EnvMap& env) {
  try {
    load_settings(env);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "no error";
}

TEST(StatusPageSettings, DefaultsAndValues) {
  const Settings defaults = load_settings({});
  EXPECT_EQ(defaults.status_page_title, "vigil status");
  EXPECT_FALSE(defaults.status_page_public);
  const Settings set =
      load_settings({{"STATUS_PAGE_TITLE", "Acme <Status> & co"}, {"STATUS_PAGE_PUBLIC", "true"}});
  EXPECT_EQ(set.status_page_title, "Acme <Status> & co");
  EXPECT_TRUE(set.status_page_public);
  EXPECT_FALSE(load_settings({{"STATUS_PAGE_PUBLIC", "false"}}).status_page_public);
}

TEST(StatusPageSettings, BadValuesNameTheVariable) {
  for (const auto& value : {"yes", "1", "TRUE"}) {
    const std::string error = error_of({{"STATUS_PAGE_PUBLIC", value}});
    EXPECT_NE(error.find("STATUS_PAGE_PUBLIC"), std::string::npos) << value << ": " << error;
    EXPECT_NE(error.find("true or false"), std::string::npos) << error;
  }
  for (const std::string& value : {std::string(201, 'x'), std::string("a\x01z")}) {
    const std::string error = error_of({{"STATUS_PAGE_TITLE", value}});
    EXPECT_NE(error.find("STATUS_PAGE_TITLE"), std::string::npos) << error;
  }
  EXPECT_EQ(error_of({{"STATUS_PAGE_TITLE", std::string(200, 'x')}}), "no error");
  // Empty is unset, as for every variable: the default title.
  EXPECT_EQ(load_settings({{"STATUS_PAGE_TITLE", ""}}).status_page_title, "vigil status");
}

TEST(StatusPageSettings, ReadFromTheEnvironmentList) {
  // merged_environment only keeps the variables vigil knows.
  const EnvMap merged =
      merged_environment({{"STATUS_PAGE_TITLE", "t"}, {"STATUS_PAGE_PUBLIC", "true"}});
  EXPECT_EQ(merged.count("STATUS_PAGE_TITLE"), 1u);
  EXPECT_EQ(merged.count("STATUS_PAGE_PUBLIC"), 1u);
}

TEST(StatusPageSettings, EnvExampleSetsTheDefaults) {
  const Settings settings =
      load_settings(read_dotenv(std::string(VIGIL_SOURCE_DIR) + "/.env.example"));
  EXPECT_EQ(settings.status_page_title, "vigil status");
  EXPECT_FALSE(settings.status_page_public);
}

}  // namespace
}  // namespace vigil

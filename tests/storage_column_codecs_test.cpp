// The column decoders both backends read rows with (storage/column_codecs.h): what they return
// for the text the encoders write, and the StorageError, naming the column, for any other text.
#include <gtest/gtest.h>

#include <string>

#include "core/model.h"
#include "core/probe_options.h"
#include "storage/column_codecs.h"
#include "storage/store.h"

namespace vigil {
namespace {

using namespace std::chrono_literals;

// The message of the StorageError `read` throws, or "" when it returns or throws something else.
template <typename Read>
std::string storage_error_of(Read read) {
  try {
    read();
  } catch (const StorageError& e) {
    return e.what();
  } catch (...) {
  }
  return "";
}

TEST(ColumnCodecs, EventKindReadsBothKindsAndRejectsAnyOtherText) {
  EXPECT_EQ(column_codecs::decode_event_kind("uptime"), EventKind::uptime);
  EXPECT_EQ(column_codecs::decode_event_kind("downtime"), EventKind::downtime);
  EXPECT_EQ(storage_error_of([] { column_codecs::decode_event_kind("Downtime"); }),
            "unknown event kind 'Downtime' in service_events");
  EXPECT_EQ(storage_error_of([] { column_codecs::decode_event_kind(""); }),
            "unknown event kind '' in service_events");
}

TEST(ColumnCodecs, ProbeOptionsReadBackWhatIsStored) {
  ProbeOptions options;
  options.max_redirects = 2;
  options.user_agent = "deep/1";
  options.retry_interval = 2500ms;
  EXPECT_EQ(column_codecs::read_probe_options(encode_probe_options(options)), options);
  EXPECT_EQ(column_codecs::read_probe_options(""), ProbeOptions{});
}

TEST(ColumnCodecs, ProbeOptionsThatDoNotDecodeAreAStorageErrorNamingTheColumn) {
  // A ConfigError would read as a mistake in the services file; it is the database that is wrong.
  const std::string message =
      storage_error_of([] { column_codecs::read_probe_options(R"({"max_redirects": "x"})"); });
  EXPECT_EQ(message.rfind("bad services.probe_options: ", 0), 0u) << message;
}

}  // namespace
}  // namespace vigil

// The .env reader and the settings built from it, on arbitrary bytes: a ConfigError naming the
// file or the variable, or settings within their documented ranges. Anything else is a bug.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "config/config.h"
#include "fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace vigil;
  // read_dotenv takes a path: an in-memory file keeps the disk out of the loop.
  const int fd = memfd_create("fuzz.env", MFD_CLOEXEC);
  FUZZ_CHECK(fd >= 0, "memfd_create failed");
  for (std::size_t written = 0; written < size;) {
    const ssize_t n = ::write(fd, data + written, size - written);
    FUZZ_CHECK(n > 0, "write failed");
    written += static_cast<std::size_t>(n);
  }
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  try {
    const Settings settings = load_settings(read_dotenv(path));
    FUZZ_CHECK(settings.api_port >= 0 && settings.api_port <= 65535, "API_PORT");
    FUZZ_CHECK(settings.default_interval >= kMinInterval, "RUNNER_SCRAPE_INTERVAL_SECONDS");
    FUZZ_CHECK(settings.default_timeout > Millis::zero(), "RUNNER_HTTP_TIMEOUT_SECONDS");
    FUZZ_CHECK(settings.max_concurrency >= 1, "RUNNER_MAX_CONCURRENCY");
  } catch (const ConfigError&) {
  }
  ::close(fd);
  return 0;
}

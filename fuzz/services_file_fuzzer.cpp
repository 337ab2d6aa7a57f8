// The services-file parser on arbitrary bytes. Either the text is rejected with a ConfigError,
// or every service it yields keeps the file's rules (unique names, interval at least the
// minimum, timeout within the interval) and survives the round trip the write API and the
// database rely on: service_spec_json(spec) parses back to an equal spec. Any other exception,
// a crash, a sanitizer report or a hang is a bug.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "config/config.h"
#include "fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace vigil;
  static const Settings settings;
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<ServiceSpec> specs;
  try {
    specs = parse_services(text, "services.json", settings);
  } catch (const ConfigError& e) {
    FUZZ_CHECK(std::string(e.what()).starts_with("services.json"),
               std::string("an error that does not name the file: ") + e.what());
    return 0;
  }
  std::set<std::string> names;
  for (const ServiceSpec& spec : specs) {
    FUZZ_CHECK(names.insert(spec.name).second, "duplicate name accepted: " + spec.name);
    FUZZ_CHECK(spec.interval >= kMinInterval, spec.name);
    FUZZ_CHECK(spec.kind != ServiceKind::http || spec.timeout <= spec.interval, spec.name);
    ServiceSpec again;
    try {
      again = parse_service_spec(service_spec_json(spec), "round trip", settings);
    } catch (const ConfigError& e) {
      FUZZ_CHECK(false, std::string("an accepted spec does not read back: ") + e.what());
    }
    FUZZ_CHECK(again == spec, "read back differently: " + service_spec_json(spec).dump() +
                                  " became " + service_spec_json(again).dump());
  }
  return 0;
}

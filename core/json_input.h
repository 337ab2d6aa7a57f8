// JSON that comes from a user: the services file and the API's write bodies. Both are read by
// the same two rules, so a document means the same thing wherever it is given:
//  - nesting is bounded (kMaxJsonDepth): nlohmann parses any depth, but printing or walking a
//    value recurses once per level, and a file nested 100,000 deep overflowed the stack;
//  - an object may name a key once: nlohmann keeps the last of two equal keys silently, so
//    `"url"` written twice would mean whichever came last.
// Stateless; any thread may call these.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace vigil {

// Arrays and objects inside each other, the outermost counting as 1. A services file needs 7
// (object, services, service, conditions, json list, check, an equals value); the rest is slack.
inline constexpr std::size_t kMaxJsonDepth = 64;

// The largest configuration file vigil reads: far above any real services file (a 10,000-service
// file is about 2 MiB), small enough that a wrong path such as /dev/zero ends with a message
// instead of exhausting memory.
inline constexpr std::uintmax_t kMaxConfigFileBytes = 64ull * 1024 * 1024;

// How read_config_file's messages name the services file.
inline constexpr const char* kServicesFileWhat = "the services file (SERVICES_FILE)";

// Parses `text` as one JSON document. On success returns it (any type: the caller checks the
// shape). Throws ConfigError, every message starting with `where`:
//   `<where>: not valid JSON: <nlohmann's reason>` (syntax, numbers beyond a double),
//   `<where>: nested deeper than 64 levels of arrays and objects`,
//   `<where>: duplicate key "url" at services[0]` (`at` names the object by its path from the
//   root, as a.b[2]; a duplicate in the root object has no `at`). When the root is an array,
//   `root_array_name` (e.g. "services") names it in that path: services[0] rather than [0].
nlohmann::json parse_json_input(std::string_view text, const std::string& where,
                                const std::string& root_array_name = "");

// The whole content of the configuration file at `path`. Throws ConfigError naming `path` and
// `what` (e.g. "the services file (SERVICES_FILE)") when it is missing or unreadable, is a
// directory, or is larger than kMaxConfigFileBytes (reading stops there, so an endless device
// ends too).
std::string read_config_file(const std::string& path, const std::string& what);

// `value` as JSON for a message that quotes it: at most 80 bytes (shortened(), core/text.h),
// invalid UTF-8 replaced rather than thrown.
std::string shown(const nlohmann::json& value);

}  // namespace vigil

// Configuration: settings from `.env` and the environment, and the services file.
// Every invalid value is a ConfigError whose message names the file or variable, the field and
// the bad value; `vigil` prints it and exits with code 2.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "config/logging.h"
#include "storage/model.h"

namespace vigil {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

using EnvMap = std::map<std::string, std::string>;

struct Settings {
  std::string api_host = "127.0.0.1";           // API_HOST
  int api_port = 9999;                          // API_PORT
  std::string db_file = "vigil.db";             // DB_FILE
  std::string services_file = "services.json";  // SERVICES_FILE
  Millis default_interval{15'000};              // RUNNER_SCRAPE_INTERVAL_SECONDS
  Millis default_timeout{15'000};               // RUNNER_HTTP_TIMEOUT_SECONDS
  std::size_t max_concurrency = 1000;           // RUNNER_MAX_CONCURRENCY
  std::string region = "local";                 // PROBER_REGION
  LogLevel log_level = LogLevel::info;          // LOG_LEVEL
};

// Reads KEY=VALUE lines (blank lines and # comments skipped, optional `export `, values may be
// quoted). A missing file is an empty map; a malformed line is a ConfigError naming the line.
EnvMap read_dotenv(const std::string& path);

// `dotenv` overlaid with the process environment (the real environment wins), for the variables
// vigil knows.
EnvMap merged_environment(const EnvMap& dotenv);

// Builds Settings from variables; unset ones keep their defaults.
Settings load_settings(const EnvMap& env);

// Parses the services file: a JSON list of services (see README). Defaults for interval and
// timeout come from `settings`. Rejects unknown keys, bad URLs, duplicate names, non-number or
// too small intervals, a timeout above the interval, bad methods, headers and status ranges.
std::vector<ServiceSpec> parse_services(const std::string& json_text, const std::string& source,
                                        const Settings& settings);
std::vector<ServiceSpec> load_services_file(const std::string& path, const Settings& settings);

// Minimum interval a service may declare.
inline constexpr Millis kMinInterval{100};

}  // namespace vigil

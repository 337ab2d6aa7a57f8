// Configuration: settings from `.env` and the environment, and the services file.
// Every invalid value is a ConfigError whose message names the file or variable, the field and
// the bad value; `vigil` prints it and exits with code 2.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/config_error.h"
#include "core/logging.h"
#include "core/model.h"

namespace vigil {

using EnvMap = std::map<std::string, std::string>;

struct Settings {
  std::string api_host = "127.0.0.1";  // API_HOST
  int api_port = 9999;                 // API_PORT
  std::string db_file = "vigil.db";    // DB_FILE
  // DATABASE_URL: a libpq connection string (config/database_url.h) selecting PostgreSQL instead
  // of SQLite at db_file; empty means SQLite. Holds a password: log redact_connection_string(it).
  std::string database_url;
  std::string services_file = "services.json";  // SERVICES_FILE
  Millis default_interval{15'000};              // RUNNER_SCRAPE_INTERVAL_SECONDS
  Millis default_timeout{15'000};               // RUNNER_HTTP_TIMEOUT_SECONDS
  std::size_t max_concurrency = 1000;           // RUNNER_MAX_CONCURRENCY
  std::string region = "local";                 // PROBER_REGION
  // PROBER_SOURCE_IP: the local address probes leave from unless a service names its own
  // (source_ip); empty: the system chooses.
  std::string source_ip;
  // A cluster (several processes on one PostgreSQL database; storage/cluster.h): this process's
  // name among them (INSTANCE_NAME; empty: from the host name and API port, see instance_name())
  // and
  // how long a member's lease lasts unrenewed (CLUSTER_LEASE_SECONDS).
  std::string instance_name;
  Millis cluster_lease{10'000};
  LogLevel log_level = LogLevel::info;  // LOG_LEVEL
  // Service management and heartbeats.
  std::string api_token;       // API_TOKEN: empty means writes only from loopback clients
  std::string api_read_token;  // API_READ_TOKEN: empty means reads are open
  Millis tick_retention{30LL * 24 * 3600 * 1000};  // RETENTION_DAYS; zero keeps ticks forever
  Millis cleanup_interval{3'600'000};              // CLEANUP_INTERVAL_SECONDS
  // Time series: rollup retention per resolution; zero keeps them forever.
  Millis minute_retention{30LL * 24 * 3600 * 1000};  // RETENTION_MINUTE_DAYS
  Millis hour_retention{400LL * 24 * 3600 * 1000};   // RETENTION_HOUR_DAYS
  // Status page and badges.
  std::string status_page_title = "vigil status";  // STATUS_PAGE_TITLE
  bool status_page_public = false;  // STATUS_PAGE_PUBLIC: true opens them without API_READ_TOKEN
  // Tick records held in memory while storage fails; past it the oldest are dropped.
  std::size_t storage_queue_max_ticks = 1'000'000;  // STORAGE_QUEUE_MAX_TICKS
  // Liveness beats (api/health.h): written this often by the runner process; a part silent for
  // longer than health_silent_after (default max(3 x beat, 10 s); at least 3 x beat and 2 s)
  // fails /healthz.
  Millis health_beat_period{2'000};    // HEALTH_BEAT_SECONDS
  Millis health_silent_after{10'000};  // HEALTH_SILENT_AFTER_SECONDS
};

// INSTANCE_NAME when set; else "<host name>:<API port>" for a process that serves the API, and
// "<host name>:<API port>/runner" for `vigil runner` (so that it and the `vigil api` beside it
// differ): unique per host as long as each `vigil run` or `vigil api` has its own port.
std::string instance_name(const Settings& settings, bool serves_api);

// Reads KEY=VALUE lines (blank lines and # comments skipped, optional `export `, values may be
// quoted). A missing file is an empty map; a malformed line is a ConfigError naming the line.
EnvMap read_dotenv(const std::string& path);

// `dotenv` overlaid with the process environment (the real environment wins), for the variables
// vigil knows.
EnvMap merged_environment(const EnvMap& dotenv);

// Builds Settings from variables; unset ones keep their defaults. DATABASE_URL and DB_FILE both
// set is a ConfigError naming both (one selects PostgreSQL, the other SQLite).
Settings load_settings(const EnvMap& env);

// Parses the services file: a JSON list of services (see README), each checked by
// parse_service_spec. Defaults for interval and timeout come from `settings`. Rejects unknown
// keys, bad URLs, duplicate names, non-number or too small intervals, a timeout above the
// interval, bad methods, headers and status ranges, bad heartbeat and metadata fields.
std::vector<ServiceSpec> parse_services(const std::string& json_text, const std::string& source,
                                        const Settings& settings);
std::vector<ServiceSpec> load_services_file(const std::string& path, const Settings& settings);

// One service object, from the services file or an API body, checked by the same rules with the
// same messages. `where` starts every message ("services.json: services[2]", "service"); the
// service's name follows it once known. Defaults come from `settings`. Throws ConfigError.
ServiceSpec parse_service_spec(const nlohmann::json& entry, const std::string& where,
                               const Settings& settings);

// The service object that parse_service_spec reads back to a spec equal to `spec` (every
// field explicit, optional ones omitted when empty). The base a PATCH is merged onto.
nlohmann::json service_spec_json(const ServiceSpec& spec);

// A PATCH body applied to `current`: each key of `patch` replaces the current value (whole
// lists and objects), null resets it to its default. Values that were defaults derived from the
// interval (timeout, grace) follow a changed interval; a changed mute drops the old snooze.
// Returns the object to check with parse_service_spec. Throws ConfigError (prefixed by `where`)
// when `patch` is not an object or tries to change the kind.
nlohmann::json merge_service_patch(const ServiceSpec& current, const nlohmann::json& patch,
                                   const std::string& where, const Settings& settings);

}  // namespace vigil

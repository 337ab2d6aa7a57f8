// The probe-depth keys of a service object: conditions, HTTP and TLS options, the TCP
// conversation, failure/success thresholds and the retry interval. One parser for the services
// file, the write API and the database column, so a value means the same everywhere.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/model.h"

namespace vigil {

// Whether `key` is one of the keys below (for parse_service's unknown-key check).
bool is_probe_option_key(std::string_view key);

// "conditions, body, ..., retry_interval_seconds": the keys, for messages.
const char* probe_option_keys_text();

// Reads the probe-depth keys present in `entry` (a service object) into spec.probe; a
// "conditions" object's "status" becomes spec.expected_status. Needs spec.url, method, kind,
// interval and expected_status already parsed: it also rejects what does not fit them (HTTP
// options on a tcp:// service, send/expect on an HTTP one, a body on GET, any of these on a
// heartbeat, a retry interval not shorter than the interval) and files that cannot be read.
// Messages start with `at` (the service, named). Throws ConfigError.
void parse_probe_options(const nlohmann::json& entry, const std::string& at, ServiceSpec& spec);

// Adds the probe-depth keys whose value differs from the default to `object`, in the shape
// parse_probe_options reads (so a spec survives a round trip).
void add_probe_options_json(const ProbeOptions& options, nlohmann::json& object);

// The stored form (services.probe_options): the JSON of add_probe_options_json, "" when every
// field has its default. decode_probe_options reads it back without the checks that depend on
// the rest of the spec or on files (they held when the spec was accepted). Throws ConfigError.
std::string encode_probe_options(const ProbeOptions& options);
ProbeOptions decode_probe_options(const std::string& text);

}  // namespace vigil

// How the spec fields that are not plain columns are stored as text, the same on every backend
// (so a database can be copied from one to another as it is), and the reader of a services row.
// Pure functions, safe from any thread. The decoders throw StorageError for text no encoder writes,
// or nlohmann::json::exception for malformed JSON.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/model.h"
#include "storage/stored_row.h"

namespace vigil::column_codecs {

// services.headers: JSON [["Name", "value"], ...] in the order they are sent.
std::string encode_headers(const std::vector<std::pair<std::string, std::string>>& headers);
std::vector<std::pair<std::string, std::string>> decode_headers(const std::string& text);
// services.expected_status: "200-399,404" (format_status_ranges) read back.
std::vector<StatusRange> decode_status(std::string_view text);
// services.tags and services.alert_channels: a JSON list of strings.
std::string encode_tags(const std::vector<std::string>& tags);
std::vector<std::string> decode_tags(const std::string& text);
// services.kind; StorageError on a kind this build does not know.
ServiceKind decode_service_kind(const std::string& text);
// services.probe_options (encode_probe_options, core/probe_options.h) read back; StorageError,
// not ConfigError, on text that does not decode: it is the database that is wrong, not a config.
ProbeOptions read_probe_options(const std::string& text);
// service_events.event: "uptime" or "downtime"; StorageError for any other text.
EventKind decode_event_kind(const std::string& text);
// services.push_token for a new heartbeat: 192 bits from the kernel's CSPRNG, base64url without
// padding (32 characters, so it sits in a URL path as is), never starting with '-', which a
// command line (`vigil beat <token>`, curl) would take for an option. StorageError when no
// random bytes can be read.
std::string new_push_token();

// Free text from outside (a probe's error, a pushed message, an alert's reason, a receiver's
// answer) as every backend stores it: each NUL character, which is valid UTF-8 but which
// PostgreSQL's text cannot hold, as U+FFFD (the replacement character). So such text neither
// fails a batch forever nor reads back differently from one backend to the other.
std::string without_nul(std::string text);

// The columns of a services row every backend selects (as `s`), in the order read_service reads
// them, and how many there are.
inline constexpr const char* kServiceColumns =
    "s.id, s.name, s.url, s.interval_ms, s.timeout_ms, s.method, s.headers, s.expected_status, "
    "s.active, s.created_at, s.updated_at, "
    "s.kind, s.grace_ms, s.threshold, s.team, s.priority, s.runbook, s.tags, s.muted, "
    "s.muted_until, s.source, s.push_token, "
    "s.probe_options, "
    "s.alert_channels, s.repeat_every_ms";
inline constexpr int kServiceColumnCount = 25;
// A Service from the columns of kServiceColumns starting at column `first` of `row`. Throws as
// the decoders above do, and whatever `row` throws.
Service read_service(const StoredRow& row, int first);

}  // namespace vigil::column_codecs

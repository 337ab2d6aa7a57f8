// How the spec fields that are not plain columns are stored, in the same text as on SQLite (so
// `vigil migrate` copies them as they are), and the push token. Internal to storage/postgres/.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/model.h"

namespace vigil::postgres_codecs {

// services.headers: JSON [["Name", "value"], ...] in the order they are sent.
std::string encode_headers(const std::vector<std::pair<std::string, std::string>>& headers);
std::vector<std::pair<std::string, std::string>> decode_headers(const std::string& text);
// services.expected_status: "200-399,404" (format_status_ranges) read back; StorageError on
// malformed text.
std::vector<StatusRange> decode_status(std::string_view text);
// services.tags and services.alert_channels: a JSON list of strings.
std::string encode_tags(const std::vector<std::string>& tags);
std::vector<std::string> decode_tags(const std::string& text);
// StorageError on a kind this build does not know.
ServiceKind decode_service_kind(const std::string& text);
EventKind decode_event_kind(const std::string& text);
ProbeOptions read_probe_options(const std::string& text);
// A push token: 192 bits from the kernel's CSPRNG, base64url without padding (32 characters),
// never starting with '-', which a command line would take for an option.
std::string new_push_token();

}  // namespace vigil::postgres_codecs

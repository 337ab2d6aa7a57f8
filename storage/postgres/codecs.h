// How the spec fields that are not plain columns are stored, in the same text as on SQLite (so
// `vigil migrate` copies them as they are), and the push token. Internal to storage/postgres/.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/model.h"
#include "storage/column_codecs.h"

namespace vigil::postgres_codecs {

// The spec fields that are not plain columns: as on every backend (storage/column_codecs.h).
using column_codecs::decode_headers;
using column_codecs::decode_service_kind;
using column_codecs::decode_status;
using column_codecs::decode_tags;
using column_codecs::encode_headers;
using column_codecs::encode_tags;
using column_codecs::new_push_token;
// StorageError on a kind this build does not know.
EventKind decode_event_kind(const std::string& text);
ProbeOptions read_probe_options(const std::string& text);

}  // namespace vigil::postgres_codecs

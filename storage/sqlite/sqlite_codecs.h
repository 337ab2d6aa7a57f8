// How a service and a tick's phases are laid out in SQLite columns: the phase columns and the
// reader of a services row (the text of the spec fields that are not plain columns is every
// backend's: storage/column_codecs.h). Internal to the SQLite backend.
#pragma once

#include <SQLiteCpp/SQLiteCpp.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/model.h"
#include "storage/column_codecs.h"

namespace vigil::sqlite {

// Times and durations are stored as unix milliseconds.
inline std::int64_t ms(TimePoint t) { return to_unix_ms(t); }
inline std::int64_t ms(Millis d) { return d.count(); }

// The five phase columns of a tick, in whole microseconds: bound at ?first.. (NULL without
// phases), read from column `first` on (NULL resolve_us means no phases).
void bind_phases(SQLite::Statement& statement, int first, const std::optional<PhaseTimings>& p);
std::optional<PhaseTimings> read_phases(const SQLite::Statement& row, int first);

// Columns s.id .. s.push_token in this order, starting at `first`.
inline constexpr const char* kServiceColumns =
    "s.id, s.name, s.url, s.interval_ms, s.timeout_ms, s.method, s.headers, s.expected_status, "
    "s.active, s.created_at, s.updated_at, "
    "s.kind, s.grace_ms, s.threshold, s.team, s.priority, s.runbook, s.tags, s.muted, "
    "s.muted_until, s.source, s.push_token, "
    "s.probe_options, "
    "s.alert_channels, s.repeat_every_ms";
inline constexpr int kServiceColumnCount = 25;

// A Service from the columns of kServiceColumns starting at `first`. `Row`: SQLite::Statement,
// or any statement type with the same getColumn and isColumnNull.
template <typename Row>
Service read_service(const Row& row, int first) {
  Service service;
  service.id = row.getColumn(first + 0).getInt64();
  service.spec.name = row.getColumn(first + 1).getString();
  service.spec.url = row.getColumn(first + 2).getString();
  service.spec.interval = Millis(row.getColumn(first + 3).getInt64());
  service.spec.timeout = Millis(row.getColumn(first + 4).getInt64());
  service.spec.method = row.getColumn(first + 5).getString();
  service.spec.headers = column_codecs::decode_headers(row.getColumn(first + 6).getString());
  service.spec.expected_status = column_codecs::decode_status(row.getColumn(first + 7).getString());
  service.active = row.getColumn(first + 8).getInt() != 0;
  service.created_at = from_unix_ms(row.getColumn(first + 9).getInt64());
  service.updated_at = from_unix_ms(row.getColumn(first + 10).getInt64());
  // Kind, heartbeat deadline, metadata, source, push token.
  const int m = first + 11;
  service.spec.kind = column_codecs::decode_service_kind(row.getColumn(m + 0).getString());
  service.spec.grace = Millis(row.getColumn(m + 1).getInt64());
  service.spec.threshold = row.getColumn(m + 2).getInt();
  service.spec.team = row.getColumn(m + 3).getString();
  service.spec.priority = row.getColumn(m + 4).getInt();
  service.spec.runbook = row.getColumn(m + 5).getString();
  service.spec.tags = column_codecs::decode_tags(row.getColumn(m + 6).getString());
  service.spec.muted = row.getColumn(m + 7).getInt() != 0;
  if (!row.isColumnNull(m + 8))
    service.spec.muted_until = from_unix_ms(row.getColumn(m + 8).getInt64());
  service.source =
      row.getColumn(m + 9).getString() == "api" ? ServiceSource::api : ServiceSource::file;
  if (!row.isColumnNull(m + 10)) service.push_token = row.getColumn(m + 10).getString();
  service.spec.probe = column_codecs::read_probe_options(row.getColumn(first + 22).getString());
  // Alert routing of the service.
  service.spec.alert_channels = column_codecs::decode_tags(row.getColumn(first + 23).getString());
  if (!row.isColumnNull(first + 24))
    service.spec.repeat_every = Millis(row.getColumn(first + 24).getInt64());
  return service;
}

}  // namespace vigil::sqlite

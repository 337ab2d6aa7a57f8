// The PostgreSQL schema, by versioned migrations recorded in schema_version, as on SQLite.
// Internal to storage/postgres/.
//
// Conventions (the same as the SQLite schema's, so both backends hold the same values):
// - Every instant is int8 milliseconds since the Unix epoch (UTC): the same numbers as SQLite's
//   INTEGER columns, so a value reads back as the same bytes in JSON, the rollup buckets are
//   the same integer arithmetic, and `vigil migrate` copies numbers as they are.
// - service_ticks is partitioned by RANGE on ts, one partition per UTC day, named
//   service_ticks_d<day> (day: ts / 86,400,000, "m" before a negative one). Retention drops
//   whole partitions.
#pragma once

#include <cstdint>
#include <set>
#include <string>

#include "storage/postgres/session.h"

namespace vigil::postgres_schema {

int current_version();

// Brings the database to current_version() in one transaction, under an advisory lock so two
// processes opening it at once cannot both migrate. A no-op on an up-to-date database. Throws
// StorageError when the database was migrated by a newer vigil; `name` names it in the message.
void migrate(postgres::Session& session, const std::string& name);

inline constexpr std::int64_t kPartitionMs = 86'400'000;
// The day of `ts_ms` (floor), and the name of its partition.
std::int64_t partition_day(std::int64_t ts_ms);
std::string partition_name(std::int64_t day);
// The days that have a partition of service_ticks.
std::set<std::int64_t> partition_days(postgres::Session& session);
// Creates the partition of `day` unless it exists (in its own statement: not inside a batch's
// transaction, whose readers would otherwise wait on the parent table's lock).
void create_partition(postgres::Session& session, std::int64_t day);

}  // namespace vigil::postgres_schema

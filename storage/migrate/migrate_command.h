// `vigil migrate --from <sqlite file> --to <postgresql URL or libpq conninfo>`: the command line
// of storage/migrate/sqlite_to_postgres.h. Called from main.cpp on the main thread.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace vigil {

// Exit statuses of `vigil migrate`: 0 copied and committed; kMigrateExitRefused (2) when the
// command line is wrong or the copy was refused before anything was written (the source is not
// at this vigil's schema version, the target already holds vigil data); kMigrateExitFailed (1)
// when the copy failed (the source unreadable, the target unreachable, a row refused), nothing
// committed.
inline constexpr int kMigrateExitFailed = 1;
inline constexpr int kMigrateExitRefused = 2;

// Runs the command on `args` (what follows "migrate"): progress lines and errors to `err`, the
// summary (rows copied per table) to `out`. Neither ever shows the target's password. Returns
// the exit status.
int migrate_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace vigil

// The SQLite schema and its migrations. Internal to storage/: the rest of vigil only sees Store.
#pragma once

#include <string>

namespace SQLite {
class Database;
}

namespace vigil::sqlite_schema {

// The newest schema version this build knows how to create and use.
int current_version();

// Brings `db` to current_version(): creates schema_version if needed, then applies every missing
// migration in order, all inside one IMMEDIATE transaction so two processes opening the same
// file at once (vigil runner and vigil api) cannot both migrate. A no-op on an up-to-date file.
// Throws StorageError when the file was written by a newer vigil; `path` names it in the message.
void migrate(SQLite::Database& db, const std::string& path);

}  // namespace vigil::sqlite_schema

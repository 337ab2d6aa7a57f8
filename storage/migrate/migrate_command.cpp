#include "storage/migrate/migrate_command.h"

#include <iomanip>
#include <optional>
#include <string>

#include "config/database_url.h"
#include "storage/migrate/sqlite_to_postgres.h"

namespace vigil {
namespace {

constexpr const char* kUsage =
    "usage: vigil migrate --from <sqlite file> --to <postgresql://... or libpq conninfo>\n"
    "  copies every service, tick, rollup, event, alert, notification and maintenance window\n"
    "  of the SQLite file into an empty PostgreSQL database, in one transaction\n";

struct Arguments {
  std::string from;
  std::string to;
};

// Throws std::invalid_argument with the message to show (never the value of --to).
Arguments parse(const std::vector<std::string>& args) {
  std::optional<std::string> from, to;
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string name = args[i];
    std::optional<std::string> value;
    if (const auto equals = name.find('='); name.starts_with("--") && equals != std::string::npos) {
      value = name.substr(equals + 1);
      name.erase(equals);
    }
    if (name != "--from" && name != "--to")
      throw std::invalid_argument("unexpected argument \"" + name + "\"");
    if (!value) {
      if (i + 1 == args.size()) throw std::invalid_argument(name + " needs a value");
      value = args[++i];
    }
    auto& slot = name == "--from" ? from : to;
    if (slot) throw std::invalid_argument(name + " given twice");
    slot = *value;
  }
  if (!from || from->empty()) throw std::invalid_argument("--from <sqlite file> is required");
  if (!to || to->empty())
    throw std::invalid_argument("--to <postgresql URL or libpq conninfo> is required");
  if (const auto problem = connection_string_problem(*to))
    throw std::invalid_argument("--to: " + *problem);
  return {*from, *to};
}

}  // namespace

int migrate_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  if (args.size() == 1 && (args[0] == "--help" || args[0] == "-h")) {
    out << kUsage;
    return 0;
  }
  Arguments arguments;
  try {
    arguments = parse(args);
  } catch (const std::invalid_argument& e) {
    err << "vigil migrate: " << e.what() << "\n" << kUsage;
    return kMigrateExitRefused;
  }
  err << "migrate: copying " << arguments.from << " to " << redact_connection_string(arguments.to)
      << std::endl;
  try {
    const MigrateSummary summary = migrate_sqlite_to_postgres(arguments.from, arguments.to, err);
    out << "migrated " << arguments.from << " to " << summary.target << ":\n";
    for (const auto& table : summary.tables)
      out << "  " << std::left << std::setw(24) << table.table << std::right << std::setw(12)
          << table.rows << "\n";
    out << "component_beats (process liveness) are not copied: the processes on the new database "
           "write their own\n";
    return 0;
  } catch (const MigrateRefused& e) {
    err << "vigil migrate: refused, nothing was copied: " << e.what() << "\n";
    return kMigrateExitRefused;
  } catch (const MigrateFailed& e) {
    err << "vigil migrate: failed, nothing was copied: " << e.what() << "\n";
    return kMigrateExitFailed;
  }
}

}  // namespace vigil

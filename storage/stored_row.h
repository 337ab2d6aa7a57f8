// StoredRow: one row of a query's result as the backend-neutral row readers take it
// (read_alert and read_notification, storage/alert_store.h; read_service,
// storage/column_codecs.h), so that the mapping from a row's
// columns to a struct is written once and a backend says only how it reads one column.
//
// Columns count from 0, in the order of the SELECT. A backend implements it over its own row
// (a SQLite statement stepped onto a row, a PostgreSQL result and a row number); the
// implementation refers to that row and lives no longer than it. integer, boolean and text are
// for columns that are not NULL: what they return or throw for a NULL column is the backend's,
// so a reader asks is_null first wherever a column may be NULL. A backend's errors (a column
// out of range, a value of another type) propagate as that backend reports them.
//
// Thread-safety: as the row it reads.
#pragma once

#include <cstdint>
#include <string>

namespace vigil {

class StoredRow {
 public:
  virtual bool is_null(int column) const = 0;
  virtual std::int64_t integer(int column) const = 0;
  virtual bool boolean(int column) const = 0;
  virtual std::string text(int column) const = 0;

 protected:
  // Not owned through this interface: a backend's row wrapper is a local of the reading code.
  ~StoredRow() = default;
};

}  // namespace vigil

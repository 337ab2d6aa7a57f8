// Small RAII types over libpq for the PostgreSQL backend: a Connection, the Result of a
// statement, and a Transaction guard. Statements take text parameters ($1, $2, ...), a
// std::nullopt parameter being SQL NULL, so no value is ever spliced into SQL text.
//
// Errors are PgError exceptions. Their messages never contain the connection's password: a
// connection is named by host, port, database and user, and the password's text is removed from
// whatever libpq or the server says.
//
// Threads: a Connection, and every Result and Transaction made from it, belongs to one thread at
// a time (libpq's rule for a PGconn); distinct Connections may be used from distinct threads at
// once. A Result owns its data and stays valid after the Connection is gone.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

struct pg_conn;
struct pg_result;

namespace vigil::postgres {

// Who a PgError is owed to.
enum class PgFault {
  statement,   // the server refused or failed the statement (see the SQLSTATE), or the result
               // was not what was expected
  connection,  // no connection could be made, or it was lost
  no_answer,   // the server left a statement unanswered past the reply timeout
};

class PgError : public std::runtime_error {
 public:
  PgError(const std::string& message, std::string sqlstate = {}, PgFault fault = PgFault::statement)
      : std::runtime_error(message), sqlstate_(std::move(sqlstate)), fault_(fault) {}
  // The server's five-character SQLSTATE ("42P01": undefined table, "23505": unique violation),
  // or empty when the error is not the server's (cannot connect, connection lost).
  const std::string& sqlstate() const { return sqlstate_; }
  // True when the server, not the statement, is at fault, so the same call may succeed later:
  // it cannot be reached, the connection was lost or went unanswered past its reply timeout,
  // the server is shutting down, starting or full, or it cancelled the statement at its
  // statement_timeout (a lock held elsewhere, an overloaded server).
  bool unavailable() const {
    return fault_ != PgFault::statement || sqlstate_.starts_with("08") ||
           sqlstate_.starts_with("57P") || sqlstate_ == "57014" || sqlstate_ == "53300";
  }
  PgFault fault() const { return fault_; }

 private:
  std::string sqlstate_;
  PgFault fault_;
};

// A statement parameter as text (PostgreSQL converts it to the column's type); nullopt is NULL.
using Param = std::optional<std::string>;
using Params = std::vector<Param>;

// What a statement returned: its rows (values as text) or how many rows it changed.
class Result {
 public:
  // Takes ownership of `result` (PQclear on destruction); null is allowed and has no rows.
  explicit Result(pg_result* result);
  Result(Result&&) noexcept = default;
  Result& operator=(Result&&) noexcept = default;

  int rows() const;
  int columns() const;
  // The value at (row, column) as text, nullopt for NULL. Throws std::out_of_range for a row or
  // column that does not exist.
  std::optional<std::string> get(int row, int column) const;
  // The index of the column named `name`; throws std::out_of_range when there is none.
  int column(const std::string& name) const;
  // Rows changed by an INSERT, UPDATE, DELETE (also MERGE, COPY, SELECT's row count): 0 for other
  // statements.
  long long affected_rows() const;

 private:
  struct Clear {
    void operator()(pg_result* result) const;
  };
  std::unique_ptr<pg_result, Clear> result_;
};

struct ConnectOptions {
  // The bound on establishing the connection (libpq's connect_timeout, whole seconds, at least 2:
  // libpq raises anything shorter to 2). A connect_timeout in the connection string wins.
  std::chrono::seconds connect_timeout{10};
  // The bound on the server's silence once connected: how long any one wait for it (to take
  // what is sent, or to answer a statement) may last. Kept by the client, so it also holds when
  // the server cannot enforce a statement_timeout (its processes stopped, its machine gone while
  // the connection looks open). Past it the connection is closed (ok() is false) and the
  // statement fails with PgError. Nothing: wait as long as the server takes.
  std::optional<std::chrono::milliseconds> reply_timeout = std::nullopt;
};

class Connection {
 public:
  // Connects to `conninfo` (a postgresql:// or postgres:// URI or libpq key=value pairs; unset
  // fields come from libpq's PG* environment variables and defaults), blocking for at most
  // options.connect_timeout. Throws PgError when the string cannot be parsed (the string is not
  // shown: it may hold a password) or the server cannot be reached or refuses (the message names
  // host, port, database and user, and says libpq's reason).
  explicit Connection(const std::string& conninfo, ConnectOptions options = {});
  ~Connection();
  Connection(Connection&&) noexcept;
  Connection& operator=(Connection&&) noexcept;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Runs `sql` (one or more statements, no parameters) and returns the last one's Result. Throws
  // PgError when a statement fails (the server's message, its SQLSTATE, and the start of `sql`)
  // or the connection is lost.
  Result exec(std::string_view sql);
  // Runs one statement with $1..$n bound to `params`. Throws PgError as exec(sql) does.
  Result exec(std::string_view sql, const Params& params);

  // Prepares `sql` (one statement, $1..$n, types inferred by the server) under `name` on this
  // connection, for exec_prepared. Throws PgError when the server refuses it (a syntax error, an
  // unknown table, `name` already prepared on this connection).
  void prepare(const std::string& name, std::string_view sql);
  // Runs the statement prepared as `name`. Throws PgError when it fails, when `name` was never
  // prepared on this connection, or when the number of parameters is wrong.
  Result exec_prepared(const std::string& name, const Params& params);

  // Runs `copy_sql` (a COPY ... FROM STDIN statement) with `data` as its input, in COPY's text
  // format (see CopyText), and returns the number of rows it wrote. Throws PgError as exec does:
  // a row the server refuses fails the whole COPY, and the statement writes nothing.
  long long copy_in(std::string_view copy_sql, std::string_view data);

  // Whether the connection is still usable, as far as libpq knows (it learns of a loss when a
  // statement fails). A lost Connection stays lost: make a new one.
  bool ok() const;
  // ok(), and the server has said nothing unasked since the last statement, found without
  // sending anything: a session the server ended meanwhile (pg_terminate_backend, a shutdown or
  // a restart: it says so and closes the socket) is false here, before a statement is sent on
  // it. Only between statements.
  bool check_alive() const;
  // True when inside a transaction block (BEGIN seen, COMMIT or ROLLBACK not yet).
  bool in_transaction() const;
  // ConnectOptions::reply_timeout, changed from the next wait on.
  void set_reply_timeout(std::optional<std::chrono::milliseconds> timeout) {
    reply_timeout_ = timeout;
  }
  std::optional<std::chrono::milliseconds> reply_timeout() const { return reply_timeout_; }
  // "host=... port=... dbname=... user=...": what error messages name, never the password.
  const std::string& description() const { return description_; }

 private:
  [[noreturn]] void fail(const std::string& what, pg_result* result) const;
  Result checked(pg_result* result, std::string_view what) const;
  // After a PQsend* call (`sent` its return): sends what libpq holds and collects the results
  // as PQexec would (the last one, or the first error; a COPY's start as soon as it comes),
  // every wait bounded by the reply timeout. Throws PgError when the call or the connection
  // fails.
  pg_result* finish(int sent, const std::string& what);
  // Sends what libpq holds, waiting for room as the reply timeout allows.
  void flush(const std::string& what);
  // Waits until the socket is ready for `events` (poll's), reading what arrived when it is
  // readable. Past the reply timeout: abandon.
  void wait_for(short events, const std::string& what);
  // Closes the connection the server left unanswered and throws PgError saying so.
  [[noreturn]] void abandon(const std::string& what);

  friend class Transaction;  // reads libpq's transaction status at COMMIT

  pg_conn* connection_ = nullptr;
  std::optional<std::chrono::milliseconds> reply_timeout_;
  std::string password_;  // only to remove it from messages
  std::string description_;
};

// BEGIN on construction; ROLLBACK on destruction unless commit() was called, so an exception
// between the two leaves nothing behind. The Connection must outlive the Transaction; one
// Transaction at a time per Connection (PostgreSQL has no nested BEGIN).
class Transaction {
 public:
  // Throws PgError when BEGIN fails.
  explicit Transaction(Connection& connection);
  // ROLLBACK unless committed. Never throws: on a lost connection the server rolls back itself.
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  // COMMIT. Throws PgError when it fails, and when a statement inside failed earlier (SQLSTATE
  // 25P02: PostgreSQL rolls the whole transaction back, where COMMIT would silently answer
  // ROLLBACK). Either way the transaction is over afterwards: the destructor does nothing more.
  void commit();

 private:
  Connection& connection_;
  bool finished_ = false;
};

}  // namespace vigil::postgres

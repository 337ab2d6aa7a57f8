// What every part of the PostgreSQL store shares: a Session (a Connection whose statements are
// prepared once, on first use, by their SQL text), a pool of read Sessions, and the text codecs
// of the values vigil stores (libpq passes every value as text).
//
// Threads: a Session belongs to one thread at a time; the SessionPool may be used from any
// thread, and each Lease is its holder's alone.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "storage/column_codecs.h"
#include "storage/postgres/connection.h"

namespace vigil::postgres {

// What bounds a Session's waits on the server.
struct SessionLimits {
  // The server cancels any statement of the session that runs (or waits for a lock) longer,
  // and it fails with PgError (SQLSTATE 57014). Nothing: no limit.
  std::optional<std::chrono::milliseconds> statement_timeout = std::nullopt;
  // ConnectOptions::reply_timeout: the client's own bound, for a server that cannot enforce
  // statement_timeout (stopped, or gone while the connection looks open).
  std::optional<std::chrono::milliseconds> reply_timeout = std::nullopt;
  std::chrono::seconds connect_timeout{10};

  // For a session that serves a caller waiting on it (the API, /healthz, the alerter): its
  // statements cancelled after `statement_timeout`, the server's silence bounded a little past
  // it (so a live server's cancellation comes first), and a connect bounded by as much (at
  // least 2 s, libpq's floor).
  static SessionLimits answering_within(std::chrono::milliseconds statement_timeout);
};

class Session {
 public:
  // Connects (PgError when it cannot) and sets what every statement of the store relies on.
  explicit Session(const std::string& conninfo, const SessionLimits& limits = {});

  // Runs `sql` ($1..$n bound to `params`) as a prepared statement, preparing it on this
  // connection the first time this text is seen. Throws PgError as Connection::exec_prepared.
  Result run(const std::string& sql, const Params& params = {});
  // Runs `sql` (statements without parameters) unprepared: DDL, BEGIN, SET.
  Result exec(std::string_view sql) { return connection_.exec(sql); }

  // Runs the session under `limits` from now on (its statement_timeout and reply timeout; the
  // connect timeout was used already). The SET is itself bounded by the tighter of the old and
  // the new reply timeout. Throws PgError.
  void limit(const SessionLimits& limits);

  Connection& connection() { return connection_; }
  bool ok() const { return connection_.ok(); }
  // Connection::check_alive: false for a session the server ended while it was idle.
  bool alive() const { return connection_.check_alive(); }

 private:
  Connection connection_;
  std::unordered_map<std::string, std::string> prepared_;  // SQL text -> statement name
};

// One Session kept for a caller that uses it again and again (the store's writes, the alerts,
// the component beats), replaced when it is found lost: the server ended it (found before a
// statement is sent on it), restarted, or left it unanswered.
//
// Threads: as a Session, one at a time (its owner serialises calls, e.g. with a mutex).
class SessionHolder {
 public:
  // Connects nothing yet.
  SessionHolder(std::string conninfo, SessionLimits limits)
      : conninfo_(std::move(conninfo)), limits_(limits) {}

  // The session, connected anew when there is none or the last one is lost. Throws PgError
  // when a new one cannot be made.
  Session& get();
  // BEGIN on get()'s session, in `txn`. A session found lost at BEGIN (ended by the server
  // between the check and BEGIN) is replaced and BEGIN tried once more: nothing of the
  // transaction has run. Throws PgError.
  Session& begin(std::optional<Transaction>& txn);
  // Runs the session, and any that replaces it, under `limits` instead of the holder's own until
  // relax(): for a caller that waits on it and needs its statements bounded tighter. Returns
  // get()'s session; throws PgError as get() and Session::limit.
  Session& tighten(const SessionLimits& limits);
  // Back to the holder's own limits. Never throws: a session that cannot be told is dropped.
  void relax();
  // The server's name as the connection describes it (host, port, database, user), once one
  // was made; empty before.
  const std::string& description() const { return description_; }

 private:
  const std::string conninfo_;
  const SessionLimits limits_;
  std::optional<SessionLimits> tightened_;  // set between tighten() and relax()
  std::unique_ptr<Session> session_;
  bool session_tightened_ = false;  // session_ runs under tightened_
  std::string description_;
};

// Read Sessions, opened on demand and handed out one per caller; a lost one is not kept. Each
// has a statement timeout, so a stuck server fails a read (the API answers an error) instead of
// holding its thread.
class SessionPool {
 public:
  static constexpr std::chrono::milliseconds kStatementTimeout{5000};

  explicit SessionPool(std::string conninfo, std::size_t max_idle = 8)
      : conninfo_(std::move(conninfo)), max_idle_(max_idle) {}

  class Lease {
   public:
    Lease(SessionPool& pool, std::unique_ptr<Session> session)
        : pool_(pool), session_(std::move(session)) {}
    ~Lease() { pool_.give_back(std::move(session_)); }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    Session& operator*() const { return *session_; }
    Session* operator->() const { return session_.get(); }

   private:
    SessionPool& pool_;
    std::unique_ptr<Session> session_;
  };

  // An idle Session that is still alive, or a new one (PgError when the server cannot be
  // reached).
  Lease acquire();
  // Closes the idle Sessions: one was found lost, so the others (as old) likely are too, after a
  // server restart.
  void discard_idle();

 private:
  void give_back(std::unique_ptr<Session> session);

  const std::string conninfo_;
  const std::size_t max_idle_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<Session>> idle_;
};

// ---- values as the text libpq sends and returns ----

std::string text(std::int64_t value);
std::string text(double value);  // shortest text that reads back as the same double
inline std::string text(bool value) { return value ? "t" : "f"; }
inline std::string text(int value) { return text(std::int64_t{value}); }

// The value at (row, column), which must not be NULL (PgError otherwise).
std::int64_t int_at(const Result& result, int row, int column);
double double_at(const Result& result, int row, int column);
bool bool_at(const Result& result, int row, int column);
std::string text_at(const Result& result, int row, int column);
// bytea in PostgreSQL's hex output ("\x0a01") as raw bytes.
std::string bytes_at(const Result& result, int row, int column);
bool null_at(const Result& result, int row, int column);

// Raw bytes as a bytea parameter ("\x0a01").
std::string bytea(std::string_view bytes);

// Outside text as PostgreSQL's text type can hold it (storage/column_codecs.h).
using column_codecs::without_nul;

// A one-dimensional array parameter ("{1,2,NULL}") for statements that take a whole batch as
// arrays and unnest them, so a batch is one statement whatever its size.
class ArrayText {
 public:
  void add(std::int64_t value) { element(text(value)); }
  void add(int value) { element(text(value)); }
  void add(double value) { element(text(value)); }
  void add(bool value) { element(text(value)); }
  // A text element, quoted and escaped, without_nul; nullopt is NULL.
  void add(const std::optional<std::string>& value);
  void add_null() { element("NULL"); }
  std::string str() const { return text_ + "}"; }
  bool empty() const { return text_.size() == 1; }

 private:
  void element(std::string_view value);
  std::string text_ = "{";
};

// Rows in COPY's text format (columns separated by tabs, \N for NULL, a line a row) for
// Connection::copy_in: a batch the server reads without the arrays' parsing and unnesting.
class CopyText {
 public:
  void add(std::int64_t value) { field(text(value)); }
  void add(int value) { field(text(value)); }
  void add(double value) { field(text(value)); }
  void add(bool value) { field(text(value)); }
  // A text value, escaped, without_nul; nullopt is NULL.
  void add(const std::optional<std::string>& value);
  void add_null() { field("\\N"); }
  // Ends the row the values since the last end_row (or the start) make.
  void end_row();
  const std::string& str() const { return text_; }
  bool empty() const { return text_.empty(); }

 private:
  void field(std::string_view value);
  std::string text_;
  bool row_started_ = false;
};

}  // namespace vigil::postgres

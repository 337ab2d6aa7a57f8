#include "storage/postgres/connection.h"

#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <utility>

namespace vigil::postgres {
namespace {

// Every occurrence of `secret` in `text` replaced, so that nothing libpq or the server echoes
// can carry the password out.
std::string without(std::string text, const std::string& secret) {
  if (secret.empty()) return text;
  constexpr std::string_view kRedacted = "<redacted>";
  // Searched on after each replacement: a password like "red" must not be found inside it.
  for (auto at = text.find(secret); at != std::string::npos;
       at = text.find(secret, at + kRedacted.size()))
    text.replace(at, secret.size(), kRedacted);
  return text;
}

// libpq's messages end in a newline and may span lines ("...failed: ...\n\tIs the server
// running..."): one line for a log.
std::string one_line(std::string text) {
  std::replace(text.begin(), text.end(), '\t', ' ');
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  for (auto at = text.find('\n'); at != std::string::npos; at = text.find('\n', at))
    text.replace(at, 1, "; ");
  return text;
}

std::string statement_start(std::string_view sql) {
  constexpr std::size_t kShown = 120;
  std::string text(sql.substr(0, kShown));
  std::replace_if(
      text.begin(), text.end(), [](char c) { return c == '\n' || c == '\t' || c == '\r'; }, ' ');
  return sql.size() > kShown ? text + "..." : text;
}

// Server notices (NOTICE, WARNING) would otherwise go to stderr unformatted, between log lines.
void ignore_notice(void*, const char*) {}

struct ParsedOptions {
  std::string password;
  std::string description;
};

// The password (to remove it from messages) and the description, from libpq's own parse of the
// string, so both agree with what libpq will do. Nothing when libpq cannot parse it.
std::optional<ParsedOptions> parse_options(const std::string& conninfo) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &error);
  // libpq's parse errors quote the text they stumbled on, which may be the password.
  PQfreemem(error);
  if (!options) return std::nullopt;
  ParsedOptions parsed;
  for (const char* key : {"host", "hostaddr", "port", "dbname", "user"}) {
    for (PQconninfoOption* option = options; option->keyword; ++option) {
      if (std::string_view(option->keyword) != key || !option->val || !*option->val) continue;
      if (!parsed.description.empty()) parsed.description += ' ';
      parsed.description += std::string(key) + "=" + option->val;
    }
  }
  for (PQconninfoOption* option = options; option->keyword; ++option)
    if (std::string_view(option->keyword) == "password" && option->val)
      parsed.password = option->val;
  PQconninfoFree(options);
  if (parsed.description.empty()) parsed.description = "libpq's defaults";
  return parsed;
}

std::string describe(PGconn* connection) {
  std::string out;
  const auto add = [&](const char* key, const char* value) {
    if (!value || !*value) return;
    if (!out.empty()) out += ' ';
    out += std::string(key) + "=" + value;
  };
  add("host", PQhost(connection));
  add("port", PQport(connection));
  add("dbname", PQdb(connection));
  add("user", PQuser(connection));
  return out;
}

std::vector<const char*> param_pointers(const Params& params) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& param : params) values.push_back(param ? param->c_str() : nullptr);
  return values;
}

}  // namespace

void Result::Clear::operator()(pg_result* result) const { PQclear(result); }

Result::Result(pg_result* result) : result_(result) {}

int Result::rows() const { return result_ ? PQntuples(result_.get()) : 0; }

int Result::columns() const { return result_ ? PQnfields(result_.get()) : 0; }

std::optional<std::string> Result::get(int row, int column) const {
  if (row < 0 || row >= rows() || column < 0 || column >= columns())
    throw std::out_of_range("no value at row " + std::to_string(row) + ", column " +
                            std::to_string(column) + " (the result has " + std::to_string(rows()) +
                            " rows of " + std::to_string(columns()) + " columns)");
  if (PQgetisnull(result_.get(), row, column)) return std::nullopt;
  return std::string(PQgetvalue(result_.get(), row, column),
                     std::size_t(PQgetlength(result_.get(), row, column)));
}

int Result::column(const std::string& name) const {
  const int index = result_ ? PQfnumber(result_.get(), name.c_str()) : -1;
  if (index < 0) throw std::out_of_range("the result has no column \"" + name + "\"");
  return index;
}

long long Result::affected_rows() const {
  if (!result_) return 0;
  const char* count = PQcmdTuples(result_.get());
  return count && *count ? std::stoll(count) : 0;
}

Connection::Connection(const std::string& conninfo, ConnectOptions options) {
  const auto parsed = parse_options(conninfo);
  if (!parsed)
    throw PgError(
        "cannot connect to PostgreSQL: the connection string is not valid (not shown: it may "
        "hold a password)");
  password_ = parsed->password;
  description_ = parsed->description;
  const std::string timeout =
      std::to_string(std::max<long long>(2, options.connect_timeout.count()));
  // The string is expanded in place of "dbname" after connect_timeout, so its own
  // connect_timeout, if any, wins.
  const char* keywords[] = {"connect_timeout", "dbname", nullptr};
  const char* values[] = {timeout.c_str(), conninfo.c_str(), nullptr};
  connection_ = PQconnectdbParams(keywords, values, /*expand_dbname=*/1);
  if (!connection_)
    throw PgError("cannot connect to PostgreSQL (" + description_ + "): out of memory");
  // What libpq settled on, PG* variables and defaults included (and the host it tried last).
  if (auto described = describe(connection_); !described.empty()) description_ = described;
  // A password from PGPASSWORD or ~/.pgpass, when the string has none, is kept out as well.
  if (const char* used = PQpass(connection_); password_.empty() && used) password_ = used;
  if (PQstatus(connection_) != CONNECTION_OK) {
    const std::string reason = one_line(without(PQerrorMessage(connection_), password_));
    PQfinish(connection_);
    connection_ = nullptr;
    throw PgError("cannot connect to PostgreSQL (" + description_ + "): " + reason, {},
                  PgFault::connection);
  }
  PQsetNoticeProcessor(connection_, ignore_notice, nullptr);
  // Non-blocking, so that every wait for the server is a poll() this class bounds (finish).
  if (PQsetnonblocking(connection_, 1) != 0) {
    PQfinish(connection_);
    connection_ = nullptr;
    throw PgError("cannot connect to PostgreSQL (" + description_ + "): no non-blocking mode");
  }
  reply_timeout_ = options.reply_timeout;
}

Connection::~Connection() {
  if (connection_) PQfinish(connection_);
}

Connection::Connection(Connection&& other) noexcept
    : connection_(std::exchange(other.connection_, nullptr)),
      reply_timeout_(other.reply_timeout_),
      password_(std::move(other.password_)),
      description_(std::move(other.description_)) {}

Connection& Connection::operator=(Connection&& other) noexcept {
  if (this != &other) {
    if (connection_) PQfinish(connection_);
    connection_ = std::exchange(other.connection_, nullptr);
    reply_timeout_ = other.reply_timeout_;
    password_ = std::move(other.password_);
    description_ = std::move(other.description_);
  }
  return *this;
}

void Connection::fail(const std::string& what, pg_result* result) const {
  std::string sqlstate;
  std::string reason;
  if (result) {
    if (const char* code = PQresultErrorField(result, PG_DIAG_SQLSTATE)) sqlstate = code;
    reason = PQresultErrorMessage(result);
  }
  if (reason.empty() && connection_) reason = PQerrorMessage(connection_);
  if (reason.empty()) reason = "no connection";
  PQclear(result);
  std::string message = "PostgreSQL (" + description_ + "): " + one_line(reason);
  if (!sqlstate.empty()) message += " [SQLSTATE " + sqlstate + "]";
  message += " in " + what;
  throw PgError(without(std::move(message), password_), std::move(sqlstate),
                ok() ? PgFault::statement : PgFault::connection);
}

void Connection::abandon(const std::string& what) {
  PQfinish(connection_);  // non-blocking: the goodbye is sent if there is room, never waited on
  connection_ = nullptr;
  throw PgError(without("PostgreSQL (" + description_ + "): no answer within " +
                            std::to_string(reply_timeout_ ? reply_timeout_->count() : 0) +
                            " ms in " + what + "; the connection was closed",
                        password_),
                {}, PgFault::no_answer);
}

void Connection::wait_for(short events, const std::string& what) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = reply_timeout_ ? std::optional(Clock::now() + *reply_timeout_)
                                       : std::optional<Clock::time_point>();
  // Over TLS, libpq may hold the rest of a record it has already read off the socket, which
  // poll() cannot see: a wait for an answer then looks into libpq every few milliseconds.
  const bool answer_may_be_held = events == POLLIN && PQsslInUse(connection_);
  constexpr int kHeldCheckMs = 20;
  for (;;) {
    int timeout_ms = -1;
    if (deadline) {
      const auto left =
          std::chrono::ceil<std::chrono::milliseconds>(*deadline - Clock::now()).count();
      if (left <= 0) abandon(what);
      timeout_ms = static_cast<int>(left);
    }
    if (answer_may_be_held)
      timeout_ms = timeout_ms < 0 ? kHeldCheckMs : std::min(timeout_ms, kHeldCheckMs);
    pollfd socket{PQsocket(connection_), events, 0};
    const int ready = ::poll(&socket, 1, timeout_ms);
    if (ready < 0 && errno != EINTR) fail(what, nullptr);
    if (ready == 0 && answer_may_be_held) {
      if (PQconsumeInput(connection_) == 0) fail(what, nullptr);
      if (!PQisBusy(connection_)) return;
    }
    if (ready <= 0) continue;
    // Readable (or closed): libpq reads it, learning of a loss if that is what it was.
    if ((socket.revents & (POLLIN | POLLHUP | POLLERR)) && PQconsumeInput(connection_) == 0)
      fail(what, nullptr);
    return;
  }
}

void Connection::flush(const std::string& what) {
  for (;;) {
    const int left = PQflush(connection_);
    if (left == 0) return;
    if (left < 0) fail(what, nullptr);
    // libpq's rule: wait for either, since the server may answer before it takes the rest.
    wait_for(POLLIN | POLLOUT, what);
  }
}

pg_result* Connection::finish(int sent, const std::string& what) {
  if (sent != 1) fail(what, nullptr);
  flush(what);
  pg_result* kept = nullptr;
  try {
    for (;;) {
      while (PQisBusy(connection_)) wait_for(POLLIN, what);
      pg_result* next = PQgetResult(connection_);
      if (!next) return kept;
      const auto status = PQresultStatus(next);
      if (status == PGRES_COPY_IN || status == PGRES_COPY_OUT || status == PGRES_COPY_BOTH) {
        PQclear(kept);
        return next;
      }
      if (kept && PQresultStatus(kept) == PGRES_FATAL_ERROR) {
        PQclear(next);  // the first error says why; the server ran nothing after it
        continue;
      }
      PQclear(kept);
      kept = next;
    }
  } catch (...) {
    PQclear(kept);
    throw;
  }
}

Result Connection::checked(pg_result* result, std::string_view what) const {
  const auto status = result ? PQresultStatus(result) : PGRES_FATAL_ERROR;
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) fail(std::string(what), result);
  return Result(result);
}

Result Connection::exec(std::string_view sql) {
  if (!connection_) fail("\"" + statement_start(sql) + "\"", nullptr);
  const std::string text(sql);
  const std::string what = "\"" + statement_start(sql) + "\"";
  return checked(finish(PQsendQuery(connection_, text.c_str()), what), what);
}

Result Connection::exec(std::string_view sql, const Params& params) {
  if (!connection_) fail("\"" + statement_start(sql) + "\"", nullptr);
  const std::string text(sql);
  const auto values = param_pointers(params);
  const std::string what = "\"" + statement_start(sql) + "\"";
  return checked(finish(PQsendQueryParams(connection_, text.c_str(), int(values.size()), nullptr,
                                          values.data(), nullptr, nullptr, /*resultFormat=*/0),
                        what),
                 what);
}

void Connection::prepare(const std::string& name, std::string_view sql) {
  const std::string what = "preparing \"" + name + "\" as \"" + statement_start(sql) + "\"";
  if (!connection_) fail(what, nullptr);
  const std::string text(sql);
  checked(finish(PQsendPrepare(connection_, name.c_str(), text.c_str(), 0, nullptr), what), what);
}

Result Connection::exec_prepared(const std::string& name, const Params& params) {
  const std::string what = "prepared statement \"" + name + "\"";
  if (!connection_) fail(what, nullptr);
  const auto values = param_pointers(params);
  return checked(finish(PQsendQueryPrepared(connection_, name.c_str(), int(values.size()),
                                            values.data(), nullptr, nullptr, /*resultFormat=*/0),
                        what),
                 what);
}

long long Connection::copy_in(std::string_view copy_sql, std::string_view data) {
  const std::string what = "\"" + statement_start(copy_sql) + "\"";
  if (!connection_) fail(what, nullptr);
  const std::string text(copy_sql);
  pg_result* started = finish(PQsendQuery(connection_, text.c_str()), what);
  if (!started || PQresultStatus(started) != PGRES_COPY_IN) {
    checked(started, what);  // throws the server's error
    PQclear(started);
    fail(what + " (not a COPY FROM STDIN)", nullptr);
  }
  PQclear(started);
  // In pieces, as libpq's buffer takes them (0: no room yet, wait until the server takes some).
  constexpr std::size_t kPiece = 1 << 20;
  bool sent = true;
  for (std::size_t at = 0; sent && at < data.size(); at += kPiece) {
    const std::size_t n = std::min(kPiece, data.size() - at);
    int queued = 0;
    while ((queued = PQputCopyData(connection_, data.data() + at, static_cast<int>(n))) == 0)
      wait_for(POLLIN | POLLOUT, what);
    sent = queued == 1;
  }
  int ended = 0;
  while ((ended = PQputCopyEnd(connection_, sent ? nullptr : "sending the data failed")) == 0)
    wait_for(POLLIN | POLLOUT, what);
  // The COPY's own result: what the server says of the rows.
  Result result = checked(finish(ended, what), what);
  if (!sent) fail(what, nullptr);
  return result.affected_rows();
}

bool Connection::ok() const { return connection_ && PQstatus(connection_) == CONNECTION_OK; }

bool Connection::check_alive() const {
  if (!ok()) return false;
  pollfd socket{PQsocket(connection_), POLLIN, 0};
  // Between statements the server speaks unasked only to end the session (it says why, then
  // closes the socket), since no session of vigil's listens for notifications. Whatever it
  // said, the connection is not trusted with another statement.
  return ::poll(&socket, 1, 0) == 0;
}

bool Connection::in_transaction() const {
  if (!connection_) return false;
  const auto status = PQtransactionStatus(connection_);
  return status == PQTRANS_INTRANS || status == PQTRANS_INERROR || status == PQTRANS_ACTIVE;
}

Transaction::Transaction(Connection& connection) : connection_(connection) {
  connection_.exec("BEGIN");
}

Transaction::~Transaction() {
  if (finished_) return;
  try {
    connection_.exec("ROLLBACK");
  } catch (const PgError&) {
    // The connection is gone or broken: the server ends the transaction with the session.
  }
}

void Transaction::commit() {
  finished_ = true;
  // In a failed transaction the server answers COMMIT with ROLLBACK and no error: say it.
  if (connection_.connection_ && PQtransactionStatus(connection_.connection_) == PQTRANS_INERROR) {
    try {
      connection_.exec("ROLLBACK");
    } catch (const PgError&) {
      // Lost meanwhile: the server rolls back with the session.
    }
    throw PgError("PostgreSQL (" + connection_.description() +
                      "): COMMIT refused: a statement in the transaction failed, and the "
                      "transaction was rolled back",
                  "25P02");
  }
  connection_.exec("COMMIT");
}

}  // namespace vigil::postgres

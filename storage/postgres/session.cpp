#include "storage/postgres/session.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <utility>

namespace vigil::postgres {

SessionLimits SessionLimits::answering_within(std::chrono::milliseconds statement_timeout) {
  // The server's cancellation travels back within this, unless the server is stuck.
  constexpr std::chrono::milliseconds kReplyMargin{2000};
  return SessionLimits{
      .statement_timeout = statement_timeout,
      .reply_timeout = statement_timeout + kReplyMargin,
      .connect_timeout = std::max(std::chrono::seconds(2),
                                  std::chrono::ceil<std::chrono::seconds>(statement_timeout))};
}

Session::Session(const std::string& conninfo, const SessionLimits& limits)
    : connection_(conninfo, ConnectOptions{.connect_timeout = limits.connect_timeout,
                                           .reply_timeout = limits.reply_timeout}) {
  if (limits.statement_timeout)
    connection_.exec("SET statement_timeout = " +
                     std::to_string(limits.statement_timeout->count()));
  // Instants are int8 milliseconds, so no setting of the session changes a value; the float
  // output is exact (the default since PostgreSQL 12, set here so a server setting cannot change
  // it).
  connection_.exec("SET extra_float_digits = 1");
}

Result Session::run(const std::string& sql, const Params& params) {
  auto found = prepared_.find(sql);
  if (found == prepared_.end()) {
    std::string name = "vigil_" + std::to_string(prepared_.size() + 1);
    connection_.prepare(name, sql);
    found = prepared_.emplace(sql, std::move(name)).first;
  }
  return connection_.exec_prepared(found->second, params);
}

void Session::limit(const SessionLimits& limits) {
  auto during = connection_.reply_timeout();
  if (limits.reply_timeout && (!during || *limits.reply_timeout < *during))
    during = limits.reply_timeout;
  connection_.set_reply_timeout(during);
  connection_.exec(
      "SET statement_timeout = " +
      std::to_string(limits.statement_timeout ? limits.statement_timeout->count() : 0));
  connection_.set_reply_timeout(limits.reply_timeout);
}

Session& SessionHolder::get() {
  if (!session_ || !session_->alive()) {
    session_.reset();  // closed before its successor connects
    session_ = std::make_unique<Session>(conninfo_, tightened_.value_or(limits_));
    session_tightened_ = tightened_.has_value();
    description_ = session_->connection().description();
  }
  return *session_;
}

Session& SessionHolder::tighten(const SessionLimits& limits) {
  tightened_ = limits;
  Session& session = get();
  if (!session_tightened_) {
    session.limit(limits);
    session_tightened_ = true;
  }
  return session;
}

void SessionHolder::relax() {
  tightened_.reset();
  if (!session_ || !session_tightened_) return;
  try {
    session_->limit(limits_);
    session_tightened_ = false;
  } catch (const PgError&) {
    session_.reset();  // lost, or left unanswered: its successor starts under limits_
  }
}

Session& SessionHolder::begin(std::optional<Transaction>& txn) {
  Session* session = &get();
  try {
    txn.emplace(session->connection());
  } catch (const PgError& e) {
    if (session->ok() || e.fault() == PgFault::no_answer) throw;  // a stuck server stays stuck
    session = &get();
    txn.emplace(session->connection());
  }
  return *session;
}

SessionPool::Lease SessionPool::acquire() {
  std::vector<std::unique_ptr<Session>> ended;  // closed outside the lock
  {
    std::lock_guard lock(mutex_);
    while (!idle_.empty()) {
      auto session = std::move(idle_.back());
      idle_.pop_back();
      if (session->alive()) return Lease(*this, std::move(session));
      ended.push_back(std::move(session));
    }
  }
  // Connected outside the lock: a slow server must not stall the readers that have a session.
  return Lease(*this, std::make_unique<Session>(
                          conninfo_, SessionLimits::answering_within(kStatementTimeout)));
}

void SessionPool::discard_idle() {
  std::vector<std::unique_ptr<Session>> idle;
  {
    std::lock_guard lock(mutex_);
    idle.swap(idle_);
  }
  // Closed outside the lock.
}

void SessionPool::give_back(std::unique_ptr<Session> session) {
  if (!session || !session->ok() || session->connection().in_transaction()) return;
  std::lock_guard lock(mutex_);
  if (idle_.size() < max_idle_) idle_.push_back(std::move(session));
}

std::string text(std::int64_t value) { return std::to_string(value); }

std::string text(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "Infinity" : "-Infinity";
  char buffer[32];
  const auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  return std::string(buffer, end);
}

namespace {
const std::string& required(const Result& result, int row, int column,
                            std::optional<std::string>& holder) {
  holder = result.get(row, column);
  if (!holder)
    throw PgError("unexpected NULL in column " + std::to_string(column) + " of a result");
  return *holder;
}
}  // namespace

std::int64_t int_at(const Result& result, int row, int column) {
  std::optional<std::string> holder;
  const std::string& value = required(result, row, column, holder);
  std::int64_t out = 0;
  const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), out);
  if (ec != std::errc() || end != value.data() + value.size())
    throw PgError("not an integer: '" + value + "'");
  return out;
}

double double_at(const Result& result, int row, int column) {
  std::optional<std::string> holder;
  const std::string& value = required(result, row, column, holder);
  if (value == "NaN") return std::nan("");
  if (value == "Infinity") return HUGE_VAL;
  if (value == "-Infinity") return -HUGE_VAL;
  double out = 0;
  const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), out);
  if (ec != std::errc() || end != value.data() + value.size())
    throw PgError("not a number: '" + value + "'");
  return out;
}

bool bool_at(const Result& result, int row, int column) {
  std::optional<std::string> holder;
  return required(result, row, column, holder) == "t";
}

std::string text_at(const Result& result, int row, int column) {
  std::optional<std::string> holder;
  return required(result, row, column, holder);
}

bool null_at(const Result& result, int row, int column) {
  return !result.get(row, column).has_value();
}

namespace {
int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

std::string bytes_at(const Result& result, int row, int column) {
  std::optional<std::string> holder;
  const std::string& value = required(result, row, column, holder);
  if (value.size() < 2 || value[0] != '\\' || value[1] != 'x' || value.size() % 2 != 0)
    throw PgError("bytea not in hex format");
  std::string out;
  out.reserve(value.size() / 2 - 1);
  for (std::size_t i = 2; i < value.size(); i += 2) {
    const int high = hex_digit(value[i]);
    const int low = hex_digit(value[i + 1]);
    if (high < 0 || low < 0) throw PgError("bytea not in hex format");
    out.push_back(static_cast<char>(high << 4 | low));
  }
  return out;
}

std::string bytea(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out = "\\x";
  out.reserve(2 + 2 * bytes.size());
  for (const char c : bytes) {
    const auto byte = static_cast<unsigned char>(c);
    out.push_back(kDigits[byte >> 4]);
    out.push_back(kDigits[byte & 15]);
  }
  return out;
}

void ArrayText::element(std::string_view value) {
  if (text_.size() > 1) text_.push_back(',');
  text_.append(value);
}

void ArrayText::add(const std::optional<std::string>& value) {
  if (!value) return add_null();
  std::string quoted = "\"";
  for (const char c : without_nul(*value)) {
    if (c == '"' || c == '\\') quoted.push_back('\\');
    quoted.push_back(c);
  }
  quoted.push_back('"');
  element(quoted);
}

void CopyText::field(std::string_view value) {
  if (row_started_) text_.push_back('\t');
  row_started_ = true;
  text_.append(value);
}

void CopyText::add(const std::optional<std::string>& value) {
  if (!value) return add_null();
  std::string escaped;
  escaped.reserve(value->size());
  for (const char c : without_nul(*value)) {
    switch (c) {
      case '\\':
        escaped += "\\\\";
        break;
      case '\t':
        escaped += "\\t";
        break;
      case '\n':
        escaped += "\\n";
        break;
      case '\r':
        escaped += "\\r";
        break;
      default:
        escaped.push_back(c);
    }
  }
  field(escaped);
}

void CopyText::end_row() {
  text_.push_back('\n');
  row_started_ = false;
}

}  // namespace vigil::postgres

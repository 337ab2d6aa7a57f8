// The libpq wrapper (storage/postgres/connection.h) against a real PostgreSQL 15 started by the
// test itself (tests/support/postgres_server.h): statements, prepared statements with NULLs,
// transactions, errors, and passwords kept out of every message.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "storage/postgres/connection.h"
#include "support/postgres_server.h"
#include "support/raw_target.h"
#include "support/target_server.h"
#include "support/text.h"

namespace vigil::postgres {
namespace {

using test::PostgresServer;
using namespace std::chrono_literals;

using test::contains;

// The PgError `run` throws; a failure when it throws none.
template <typename Run>
PgError error_of(Run run) {
  try {
    run();
  } catch (const PgError& e) {
    return e;
  }
  ADD_FAILURE() << "no PgError was thrown";
  return PgError("none");
}

// One server for the whole binary: initdb and start cost a second or two.
class PostgresConnection : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    unavailable_ = PostgresServer::unavailable_reason();
    if (unavailable_) return;
    try {
      server_ = std::make_unique<PostgresServer>();
    } catch (const std::exception& e) {
      start_error_ = e.what();
    }
  }
  static void TearDownTestSuite() { server_.reset(); }
  void SetUp() override {
    if (unavailable_) GTEST_SKIP() << "no PostgreSQL server for this test: " << *unavailable_;
    ASSERT_TRUE(server_) << "the test server did not start: " << start_error_;
  }

  static Connection connect() { return Connection(server_->conninfo()); }
  static long long count(Connection& connection, const std::string& table) {
    return std::stoll(connection.exec("SELECT count(*) FROM " + table).get(0, 0).value());
  }

  static inline std::optional<std::string> unavailable_;
  static inline std::string start_error_;
  static inline std::unique_ptr<PostgresServer> server_;
};

TEST_F(PostgresConnection, ConnectsByKeyValueStringAndByUri) {
  for (const auto& conninfo : {server_->conninfo(), server_->url()}) {
    Connection connection(conninfo);
    EXPECT_TRUE(connection.ok());
    EXPECT_FALSE(connection.in_transaction());
    const Result result = connection.exec("SELECT 1 + 1 AS two, current_database()");
    ASSERT_EQ(result.rows(), 1);
    EXPECT_EQ(result.get(0, result.column("two")), "2");
    EXPECT_EQ(result.get(0, 1), server_->database());
    EXPECT_TRUE(contains(connection.description(), "port=" + std::to_string(server_->port())))
        << connection.description();
    EXPECT_FALSE(contains(connection.description(), server_->password()));
  }
}

TEST_F(PostgresConnection, PreparedInsertAndSelectRoundTripNullsAndEmptyStrings) {
  Connection connection = connect();
  connection.exec("CREATE TABLE round_trip (id bigint PRIMARY KEY, name text, note text)");
  connection.prepare("insert", "INSERT INTO round_trip (id, name, note) VALUES ($1, $2, $3)");
  const std::string hostile = "it's \"quoted\"'); DROP TABLE round_trip; --";
  EXPECT_EQ(connection.exec_prepared("insert", {"1", "alpha", std::nullopt}).affected_rows(), 1);
  EXPECT_EQ(connection.exec_prepared("insert", {"2", std::nullopt, hostile}).affected_rows(), 1);
  EXPECT_EQ(connection.exec_prepared("insert", {"3", "", std::nullopt}).affected_rows(), 1);

  connection.prepare("select", "SELECT name, note FROM round_trip WHERE id = $1");
  Result first = connection.exec_prepared("select", {"1"});
  ASSERT_EQ(first.rows(), 1);
  EXPECT_EQ(first.get(0, first.column("name")), "alpha");
  EXPECT_EQ(first.get(0, first.column("note")), std::nullopt);
  const Result second = connection.exec_prepared("select", {"2"});
  EXPECT_EQ(second.get(0, 0), std::nullopt);
  EXPECT_EQ(second.get(0, 1), hostile);
  const Result third = connection.exec_prepared("select", {"3"});
  EXPECT_EQ(third.get(0, 0), std::optional<std::string>(""));  // empty, not NULL
  EXPECT_EQ(connection.exec_prepared("select", {"4"}).rows(), 0);

  const Result nulls = connection.exec(
      "SELECT count(*) FROM round_trip WHERE name IS NULL OR note IS NULL AND "
      "id > $1",
      {"0"});
  EXPECT_EQ(nulls.get(0, 0), "3");
  const Result updated =
      connection.exec("UPDATE round_trip SET note = $1 WHERE note IS NULL", {std::nullopt});
  EXPECT_EQ(updated.affected_rows(), 2);
  // A Result owns its rows: it outlives the connection.
  Result kept = connection.exec("SELECT name FROM round_trip ORDER BY id");
  connection = connect();
  EXPECT_EQ(kept.rows(), 3);
  EXPECT_EQ(kept.get(0, 0), "alpha");
  EXPECT_THROW(kept.get(3, 0), std::out_of_range);
  EXPECT_THROW(kept.get(0, 1), std::out_of_range);
  EXPECT_THROW(kept.column("nope"), std::out_of_range);
}

TEST_F(PostgresConnection, TransactionRollsBackOnAnExceptionAndCommitsWhenAsked) {
  Connection connection = connect();
  connection.exec("CREATE TABLE guarded (id int PRIMARY KEY)");
  try {
    Transaction transaction(connection);
    connection.exec("INSERT INTO guarded VALUES ($1)", {"1"});
    EXPECT_TRUE(connection.in_transaction());
    throw std::runtime_error("the work failed half way");
  } catch (const std::runtime_error&) {
  }
  EXPECT_FALSE(connection.in_transaction());
  EXPECT_EQ(count(connection, "guarded"), 0);

  {
    Transaction transaction(connection);
    connection.exec("INSERT INTO guarded VALUES ($1), ($2)", {"1", "2"});
    transaction.commit();
  }
  // Committed for everyone, not only this session.
  Connection other = connect();
  EXPECT_EQ(count(other, "guarded"), 2);
}

TEST_F(PostgresConnection, CommitAfterAFailedStatementThrowsAndKeepsNothing) {
  Connection connection = connect();
  connection.exec("CREATE TABLE half_done (id int PRIMARY KEY)");
  Transaction transaction(connection);
  connection.exec("INSERT INTO half_done VALUES (1)");
  EXPECT_THROW(connection.exec("INSERT INTO half_done VALUES (1)"), PgError);  // duplicate
  const PgError error = error_of([&] { transaction.commit(); });
  EXPECT_EQ(error.sqlstate(), "25P02");
  EXPECT_TRUE(contains(error.what(), "rolled back")) << error.what();
  EXPECT_FALSE(connection.in_transaction());
  EXPECT_EQ(count(connection, "half_done"), 0);
}

TEST_F(PostgresConnection, FailingStatementsGiveTheServersReasonAndCode) {
  Connection connection = connect();
  const PgError missing = error_of([&] { connection.exec("SELECT * FROM no_such_table"); });
  EXPECT_EQ(missing.sqlstate(), "42P01");
  const std::string message = missing.what();
  EXPECT_TRUE(contains(message, "relation \"no_such_table\" does not exist")) << message;
  EXPECT_TRUE(contains(message, "SQLSTATE 42P01")) << message;
  EXPECT_TRUE(contains(message, "SELECT * FROM no_such_table")) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;

  connection.exec("CREATE TABLE unique_ids (id int PRIMARY KEY)");
  connection.exec("INSERT INTO unique_ids VALUES (1)");
  EXPECT_EQ(
      error_of([&] { connection.exec("INSERT INTO unique_ids VALUES ($1)", {"1"}); }).sqlstate(),
      "23505");
  EXPECT_EQ(error_of([&] { connection.exec("SELEC 1"); }).sqlstate(), "42601");
  EXPECT_EQ(error_of([&] { connection.prepare("bad", "SELECT FROM WHERE"); }).sqlstate(), "42601");
  const PgError unknown = error_of([&] { connection.exec_prepared("never_prepared", {}); });
  EXPECT_EQ(unknown.sqlstate(), "26000");
  EXPECT_TRUE(contains(unknown.what(), "never_prepared")) << unknown.what();
  connection.prepare("one", "SELECT $1::int");
  EXPECT_THROW(connection.exec_prepared("one", {"1", "2"}), PgError);  // too many parameters
  EXPECT_THROW(connection.exec_prepared("one", {"x"}), PgError);       // not an int
  // A failed statement outside a transaction leaves the connection usable.
  EXPECT_TRUE(connection.ok());
  EXPECT_EQ(connection.exec_prepared("one", {"7"}).get(0, 0), "7");
}

TEST_F(PostgresConnection, ServerMessagesNeverCarryThePassword) {
  Connection connection = connect();
  // The server quotes bad input back: here the input is the password itself.
  const PgError error = error_of([&] { connection.exec("SELECT $1::int", {server_->password()}); });
  EXPECT_EQ(error.sqlstate(), "22P02");
  EXPECT_FALSE(contains(error.what(), server_->password())) << error.what();
  EXPECT_TRUE(contains(error.what(), "<redacted>")) << error.what();
}

TEST_F(PostgresConnection, WrongPasswordIsRefusedWithoutShowingIt) {
  const std::string wrong = "not-the-password-7f3a";
  const std::string port = std::to_string(server_->port());
  for (const auto& conninfo :
       {"host=127.0.0.1 port=" + port + " dbname=" + server_->database() +
            " user=vigil password='" + wrong + "'",
        "postgresql://vigil:" + wrong + "@127.0.0.1:" + port + "/" + server_->database()}) {
    const PgError error = error_of([&] { Connection refused(conninfo); });
    const std::string message = error.what();
    EXPECT_TRUE(contains(message, "password authentication failed for user \"vigil\"")) << message;
    EXPECT_TRUE(contains(message, "host=127.0.0.1 port=" + port)) << message;
    EXPECT_FALSE(contains(message, wrong)) << message;
    EXPECT_FALSE(contains(message, server_->password())) << message;
  }
  // A string libpq cannot parse is not shown at all: the password may be any part of it.
  const PgError unparsable =
      error_of([&] { Connection refused("host=127.0.0.1 password='" + wrong); });
  EXPECT_TRUE(contains(unparsable.what(), "not valid")) << unparsable.what();
  EXPECT_FALSE(contains(unparsable.what(), wrong)) << unparsable.what();
}

TEST_F(PostgresConnection, ClosedPortFailsAtOnceNamingHostAndPort) {
  const int port = test::closed_port();
  const auto started = std::chrono::steady_clock::now();
  const PgError error = error_of([&] {
    Connection refused("host=127.0.0.1 port=" + std::to_string(port) +
                           " dbname=vigil user=vigil password=pw-closed-port",
                       ConnectOptions{.connect_timeout = 5s});
  });
  EXPECT_LT(std::chrono::steady_clock::now() - started, 4s);
  const std::string message = error.what();
  EXPECT_TRUE(contains(message, "host=127.0.0.1 port=" + std::to_string(port))) << message;
  EXPECT_TRUE(contains(message, "Connection refused")) << message;
  EXPECT_FALSE(contains(message, "pw-closed-port")) << message;
  EXPECT_EQ(error.sqlstate(), "");
}

TEST_F(PostgresConnection, ConnectTimeoutBoundsAServerThatNeverAnswers) {
  // Accepts the TCP connection, then says nothing: only the timeout ends the wait.
  test::RawTarget silent([](test::RawConnection& c) { c.wait_for_close(30s); });
  const auto started = std::chrono::steady_clock::now();
  const PgError error = error_of([&] {
    Connection stuck(
        "host=127.0.0.1 port=" + std::to_string(silent.port()) + " dbname=vigil user=vigil",
        ConnectOptions{.connect_timeout = 2s});
  });
  const auto waited = std::chrono::steady_clock::now() - started;
  EXPECT_GE(waited, 1500ms);
  EXPECT_LT(waited, 8s);
  EXPECT_TRUE(contains(error.what(), "timeout")) << error.what();
}

// The client's own bound on a statement the server leaves unanswered (here one that sleeps; a
// stopped server or a vanished machine look the same from the client): the wait ends at the
// reply timeout, the connection is closed, and the error says so without the password.
TEST_F(PostgresConnection, ReplyTimeoutEndsAWaitTheServerLeavesUnanswered) {
  Connection connection(server_->conninfo(), ConnectOptions{.reply_timeout = 500ms});
  const auto started = std::chrono::steady_clock::now();
  const PgError error = error_of([&] { connection.exec("SELECT pg_sleep(20)"); });
  const auto waited = std::chrono::steady_clock::now() - started;
  EXPECT_GE(waited, 500ms);
  EXPECT_LT(waited, 5s);
  EXPECT_EQ(error.fault(), PgFault::no_answer);
  EXPECT_TRUE(error.unavailable());
  EXPECT_TRUE(contains(error.what(), "no answer within 500 ms")) << error.what();
  EXPECT_TRUE(contains(error.what(), "port=" + std::to_string(server_->port()))) << error.what();
  EXPECT_FALSE(contains(error.what(), server_->password())) << error.what();
  EXPECT_FALSE(connection.ok());
  EXPECT_THROW(connection.exec("SELECT 1"), PgError);  // closed: a new Connection is needed
  // Within the bound, statements answer as usual.
  Connection prompt(server_->conninfo(), ConnectOptions{.reply_timeout = 5s});
  EXPECT_EQ(prompt.exec("SELECT 41 + 1").get(0, 0), "42");
}

// A session the server ended while it was idle (an operator's pg_terminate_backend, a restart)
// is found lost before another statement is sent on it.
TEST_F(PostgresConnection, ASessionTheServerEndedIsFoundLostBeforeItIsUsed) {
  Connection connection = connect();
  Connection other = connect();
  const std::string pid = connection.exec("SELECT pg_backend_pid()").get(0, 0).value();
  EXPECT_TRUE(connection.check_alive());
  EXPECT_EQ(other.exec("SELECT pg_terminate_backend(" + pid + ", 10000)").get(0, 0), "t");
  EXPECT_FALSE(connection.check_alive());
  EXPECT_TRUE(other.check_alive());
  // A lost connection's failure is the server's state, not the statement's.
  const PgError error = error_of([&] { connection.exec("SELECT 1"); });
  EXPECT_EQ(error.fault(), PgFault::connection) << error.what();
  EXPECT_TRUE(error.unavailable());
}

}  // namespace
}  // namespace vigil::postgres

// A throwaway PostgreSQL 15 server for tests: `initdb` into a fresh temp dir, `postgres`
// listening on 127.0.0.1 only, on a free port, with its unix socket in that dir, and one
// database. Nothing outside the temp dir is touched and no system service is assumed.
//
// PostgreSQL refuses to run as root: when the tests run as root (CI), initdb and postgres run as
// the `postgres` system user Debian's package creates, and the temp dir belongs to it. As any
// other user they run as that user.
//
// One server per test binary is the intended use (start it in SetUpTestSuite): initdb and the
// start take about a second or two. A server may also outlive the process that started it
// (Lifetime::until_stopped), for one server shared by a whole ctest run: stop it with
// stop_detached. Not thread-safe; the server itself serves any thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>

#include "support/target_server.h"

namespace vigil::test {

class PostgresServer {
 public:
  // Where Debian's postgresql-15 puts its server binaries.
  static constexpr const char* kBinDir = "/usr/lib/postgresql/15/bin";

  // Why no server can be started on this machine (for GTEST_SKIP), or nothing when one can:
  // the binaries are missing, or the tests run as root and there is no `postgres` user.
  static std::optional<std::string> unavailable_reason();

  // this_process: stopped by the destructor, and with this process when it dies. until_stopped:
  // neither; the temp dir stays too, until stop_detached(pid(), dir()).
  enum class Lifetime { this_process, until_stopped };
  // off (tests): fsync, full page writes and synchronous commit off, 32 MB of shared buffers.
  // on (benchmarks): PostgreSQL's defaults, so a commit is on disk when it returns.
  enum class Durability { off, on };

  // Starts the server and creates `database`, returning once it accepts connections. Throws
  // std::runtime_error with the tail of initdb's or the server's log when a step fails or the
  // server is not ready within 60 s.
  explicit PostgresServer(std::string database = "vigil_test",
                          Lifetime lifetime = Lifetime::this_process,
                          Durability durability = Durability::off);
  // Stops a server started with Lifetime::until_stopped, by any process: as the destructor
  // does, then removes `dir`. Returns once the server has exited.
  static void stop_detached(pid_t pid, const std::string& dir);
  // Stops the server by its PID: SIGINT (postgres's fast shutdown: open sessions are ended,
  // where SIGTERM would wait for them), then SIGKILL of its process group when it has not exited
  // within 10 s; then removes the temp dir. A test binary killed outright takes its server with
  // it (the server gets SIGQUIT when its parent dies).
  ~PostgresServer();
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  // The superuser `vigil` and its password; password authentication over TCP (scram-sha-256),
  // trust on the unix socket.
  const std::string& user() const { return user_; }
  const std::string& password() const { return password_; }
  const std::string& database() const { return database_; }
  // libpq key=value string for 127.0.0.1:port(), the database, the user and its password.
  std::string conninfo() const;
  // The same without the database: append " dbname=..." for any database of the server.
  std::string server_conninfo() const;
  // The temp dir the cluster, its socket and its logs live in.
  const std::string& dir() const { return dir_; }
  // The same as a postgresql:// URI.
  std::string url() const;
  // The server's log so far (stdout and stderr), for failure messages.
  std::string log() const;

  // Faults, for tests of what its clients do (with Lifetime::this_process only):
  // Fast shutdown, as the destructor does (open sessions are ended), keeping the data dir and
  // the port for start_again. Returns once the server has exited.
  void stop_server();
  // SIGKILL of the postmaster alone, as an operator's kill -9 or a crash: its backends notice
  // and exit by themselves. Returns once the postmaster has exited.
  void kill_postmaster();
  // Starts the server again on the same data dir and port after stop_server or kill_postmaster,
  // returning once it accepts connections (after a kill: once the old backends are gone and
  // crash recovery is done). Throws std::runtime_error when it does not within 60 s.
  void start_again();
  // SIGSTOP and SIGCONT of the postmaster and all its children (its backends and helpers): a
  // stuck server, whose sockets stay open. The destructor resumes a paused server before
  // stopping it.
  void pause();
  void resume();

 private:
  void start();
  // Starts postgres on the data dir and port_; nothing once it accepts connections, else why
  // not (the log's tail).
  std::optional<std::string> launch();
  void stop();

  TempDir dir_holder_;
  std::string dir_;
  std::string database_;
  std::string user_ = "vigil";
  std::string password_;
  int port_ = 0;
  pid_t pid_ = -1;
  Lifetime lifetime_ = Lifetime::this_process;
  Durability durability_ = Durability::off;
};

}  // namespace vigil::test

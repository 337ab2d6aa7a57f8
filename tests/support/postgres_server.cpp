#include "support/postgres_server.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include "support/process.h"
#include "support/target_server.h"

namespace vigil::test {
namespace {

using namespace std::chrono_literals;

// Who initdb and postgres run as: this process's user, or `postgres` when this process is root.
struct Identity {
  bool switch_user = false;
  uid_t uid = 0;
  gid_t gid = 0;
};

std::optional<Identity> server_identity() {
  if (::geteuid() != 0) return Identity{};
  const passwd* entry = ::getpwnam("postgres");
  if (!entry) return std::nullopt;
  return Identity{true, entry->pw_uid, entry->pw_gid};
}

std::string bin(const char* name) { return std::string(PostgresServer::kBinDir) + "/" + name; }

std::string tail(const std::string& path, std::size_t size = 3000) {
  const std::string text = read_file(path);
  return text.size() > size ? "..." + text.substr(text.size() - size) : text;
}

std::string random_password() {
  std::random_device device;
  std::string password = "pw";  // a letter first: never a number, whatever the digits
  const char* digits = "0123456789abcdef";
  for (int i = 0; i < 24; ++i) password += digits[device() % 16];
  return password;
}

// Starts `argv` as `identity`, in a process group of its own (so the server and its backends can
// be killed together), stdout and stderr appended to `log_path`. Returns its PID.
pid_t spawn(const std::vector<std::string>& argv, const Identity& identity,
            const std::string& working_dir, const std::string& log_path,
            bool outlive_parent = false) {
  // Built before fork: between fork and exec the child only makes async-signal-safe calls.
  std::vector<std::string> environment = {"PATH=/usr/bin:/bin", "LC_ALL=C", "TZ=UTC",
                                          "HOME=" + working_dir};
  std::vector<char*> envp;
  for (auto& variable : environment) envp.push_back(variable.data());
  envp.push_back(nullptr);
  std::vector<char*> args;
  for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  const int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log < 0) throw std::runtime_error("cannot open " + log_path);
  if (identity.switch_user && ::fchown(log, identity.uid, identity.gid) != 0) {
    ::close(log);
    throw std::runtime_error("cannot chown " + log_path);
  }

  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(log);
    throw std::runtime_error("fork failed");
  }
  if (pid == 0) {
    ::setpgid(0, 0);
    ::dup2(log, STDOUT_FILENO);
    ::dup2(log, STDERR_FILENO);
    if (identity.switch_user && (::setgroups(0, nullptr) != 0 || ::setgid(identity.gid) != 0 ||
                                 ::setuid(identity.uid) != 0))
      ::_exit(126);
    // Set after the change of user (which clears it): a test binary that dies, even by SIGKILL,
    // takes its server with it (SIGQUIT: postgres's immediate shutdown, backends included).
    if (!outlive_parent) {
      ::prctl(PR_SET_PDEATHSIG, SIGQUIT);
      if (::getppid() == 1) ::_exit(125);
    }
    if (::chdir(working_dir.c_str()) != 0) ::_exit(127);
    ::execve(args[0], args.data(), envp.data());
    ::_exit(127);
  }
  ::close(log);
  return pid;
}

// The exit status of `pid` once it ends, or nothing when it still runs after `limit`.
std::optional<int> wait_exit(pid_t pid, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (true) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid)
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(20ms);
  }
}

// Runs `argv` to its end (at most `limit`, then killed); returns its exit code.
int run(const std::vector<std::string>& argv, const Identity& identity, const std::string& dir,
        const std::string& log_path, std::chrono::milliseconds limit) {
  const pid_t pid = spawn(argv, identity, dir, log_path);
  if (const auto code = wait_exit(pid, limit)) return *code;
  ::kill(-pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  return -1;
}

}  // namespace

std::optional<std::string> PostgresServer::unavailable_reason() {
  for (const char* name : {"initdb", "postgres", "pg_isready", "createdb"})
    if (::access(bin(name).c_str(), X_OK) != 0)
      return "PostgreSQL 15 is not installed (no " + bin(name) +
             "): `scripts/install-deps.sh test` installs postgresql-15";
  if (!server_identity())
    return std::string(
        "running as root and there is no `postgres` user to run the server as "
        "(PostgreSQL refuses root; Debian's postgresql-15 package creates it)");
  return std::nullopt;
}

PostgresServer::PostgresServer(std::string database, Lifetime lifetime, Durability durability)
    : database_(std::move(database)),
      password_(random_password()),
      lifetime_(lifetime),
      durability_(durability) {
  if (const auto reason = unavailable_reason()) throw std::runtime_error(*reason);
  try {
    start();
  } catch (...) {
    stop();  // the destructor does not run for a constructor that throws
    throw;
  }
}

void PostgresServer::start() {
  const Identity identity = *server_identity();
  dir_ = dir_holder_.path();
  if (identity.switch_user && ::chown(dir_.c_str(), identity.uid, identity.gid) != 0)
    throw std::runtime_error("cannot chown " + dir_ + " to the postgres user");
  ::chmod(dir_.c_str(), 0700);

  const std::string pwfile = dir_ + "/pwfile";
  std::ofstream(pwfile) << password_ << "\n";
  if (identity.switch_user && ::chown(pwfile.c_str(), identity.uid, identity.gid) != 0)
    throw std::runtime_error("cannot chown " + pwfile);
  const std::string data = dir_ + "/data";
  // --no-sync: a test cluster need not survive a power cut. Password (scram) over TCP, so tests
  // can see a wrong one refused; trust on the socket in the temp dir, which only its owner (and
  // root) can enter.
  const int initdb = run({bin("initdb"), "-D", data, "-U", user_, "--pwfile=" + pwfile,
                          "--auth-local=trust", "--auth-host=scram-sha-256", "--encoding=UTF8",
                          "--locale=C", "--no-sync", "--no-instructions"},
                         identity, dir_, dir_ + "/initdb.log", 120s);
  if (initdb != 0)
    throw std::runtime_error("initdb failed (exit " + std::to_string(initdb) +
                             "): " + tail(dir_ + "/initdb.log"));

  // The port is free when picked but may be taken before postgres binds it: another try then.
  for (int attempt = 1;; ++attempt) {
    port_ = closed_port();
    const auto failure = launch();
    if (!failure) break;
    if (attempt < 3 && failure->find("could not bind") != std::string::npos) continue;
    throw std::runtime_error(*failure);
  }

  const auto created = run_command(bin("createdb") + " -h " + dir_ + " -p " +
                                   std::to_string(port_) + " -U " + user_ + " " + database_);
  if (created.exit_code != 0)
    throw std::runtime_error("createdb " + database_ + " failed: " + created.output);
}

std::optional<std::string> PostgresServer::launch() {
  const Identity identity = *server_identity();
  // max_connections: one server serves the whole ctest run, several tests at a time, and a vigil
  // process holds up to a dozen sessions (writer, readers, alerts, beats, cluster); two cluster
  // members beside other end-to-end tests went past 40.
  std::vector<std::string> argv = {bin("postgres"),
                                   "-D",
                                   dir_ + "/data",
                                   "-p",
                                   std::to_string(port_),
                                   "-k",
                                   dir_,
                                   "-c",
                                   "listen_addresses=127.0.0.1",
                                   "-c",
                                   "max_connections=200"};
  // Durability off (fsync, full pages, synchronous commit): tests do not survive power cuts.
  if (durability_ == Durability::off)
    for (const char* setting :
         {"fsync=off", "full_page_writes=off", "synchronous_commit=off", "shared_buffers=32MB"})
      argv.insert(argv.end(), {"-c", setting});
  pid_ = spawn(argv, identity, dir_, dir_ + "/postgres.log", lifetime_ == Lifetime::until_stopped);
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  std::optional<int> exited;
  const std::string probe = bin("pg_isready") + " -q -h 127.0.0.1 -p " + std::to_string(port_) +
                            " -t 2 -d postgres -U " + user_;
  while (std::chrono::steady_clock::now() < deadline) {
    if ((exited = wait_exit(pid_, 0ms))) break;
    if (run_command(probe).exit_code == 0) return std::nullopt;
    std::this_thread::sleep_for(50ms);
  }
  const std::string log_tail = tail(dir_ + "/postgres.log");
  if (exited) {
    pid_ = -1;
    return "postgres exited (status " + std::to_string(*exited) +
           ") before accepting connections: " + log_tail;
  }
  return "postgres did not accept connections within 60 s: " + log_tail;
}

void PostgresServer::stop_server() { stop(); }

void PostgresServer::kill_postmaster() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

void PostgresServer::start_again() {
  if (pid_ > 0) throw std::runtime_error("start_again: the server still runs");
  // After a kill, the old backends hold the shared memory until they have noticed and exited:
  // the new postmaster refuses to start until then.
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  for (;;) {
    const auto failure = launch();
    if (!failure) return;
    // Still running yet not ready within launch's bound: nothing to retry.
    if (pid_ > 0 || std::chrono::steady_clock::now() >= deadline)
      throw std::runtime_error(*failure);
    std::this_thread::sleep_for(100ms);
  }
}

namespace {

// The processes whose parent is `parent`, from /proc. PostgreSQL's backends and helpers are the
// postmaster's children, each in a session of its own (setsid), so not in its process group.
std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> children;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", error)) {
    const std::string name = entry.path().filename();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    // "pid (comm) state ppid ...": comm may hold spaces, so read from its closing parenthesis.
    const std::string stat = read_file(entry.path().string() + "/stat");
    const auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream fields(stat.substr(close + 1));
    std::string state;
    pid_t ppid = 0;
    if (fields >> state >> ppid && ppid == parent) children.push_back(std::stoi(name));
  }
  return children;
}

}  // namespace

void PostgresServer::pause() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGSTOP);  // first, so that it starts no child meanwhile
  for (const pid_t child : children_of(pid_)) ::kill(child, SIGSTOP);
}

void PostgresServer::resume() {
  if (pid_ <= 0) return;
  for (const pid_t child : children_of(pid_)) ::kill(child, SIGCONT);
  ::kill(pid_, SIGCONT);
}

PostgresServer::~PostgresServer() {
  if (lifetime_ == Lifetime::until_stopped && pid_ > 0) {
    dir_holder_.release();  // stop_detached removes it
    return;
  }
  stop();
}

void PostgresServer::stop_detached(pid_t pid, const std::string& dir) {
  // Not this process's child: its end is seen by kill(pid, 0) failing, not by waitpid.
  const auto exited_within = [pid](std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (::kill(pid, 0) == 0) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(20ms);
    }
    return true;
  };
  if (pid > 0 && ::kill(pid, SIGINT) == 0 && !exited_within(10s)) {
    ::kill(-pid, SIGKILL);
    exited_within(5s);
  }
  std::error_code ignored;
  if (!dir.empty()) std::filesystem::remove_all(dir, ignored);
}

void PostgresServer::stop() {
  if (pid_ <= 0) return;
  resume();  // a paused server could not shut down
  // SIGINT is postgres's fast shutdown: sessions still open are ended, the cluster is shut down
  // cleanly. (SIGTERM, the smart shutdown, would wait for every client to disconnect first.)
  ::kill(pid_, SIGINT);
  if (!wait_exit(pid_, 10s)) {
    ::kill(-pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  pid_ = -1;
}

std::string PostgresServer::conninfo() const {
  return "host=127.0.0.1 port=" + std::to_string(port_) + " dbname=" + database_ +
         " user=" + user_ + " password=" + password_;
}

std::string PostgresServer::server_conninfo() const {
  return "host=127.0.0.1 port=" + std::to_string(port_) + " user=" + user_ +
         " password=" + password_;
}

std::string PostgresServer::url() const {
  return "postgresql://" + user_ + ":" + password_ + "@127.0.0.1:" + std::to_string(port_) + "/" +
         database_;
}

std::string PostgresServer::log() const { return read_file(dir_ + "/postgres.log"); }

}  // namespace vigil::test

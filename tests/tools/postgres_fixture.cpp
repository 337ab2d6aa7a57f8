// One PostgreSQL server for a whole ctest run: `postgres_fixture start <info file>` (the
// fixture's setup test) starts it detached in a temp dir, with the database the tests make their
// schemas in, and writes into <info file> how to reach it and how to stop it;
// `postgres_fixture stop <info file>` (the cleanup test) stops it by PID and removes the dir.
// `postgres_fixture start <info file> durable`: the same with PostgreSQL's durable defaults (fsync
// and synchronous commit on), as the benchmarks (bench/vigil_bench.py) measure it.
//
// Without PostgreSQL 15 the setup still succeeds: the file says why there is no server, and the
// PostgreSQL variants of the tests skip with that reason.
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

#include "support/postgres_server.h"
#include "support/store_backends.h"

namespace {

using vigil::test::PostgresServer;

int start(const std::string& info_path, PostgresServer::Durability durability) {
  std::ofstream info(info_path, std::ios::trunc);
  if (auto reason = PostgresServer::unavailable_reason()) {
    info << "unavailable " << *reason << "\n";
    std::cout << "PostgreSQL tests will be skipped: " << *reason << "\n";
    return 0;
  }
  try {
    PostgresServer server(vigil::test::kPostgresTestDatabase,
                          PostgresServer::Lifetime::until_stopped, durability);
    // Written before anything else can fail, so the cleanup test can stop it whatever follows.
    info << "conninfo " << server.server_conninfo() << "\n"
         << "pid " << server.pid() << "\n"
         << "dir " << server.dir() << "\n";
    info.flush();
    std::cout << "PostgreSQL " << server.pid() << " on 127.0.0.1:" << server.port() << " in "
              << server.dir() << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "cannot start the tests' PostgreSQL server: " << e.what() << "\n";
    return 1;
  }
}

int stop(const std::string& info_path) {
  std::ifstream info(info_path);
  std::string key, value;
  pid_t pid = -1;
  std::string dir;
  while (info >> key) {
    std::getline(info, value);
    if (!value.empty() && value[0] == ' ') value.erase(0, 1);
    if (key == "pid") pid = static_cast<pid_t>(std::stol(value));
    if (key == "dir") dir = value;
  }
  if (pid > 0) PostgresServer::stop_detached(pid, dir);
  std::remove(info_path.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string command = argc > 1 ? argv[1] : "";
  if (command == "start" && argc == 3) return start(argv[2], PostgresServer::Durability::off);
  if (command == "start" && argc == 4 && std::string(argv[3]) == "durable")
    return start(argv[2], PostgresServer::Durability::on);
  if (command == "stop" && argc == 3) return stop(argv[2]);
  std::cerr << "usage: postgres_fixture start <info file> [durable] | stop <info file>\n";
  return 2;
}

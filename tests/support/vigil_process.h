// The real vigil binary for end-to-end tests, and polling for what it eventually does.
// Header-only: VIGIL_BINARY is defined per test executable by tests/CMakeLists.txt.
#pragma once

#include <chrono>
#include <csignal>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "support/eventually.h"
#include "support/process.h"
#include "support/target_server.h"

namespace vigil::test {

// `vigil <command>` run in `dir` against dir/vigil.db and dir/services.json, its API on
// 127.0.0.1:api_port, its output in dir/<command>.log. A DATABASE_URL in `extra_env` replaces
// dir/vigil.db (DB_FILE is then left unset: both set is a configuration error).
class VigilProcess {
 public:
  VigilProcess(const TempDir& dir, const std::string& command, int api_port,
               std::map<std::string, std::string> extra_env = {})
      : log_path_(dir.file(command + ".log")) {
    std::map<std::string, std::string> env = {{"API_PORT", std::to_string(api_port)},
                                              {"API_HOST", "127.0.0.1"},
                                              {"DB_FILE", dir.file("vigil.db")},
                                              {"SERVICES_FILE", dir.file("services.json")},
                                              {"LOG_LEVEL", "info"}};
    if (extra_env.contains("DATABASE_URL")) env.erase("DB_FILE");
    for (auto& [key, value] : extra_env) env[key] = value;
    process_ = std::make_unique<ChildProcess>(VIGIL_BINARY, std::vector<std::string>{command},
                                              dir.path(), env, log_path_);
  }
  ChildProcess& process() { return *process_; }
  std::string log() const { return read_file(log_path_); }

  // SIGTERM and wait: a clean stop exits 0.
  int stop() {
    process_->signal(SIGTERM);
    return process_->wait_for_exit(std::chrono::seconds(20)).value_or(-1);
  }

 private:
  std::string log_path_;
  std::unique_ptr<ChildProcess> process_;
};

}  // namespace vigil::test

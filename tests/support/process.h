// A child process for end-to-end tests: the real vigil binary, started in a working directory
// with extra environment variables, its stderr captured to a file.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace vigil::test {

class ChildProcess {
 public:
  ChildProcess(const std::string& binary, const std::vector<std::string>& args,
               const std::string& working_dir, const std::map<std::string, std::string>& env,
               const std::string& stderr_path);
  ~ChildProcess();  // SIGKILLs the child if it still runs
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  void signal(int signal_number);
  // The exit code (128 + signal when killed), or nothing when still running after `timeout`.
  std::optional<int> wait_for_exit(std::chrono::milliseconds timeout);
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
};

// Runs a command to completion; returns its exit code and combined output.
struct CommandResult {
  int exit_code = -1;
  std::string output;
};
CommandResult run_command(const std::string& shell_command);

std::string read_file(const std::string& path);

}  // namespace vigil::test

// `vigil beat`: the cron wrapper for heartbeats. It runs a command, then reports the outcome to
// the heartbeat's push URL: success, or failure with the exit code, and how long it ran.
//   vigil beat <push-url-or-token> [--fail] [--msg TEXT] [-- COMMAND [ARGS...]]
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include "config/config.h"

namespace vigil {

struct BeatOptions {
  std::string target;                // a push URL, or the bare push token
  bool fail = false;                 // report a failure (only without a command)
  std::string message;               // --msg
  std::vector<std::string> command;  // after "--"; empty: report without running anything
};

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The arguments after "beat". Throws UsageError naming what is wrong.
BeatOptions parse_beat_arguments(const std::vector<std::string>& args);

// `target` when it is an http(s) URL, else http://API_HOST:API_PORT/v1/push/<token> (a wildcard
// API_HOST means this machine: 127.0.0.1).
std::string push_url(const std::string& target, const Settings& settings);

// Runs the command (stdio inherited, no shell) and pushes its outcome: up when it exits 0, else
// /fail with "exit code N" (or the signal) in msg; duration_ms is how long it ran. Returns the
// exit code for vigil: the command's own when it failed (128 + signal when killed), 1 when the
// report could not be delivered (a line on stderr says why, without the token), else 0.
int run_beat(const BeatOptions& options, const std::string& url);

}  // namespace vigil

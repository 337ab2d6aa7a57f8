// `vigil probe URL [--method M] [--header "Name: value"]... [--timeout S] [--insecure]
//              [--expect CONDITION]... [--json]`
// One probe now, without a database or settings, and a readable report of it: resolved IP,
// status, each phase with its time and a bar, the certificate chain, size, redirects, and which
// conditions passed or failed. The options become a service object checked by the services
// file's rules (parse_service_spec), so a probe here judges exactly as the runner would.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "runner/probe.h"

namespace vigil {

inline constexpr int kProbeExitUp = 0;
inline constexpr int kProbeExitDown = 1;
inline constexpr int kProbeExitBadArguments = 2;

// Runs the command; `args` are the words after "probe". Writes the report (or, with --json,
// one JSON object) to `out` and argument errors to `err`. Returns kProbeExitUp when the probe
// was up, kProbeExitDown when it was down, kProbeExitBadArguments for bad arguments.
int probe_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// The report of one finished probe of `url`, as text and as JSON (both used by probe_command).
std::string probe_report_text(const std::string& url, const ProbeResult& result);
std::string probe_report_json(const std::string& url, const ProbeResult& result);

}  // namespace vigil

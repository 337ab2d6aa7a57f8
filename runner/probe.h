// Probe: one check of one service, run as a libcurl easy handle inside the runner's multi loop.
// A probe kind (HTTP now; TCP and others later) is one file implementing this interface, the way
// blackbox_exporter keeps one prober per file. The runner adds easy() to its multi handle and
// calls finish() with the transfer's CURLcode when curl reports it done.
#pragma once

#include <curl/curl.h>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>

#include "storage/model.h"

namespace vigil {

struct ProbeLimits {
  std::size_t max_body_bytes = 1 << 20;  // reading stops (and the probe is down) past this
  long max_redirects = 10;
};

struct ProbeResult {
  bool up = false;
  std::optional<int> status_code;  // absent when no HTTP response arrived
  double response_ms = 0;          // total time of the transfer
  std::string error;               // empty when up: "timeout after 2000 ms", "connection refused",
                                   // "DNS resolution failed: <host>", "TLS: <curl's text>",
                                   // "HTTP status 503 not expected", "too many redirects",
                                   // "body larger than 1048576 bytes", "unsupported protocol:
                                   // ...", "empty reply from server", else curl's own text
};

class Probe {
 public:
  virtual ~Probe() = default;
  // The configured easy handle, owned by the probe. Valid until the probe is destroyed.
  virtual CURL* easy() = 0;
  // Interprets the finished transfer. Called once, after curl reported `code` for easy().
  virtual ProbeResult finish(CURLcode code) = 0;
};

// A probe for an http:// or https:// service: fresh connection, the spec's method, headers and
// timeout, at most `limits.max_redirects` redirects followed, at most `limits.max_body_bytes`
// read. Up when the final status is in spec.expected_status. Only http and https are allowed,
// also as redirect targets; the user agent is "vigil/<VIGIL_VERSION>". The probe copies what it
// needs from `spec`. Throws std::runtime_error when curl cannot create the handle.
std::unique_ptr<Probe> make_http_probe(const ServiceSpec& spec, const ProbeLimits& limits);

}  // namespace vigil

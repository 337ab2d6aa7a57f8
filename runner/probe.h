// Probe: one check of one service, run as a libcurl easy handle inside the runner's multi loop.
// A probe kind (http_probe.cpp, tcp_probe.cpp) is one file implementing this interface, the way
// blackbox_exporter keeps one prober per file; core/probe_kind.h says which kind checks a URL
// and make_probe (probe_kinds.cpp) builds that kind's probe. A ProbeMulti (probe_multi.h) adds
// easy() to its multi handle, and the caller calls finish() with the transfer's CURLcode when
// it reports the probe done (after transfer_done/resume, for a probe that talks on afterwards).
#pragma once

#include <curl/curl.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/model.h"
#include "runner/conditions.h"

namespace vigil {

// What every probe of one runner shares, whatever its service says.
struct ProbeSettings {
  std::size_t max_body_bytes = 1 << 20;  // reading stops (and the probe is down) past this
  // A cap over every service's own max_redirects: at the services file's maximum (50), so the
  // service's setting is what applies.
  long max_redirects = 50;
  // The local address probes leave from when the service names none (spec.probe.source_ip),
  // PROBER_SOURCE_IP: for a multi-homed host, or to tell apart several probers on one machine
  // (127.0.0.2, 127.0.0.3). Empty: the system chooses. An address that is not this machine's
  // makes the probe down ("source address ...: ..."), never stalls it.
  std::string source_ip;
};

// One certificate of the chain the server sent, leaf first (from CURLINFO_CERTINFO).
struct CertificateInfo {
  std::string subject;
  std::string issuer;
  std::optional<TimePoint> not_after;
};

// What a probe saw besides up/down, for /metrics and `vigil probe`. Empty where it does not
// apply (a TCP probe has no status or certificate).
struct ProbeDetails {
  bool http = false;        // an HTTP(S) probe: the probe_http_* metrics apply
  std::string resolved_ip;  // the address curl connected to last
  std::string final_url;    // after redirects
  long redirects = 0;
  std::optional<std::int64_t> content_length;  // the final response's Content-Length
  std::int64_t body_bytes = 0;                 // bytes of body read
  bool tls = false;                            // a TLS handshake completed
  std::string tls_version;                     // "TLSv1.3"; empty when unknown
  std::vector<CertificateInfo> certificates;   // leaf first
  // The status check (first, when a response arrived) and every condition, with its outcome.
  std::vector<ConditionOutcome> conditions;

  // The soonest not_after of the chain, as blackbox_exporter's probe_ssl_earliest_cert_expiry.
  std::optional<TimePoint> earliest_cert_expiry() const;
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
                                   // (probe depth: "condition failed: <why>; ..." after the
                                   // status, "expected \"+PONG\" not received ...")
  // Probe depth: the phases of response_ms (absent when the probe never started), and
  // the details.
  std::optional<PhaseTimings> phases;
  ProbeDetails details;
};

// Probe depth: a socket a probe waits on after its transfer (poll events), until `deadline`.
struct SocketWait {
  curl_socket_t socket = CURL_SOCKET_BAD;
  short events = 0;  // POLLIN or POLLOUT
  std::chrono::steady_clock::time_point deadline;
};

class Probe {
 public:
  virtual ~Probe() = default;
  // The configured easy handle, owned by the probe. Valid until the probe is destroyed.
  virtual CURL* easy() = 0;
  // Interprets the finished transfer. Called once, after curl reported `code` for easy() (and,
  // for a conversation, after resume() returned nothing).
  virtual ProbeResult finish(CURLcode code) = 0;

  // A probe that goes on talking over the connection curl opened (tcp:// with send/expect).
  // Called once when curl reports the transfer done, before finish(). A SocketWait back means
  // "poll this socket": the caller then calls resume() with the events that fired (0 when the
  // deadline passed) until it returns nothing, and only then finish(). Meanwhile easy() must
  // stay in its multi handle: curl closes a connect-only connection when its handle leaves.
  virtual std::optional<SocketWait> transfer_done(CURLcode /*code*/) { return std::nullopt; }
  virtual std::optional<SocketWait> resume(short /*revents*/) { return std::nullopt; }
};

// A probe for an http:// or https:// service: fresh connection, the spec's method, headers and
// timeout, at most `settings.max_redirects` redirects followed, at most `settings.max_body_bytes`
// read. Up when the final status is in spec.expected_status. Only http and https are allowed,
// also as redirect targets; the user agent is "vigil/<VIGIL_VERSION>". The probe copies what it
// needs from `spec`. Throws std::runtime_error when curl cannot create the handle, and
// std::invalid_argument when curl refuses the URL (longer than its 8 MB input limit).
std::unique_ptr<Probe> make_http_probe(const ServiceSpec& spec, const ProbeSettings& settings);

// A probe for a tcp://host:port service: connect only (through the multi loop, like every
// probe), then, when the spec has them, write spec.probe.tcp_send (a "\n" is added unless it
// ends with one) and read until spec.probe.tcp_expect appears, all within the timeout. Up when
// all of that happened (and max_response_ms, its only condition, holds).
std::unique_ptr<Probe> make_tcp_probe(const ServiceSpec& spec, const ProbeSettings& settings);

// The probe of the kind core/probe_kind.h names for the spec's URL (make_http_probe,
// make_tcp_probe); a URL no kind checks gets an HTTP probe, which reports its scheme as
// unsupported. Throws as the kind's factory does.
std::unique_ptr<Probe> make_probe(const ServiceSpec& spec, const ProbeSettings& settings);

// Runs `probe` to the end on a ProbeMulti of its own, through the runner's own loop code
// (transfer, then any conversation), and returns its result. For `vigil probe` and tests: it
// blocks the calling thread for at most the probe's timeout (plus a second of slack). Throws
// std::runtime_error when curl cannot start it.
ProbeResult run_probe_now(Probe& probe, Millis timeout);

// The non-overlapping phases (config/model.h PhaseTimings) from curl's cumulative
// CURLINFO_*_TIME_T marks of a finished transfer. `tls_expected`: an https transfer (otherwise
// the tls phase is 0). A transfer that stopped early charges the rest of the total to the phase
// it was in. The phases always add up to `total_us`.
PhaseTimings phases_from_marks(curl_off_t namelookup_us, curl_off_t connect_us,
                               curl_off_t appconnect_us, curl_off_t starttransfer_us,
                               curl_off_t total_us, bool tls_expected);

}  // namespace vigil

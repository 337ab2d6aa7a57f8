// CurlProbe: what every probe kind built on one libcurl easy handle shares, private to runner/:
// the handle with the options all kinds set, the time marks, curl's own error text, and the
// reasons for the failures all kinds have in common (timeout, refused, DNS). A kind derives
// from it and adds its own options, failures and judgement.
#pragma once

#include <curl/curl.h>

#include <string>

#include "core/model.h"
#include "runner/curl_handles.h"
#include "runner/probe.h"

namespace vigil {

class CurlProbe : public Probe {
 public:
  CurlProbe(const CurlProbe&) = delete;
  CurlProbe& operator=(const CurlProbe&) = delete;
  CURL* easy() override { return handle(); }

 protected:
  // Creates the handle with: the error buffer, no signals, a new connection for every probe,
  // a detached resolver (CURLOPT_QUICK_EXIT), the spec's timeout (at least 1 ms) and IP version,
  // and the source address (the spec's source_ip, else settings.source_ip, else the system's).
  // Throws std::runtime_error when curl cannot create the handle.
  CurlProbe(const ServiceSpec& spec, const ProbeSettings& settings);

  // A cumulative time mark of the finished transfer (CURLINFO_*_TIME_T) in microseconds; 0 when
  // curl has none.
  curl_off_t mark(CURLINFO info) const;
  // The address curl connected to last; empty when none.
  std::string primary_ip() const;
  // curl's own sentence for this transfer when it wrote one, its generic text otherwise. Made
  // valid UTF-8: curl quotes what the peer sent (a status line, a header, a host).
  std::string detail(CURLcode code) const;
  // The reason a transfer failed with `code`, for the failures every kind has: "timeout after N
  // ms", "connection refused", "connection failed: ...", "DNS resolution failed: <host>",
  // "source address <ip>: ..." (not an address of this machine), else detail(). A kind checks
  // its own failures first.
  std::string describe_failure(CURLcode code) const;
  // The host named in "DNS resolution failed: <host>".
  virtual std::string failing_host() const = 0;

  CURL* handle() const { return easy_.get(); }
  // The spec's timeout, at least 1 ms: the transfer's bound (CURLOPT_TIMEOUT_MS).
  Millis timeout() const { return timeout_; }

 private:
  CurlEasyPtr easy_;
  Millis timeout_;
  std::string source_ip_;             // empty: the system's choice
  char error_[CURL_ERROR_SIZE] = {};  // curl writes here; the probe never moves (heap-owned)
};

}  // namespace vigil

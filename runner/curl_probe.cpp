#include "runner/curl_probe.h"

#include <cerrno>
#include <stdexcept>

#include "core/text.h"

namespace vigil {

CurlProbe::CurlProbe(const ServiceSpec& spec, const ProbeSettings& settings)
    : easy_(curl_easy_init()),
      timeout_(spec.timeout > Millis::zero() ? spec.timeout : Millis(1)),
      source_ip_(spec.probe.source_ip.empty() ? settings.source_ip : spec.probe.source_ip) {
  if (!easy_) throw std::runtime_error("curl_easy_init failed");
  CURL* e = easy_.get();
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, error_);
  // Runs on the runner thread among thousands of others: no signals, and a new connection every
  // time so connect (and TLS) are measured as a first-time visitor sees them.
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
#if LIBCURL_VERSION_NUM >= 0x075700
  // Without it, a probe that times out (or is removed) while its name is still resolving makes
  // curl join the resolver thread, blocking the whole loop behind one slow DNS server; with it
  // the resolver thread is detached and cleans up after itself.
  curl_easy_setopt(e, CURLOPT_QUICK_EXIT, 1L);
#endif
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_.count()));
  curl_easy_setopt(e, CURLOPT_IPRESOLVE,
                   spec.probe.ip_version == IpVersion::v4   ? CURL_IPRESOLVE_V4
                   : spec.probe.ip_version == IpVersion::v6 ? CURL_IPRESOLVE_V6
                                                            : CURL_IPRESOLVE_WHATEVER);
  if (!source_ip_.empty()) {
    // "host!" makes curl take it as an address, never as the name of a network interface.
    const std::string interface = "host!" + source_ip_;
    curl_easy_setopt(e, CURLOPT_INTERFACE, interface.c_str());  // curl copies it
  }
}

curl_off_t CurlProbe::mark(CURLINFO info) const {
  curl_off_t us = 0;
  return curl_easy_getinfo(easy_.get(), info, &us) == CURLE_OK ? us : curl_off_t{0};
}

std::string CurlProbe::primary_ip() const {
  char* ip = nullptr;
  if (curl_easy_getinfo(easy_.get(), CURLINFO_PRIMARY_IP, &ip) == CURLE_OK && ip) return ip;
  return {};
}

std::string CurlProbe::detail(CURLcode code) const {
  return error_[0] != '\0' ? valid_utf8(error_) : std::string(curl_easy_strerror(code));
}

std::string CurlProbe::describe_failure(CURLcode code) const {
  switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
      return "timeout after " + std::to_string(timeout_.count()) + " ms";
    case CURLE_COULDNT_CONNECT: {
      long os_errno = 0;
      curl_easy_getinfo(easy_.get(), CURLINFO_OS_ERRNO, &os_errno);
      if (os_errno == ECONNREFUSED) return "connection refused";
      return "connection failed: " + detail(code);
    }
    case CURLE_COULDNT_RESOLVE_HOST:
      return "DNS resolution failed: " + failing_host();
    case CURLE_INTERFACE_FAILED:
      return "source address " + source_ip_ + ": " + detail(code);
    default:
      return detail(code);
  }
}

}  // namespace vigil

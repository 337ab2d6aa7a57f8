// The HTTP(S) probe kind: one libcurl easy handle configured from a ServiceSpec, and the mapping
// from what curl reports to the precise reason a tick is down.
#include <cerrno>
#include <mutex>
#include <stdexcept>
#include <string_view>
#include <vector>

#include "runner/curl_handles.h"
#include "runner/probe.h"

#ifndef VIGIL_VERSION
#error "VIGIL_VERSION must be defined by the build"
#endif

namespace vigil {

void ensure_curl_global_init() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
      throw std::runtime_error("curl_global_init failed");
    }
  });
}

namespace {

bool is_tls_error(CURLcode code) {
  switch (code) {
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_USE_SSL_FAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CLIENTCERT:
      return true;
    default:
      return false;
  }
}

class HttpProbe final : public Probe {
 public:
  HttpProbe(const ServiceSpec& spec, const ProbeLimits& limits)
      : easy_(curl_easy_init()),
        // Only the ranges are kept: the spec may change while this probe is in flight.
        expected_status_(spec.expected_status),
        timeout_(spec.timeout > Millis::zero() ? spec.timeout : Millis(1)),
        max_body_bytes_(limits.max_body_bytes) {
    if (!easy_) throw std::runtime_error("curl_easy_init failed");
    CURL* e = easy_.get();
    curl_easy_setopt(e, CURLOPT_URL, spec.url.c_str());
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, error_);
    // Runs on the runner thread among thousands of others: no signals, and a new connection
    // every time so connect and TLS are measured as a first-time visitor sees them.
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
    curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
#if LIBCURL_VERSION_NUM >= 0x075700
    // Without it, a probe that times out (or is removed) while its name is still resolving makes
    // curl join the resolver thread, blocking the whole loop behind one slow DNS server; with it
    // the resolver thread is detached and cleans up after itself.
    curl_easy_setopt(e, CURLOPT_QUICK_EXIT, 1L);
#endif
    // A services file must not be able to make vigil read file:// or talk to other protocols,
    // not even through a redirect.
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, limits.max_redirects);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_.count()));
    curl_easy_setopt(e, CURLOPT_USERAGENT, "vigil/" VIGIL_VERSION);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &HttpProbe::on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, this);
    // Refuses early when Content-Length announces too much; the write callback catches the
    // rest (chunked or lying servers).
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(max_body_bytes_));

    if (spec.method == "HEAD") {
      curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (spec.method == "POST") {
      // An empty body with Content-Length: 0; curl does not copy POSTFIELDS, a literal lives on.
      curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, 0L);
    } else if (!spec.method.empty() && spec.method != "GET") {
      curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, spec.method.c_str());
    }

    for (const auto& [name, value] : spec.headers) {
      // "Name;" is curl's way to send a header with an empty value.
      const std::string line = value.empty() ? name + ";" : name + ": " + value;
      curl_slist* appended = curl_slist_append(headers_.get(), line.c_str());
      if (!appended) throw std::runtime_error("curl_slist_append failed");
      if (!headers_) headers_.reset(appended);
    }
    if (headers_) curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers_.get());
  }

  HttpProbe(const HttpProbe&) = delete;
  HttpProbe& operator=(const HttpProbe&) = delete;

  CURL* easy() override { return easy_.get(); }

  ProbeResult finish(CURLcode code) override {
    CURL* e = easy_.get();
    ProbeResult result;
    curl_off_t total_us = 0;
    if (curl_easy_getinfo(e, CURLINFO_TOTAL_TIME_T, &total_us) == CURLE_OK) {
      result.response_ms = static_cast<double>(total_us) / 1000.0;
    }
    long status = 0;
    if (curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK && status > 0) {
      result.status_code = static_cast<int>(status);
    }
    if (code != CURLE_OK) {
      result.error = describe_failure(code);
      return result;
    }
    if (!result.status_code) {
      result.error = "no HTTP response";
    } else if (accepts(*result.status_code)) {
      result.up = true;
    } else {
      result.error = "HTTP status " + std::to_string(*result.status_code) + " not expected";
    }
    return result;
  }

 private:
  static std::size_t on_body(char*, std::size_t size, std::size_t count, void* user) {
    auto* self = static_cast<HttpProbe*>(user);
    const std::size_t bytes = size * count;
    self->body_bytes_ += bytes;
    if (self->body_bytes_ > self->max_body_bytes_) {
      self->body_too_large_ = true;
      return 0;  // anything but `bytes` makes curl abort the transfer with CURLE_WRITE_ERROR
    }
    return bytes;
  }

  bool accepts(int code) const {
    for (const auto& range : expected_status_)
      if (range.contains(code)) return true;
    return false;
  }

  std::string describe_failure(CURLcode code) const {
    const std::string timeout_text = "timeout after " + std::to_string(timeout_.count()) + " ms";
    if (body_too_large_ || code == CURLE_FILESIZE_EXCEEDED) {
      return "body larger than " + std::to_string(max_body_bytes_) + " bytes";
    }
    switch (code) {
      case CURLE_OPERATION_TIMEDOUT:
        // A resolver that never answers is a DNS problem, not a slow server.
        if (std::string_view(error_).starts_with("Resolving timed out")) {
          return "DNS resolution failed: " + failing_host() + " (" + timeout_text + ")";
        }
        return timeout_text;
      case CURLE_COULDNT_CONNECT: {
        long os_errno = 0;
        curl_easy_getinfo(easy_.get(), CURLINFO_OS_ERRNO, &os_errno);
        if (os_errno == ECONNREFUSED) return "connection refused";
        return "connection failed: " + detail(code);
      }
      case CURLE_COULDNT_RESOLVE_HOST:
        return "DNS resolution failed: " + failing_host();
      case CURLE_TOO_MANY_REDIRECTS:
        return "too many redirects";
      case CURLE_UNSUPPORTED_PROTOCOL:
        return "unsupported protocol: " + detail(code);
      case CURLE_GOT_NOTHING:
        return "empty reply from server";
      default:
        if (is_tls_error(code)) return "TLS: " + detail(code);
        return detail(code);
    }
  }

  // curl's own sentence for this transfer when it wrote one, its generic text otherwise.
  std::string detail(CURLcode code) const {
    return error_[0] != '\0' ? std::string(error_) : std::string(curl_easy_strerror(code));
  }

  // The host of the URL curl was fetching when it failed: after redirects that is not
  // necessarily the configured one.
  std::string failing_host() const {
    char* effective = nullptr;
    curl_easy_getinfo(easy_.get(), CURLINFO_EFFECTIVE_URL, &effective);
    CurlUrlPtr url(curl_url());
    char* host = nullptr;
    if (effective && url && curl_url_set(url.get(), CURLUPART_URL, effective, 0) == CURLUE_OK &&
        curl_url_get(url.get(), CURLUPART_HOST, &host, 0) == CURLUE_OK) {
      return CurlStringPtr(host).get();
    }
    return effective ? effective : "";
  }

  CurlEasyPtr easy_;
  CurlSlistPtr headers_;
  std::vector<StatusRange> expected_status_;
  Millis timeout_;
  std::size_t max_body_bytes_;
  std::size_t body_bytes_ = 0;
  bool body_too_large_ = false;
  char error_[CURL_ERROR_SIZE] = {};  // curl writes here; the probe never moves (heap-owned)
};

}  // namespace

std::unique_ptr<Probe> make_http_probe(const ServiceSpec& spec, const ProbeLimits& limits) {
  ensure_curl_global_init();
  return std::make_unique<HttpProbe>(spec, limits);
}

}  // namespace vigil

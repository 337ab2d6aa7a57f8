// The HTTP(S) probe kind: one libcurl easy handle configured from a ServiceSpec, and the mapping
// from what curl reports to the precise reason a tick is down. Probe depth: request
// options, TLS details (CURLINFO_CERTINFO, the negotiated version), per-phase timings, and the
// service's conditions judged on the response.
#include <openssl/ssl.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <ctime>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string_view>
#include <vector>

#include "core/text.h"
#include "runner/curl_handles.h"
#include "runner/curl_probe.h"

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

// "Mar 12 10:00:00 2026 GMT", as OpenSSL prints a certificate's dates into CERTINFO.
std::optional<TimePoint> parse_cert_time(const std::string& text) {
  std::tm tm{};
  const char* end = ::strptime(text.c_str(), "%b %d %H:%M:%S %Y", &tm);
  if (!end) return std::nullopt;
  return TimePoint(std::chrono::seconds(::timegm(&tm)));
}

// The chain from CURLINFO_CERTINFO, leaf first: each certificate is a list of "Name:value".
std::vector<CertificateInfo> read_certificates(CURL* easy) {
  std::vector<CertificateInfo> chain;
  curl_certinfo* info = nullptr;
  if (curl_easy_getinfo(easy, CURLINFO_CERTINFO, &info) != CURLE_OK || !info) return chain;
  for (int i = 0; i < info->num_of_certs; ++i) {
    CertificateInfo cert;
    for (const curl_slist* field = info->certinfo[i]; field; field = field->next) {
      const std::string_view line(field->data);
      const auto colon = line.find(':');
      if (colon == std::string_view::npos) continue;
      const auto name = line.substr(0, colon);
      const std::string value(line.substr(colon + 1));
      // A certificate's names are the server's bytes (a T61String is often Latin-1).
      if (name == "Subject") cert.subject = valid_utf8(value);
      if (name == "Issuer") cert.issuer = valid_utf8(value);
      if (name == "Expire date") cert.not_after = parse_cert_time(value);
    }
    chain.push_back(std::move(cert));
  }
  return chain;
}

std::string lower(std::string_view text) {
  std::string out(text);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim_blank(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front())))
    text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())))
    text.remove_suffix(1);
  return text;
}

class HttpProbe final : public CurlProbe {
 public:
  HttpProbe(const ServiceSpec& spec, const ProbeSettings& settings)
      : CurlProbe(spec, settings),
        // Only the ranges are kept: the spec may change while this probe is in flight.
        expected_status_(spec.expected_status),
        conditions_(spec.probe.conditions.compiled),
        max_body_bytes_(settings.max_body_bytes),
        keep_body_(conditions_ && conditions_->needs_body),
        keep_headers_(conditions_ && conditions_->needs_headers) {
    CURL* e = easy();
    set_text_option(e, CURLOPT_URL, spec.url, "URL");
    curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
    // A services file must not be able to make vigil read file:// or talk to other protocols,
    // not even through a redirect.
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    const ProbeOptions& options = spec.probe;
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, options.follow_redirects ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS,
                     std::min<long>(settings.max_redirects, options.max_redirects));
    curl_easy_setopt(
        e, CURLOPT_USERAGENT,
        options.user_agent.empty() ? "vigil/" VIGIL_VERSION : options.user_agent.c_str());
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &HttpProbe::on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, this);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &HttpProbe::on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, this);
    // The chain's subjects and dates, for probe_ssl_earliest_cert_expiry and the certificate
    // condition; collected on every TLS handshake (each probe has a fresh connection).
    curl_easy_setopt(e, CURLOPT_CERTINFO, 1L);
    if (options.insecure_skip_verify) {
      curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
      curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (!options.ca_file.empty()) curl_easy_setopt(e, CURLOPT_CAINFO, options.ca_file.c_str());
    if (!options.client_cert.empty())
      curl_easy_setopt(e, CURLOPT_SSLCERT, options.client_cert.c_str());
    if (!options.client_key.empty())
      curl_easy_setopt(e, CURLOPT_SSLKEY, options.client_key.c_str());
    // "" disables proxies, http_proxy and friends in the environment included: a stray
    // variable must not reroute probes (and their timings) through some proxy.
    curl_easy_setopt(e, CURLOPT_PROXY, options.proxy.c_str());
    // Refuses early when Content-Length announces too much; the write callback catches the
    // rest (chunked or lying servers).
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(max_body_bytes_));

    if (spec.method == "HEAD") {
      curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (spec.method == "POST" || !options.body.empty()) {
      // POST always has a body (Content-Length: 0 when none is configured); other methods send
      // theirs the same way, under their own name.
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, static_cast<long>(options.body.size()));
      curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, options.body.c_str());
      if (spec.method != "POST") curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, spec.method.c_str());
    } else if (!spec.method.empty() && spec.method != "GET") {
      curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, spec.method.c_str());
    }

    for (const auto& [name, value] : spec.headers) {
      // "Name;" is curl's way to send a header with an empty value.
      const std::string line = value.empty() ? name + ";" : name + ": " + value;
      if (!append_line(request_headers_, line))
        throw std::runtime_error("curl_slist_append failed");
    }
    if (request_headers_) curl_easy_setopt(e, CURLOPT_HTTPHEADER, request_headers_.get());
  }

  ProbeResult finish(CURLcode code) override {
    CURL* e = easy();
    ProbeResult result;
    const curl_off_t total_us = mark(CURLINFO_TOTAL_TIME_T);
    result.response_ms = static_cast<double>(total_us) / 1000.0;
    long status = 0;
    if (curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK && status > 0) {
      result.status_code = static_cast<int>(status);
    }
    fill_details(result.details);
    const curl_off_t appconnect_us = mark(CURLINFO_APPCONNECT_TIME_T);
    result.details.tls = appconnect_us > 0;  // a TLS handshake completed
    result.phases =
        phases_from_marks(mark(CURLINFO_NAMELOOKUP_TIME_T), mark(CURLINFO_CONNECT_TIME_T),
                          appconnect_us, mark(CURLINFO_STARTTRANSFER_TIME_T), total_us,
                          result.details.final_url.starts_with("https://"));
    if (code != CURLE_OK) {
      result.error = describe_http_failure(code);
      return result;
    }
    if (!result.status_code) {
      result.error = "no HTTP response";
      return result;
    }
    judge(result);
    return result;
  }

 private:
  // Status first, then every condition: all must hold, and each failure is named.
  void judge(ProbeResult& result) const {
    auto& outcomes = result.details.conditions;
    const int code = *result.status_code;
    const bool status_ok = accepts(code);
    const std::string status_error = "HTTP status " + std::to_string(code) + " not expected";
    outcomes.push_back(
        {"status " + std::to_string(code) + " in " + format_status_ranges(expected_status_),
         status_ok, status_ok ? "" : status_error});
    std::string conditions_error;
    if (conditions_) {
      ResponseFacts facts;
      facts.body = body_;
      facts.headers = &headers_;
      facts.response_ms = result.response_ms;
      if (!result.details.certificates.empty() && result.details.certificates[0].not_after) {
        const auto left = *result.details.certificates[0].not_after - now_ms();
        facts.leaf_cert_days_left = std::chrono::duration<double>(left).count() / 86400.0;
      }
      auto evaluated = evaluate_conditions(*conditions_, facts);
      conditions_error = failed_conditions_text(evaluated);
      outcomes.insert(outcomes.end(), evaluated.begin(), evaluated.end());
    }
    result.up = status_ok && conditions_error.empty();
    if (!status_ok) result.error = status_error;
    if (!conditions_error.empty())
      result.error += (result.error.empty() ? "" : "; ") + conditions_error;
  }

  void fill_details(ProbeDetails& details) const {
    CURL* e = handle();
    details.http = true;
    details.resolved_ip = primary_ip();
    char* text = nullptr;
    if (curl_easy_getinfo(e, CURLINFO_EFFECTIVE_URL, &text) == CURLE_OK && text)
      details.final_url = valid_utf8(text);  // a redirect's Location is the server's bytes
    curl_easy_getinfo(e, CURLINFO_REDIRECT_COUNT, &details.redirects);
    curl_off_t length = -1;
    if (curl_easy_getinfo(e, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length) == CURLE_OK &&
        length >= 0)
      details.content_length = length;
    details.body_bytes = static_cast<std::int64_t>(body_bytes_);
    details.tls_version = tls_version_;
    details.certificates = read_certificates(e);
  }

  static std::size_t on_body(char* data, std::size_t size, std::size_t count, void* user) {
    auto* self = static_cast<HttpProbe*>(user);
    const std::size_t bytes = size * count;
    self->body_bytes_ += bytes;
    if (self->body_bytes_ > self->max_body_bytes_) {
      self->body_too_large_ = true;
      return 0;  // anything but `bytes` makes curl abort the transfer with CURLE_WRITE_ERROR
    }
    if (self->keep_body_) self->body_.append(data, bytes);
    return bytes;
  }

  // One header line of any response on the way (redirects included). A status line starts a
  // new response: its headers replace the previous ones, and the connection is asked for the
  // TLS version while it is certainly open.
  static std::size_t on_header(char* data, std::size_t size, std::size_t count, void* user) {
    auto* self = static_cast<HttpProbe*>(user);
    const std::size_t bytes = size * count;
    const std::string_view line(data, bytes);
    if (line.starts_with("HTTP/")) {
      self->headers_.clear();
      self->body_.clear();  // a redirect's body is not the final response's
      self->tls_version_ = self->negotiated_tls_version();
      return bytes;
    }
    if (!self->keep_headers_) return bytes;
    const auto colon = line.find(':');
    if (colon != std::string_view::npos && self->headers_.size() < kMaxHeaders)
      // Values are the server's bytes (Latin-1 is common) and end up quoted in reasons.
      self->headers_.emplace_back(lower(valid_utf8(trim_blank(line.substr(0, colon)))),
                                  valid_utf8(trim_blank(line.substr(colon + 1))));
    return bytes;
  }

  // "TLSv1.3" from OpenSSL, when curl uses it and the connection is TLS; empty otherwise.
  std::string negotiated_tls_version() const {
    const curl_tlssessioninfo* info = nullptr;
    if (curl_easy_getinfo(handle(), CURLINFO_TLS_SSL_PTR, &info) != CURLE_OK || !info ||
        info->backend != CURLSSLBACKEND_OPENSSL || !info->internals)
      return {};
    return SSL_get_version(static_cast<const SSL*>(info->internals));
  }

  bool accepts(int code) const {
    for (const auto& range : expected_status_)
      if (range.contains(code)) return true;
    return false;
  }

  // The HTTP failures first, then those of every kind (CurlProbe::describe_failure).
  std::string describe_http_failure(CURLcode code) const {
    if (body_too_large_ || code == CURLE_FILESIZE_EXCEEDED) {
      return "body larger than " + std::to_string(max_body_bytes_) + " bytes";
    }
    switch (code) {
      case CURLE_OPERATION_TIMEDOUT:
        // A resolver that never answers is a DNS problem, not a slow server.
        if (detail(code).starts_with("Resolving timed out")) {
          return "DNS resolution failed: " + failing_host() + " (" + describe_failure(code) + ")";
        }
        return describe_failure(code);
      case CURLE_TOO_MANY_REDIRECTS:
        return "too many redirects";
      case CURLE_UNSUPPORTED_PROTOCOL:
        return "unsupported protocol: " + detail(code);
      case CURLE_GOT_NOTHING:
        return "empty reply from server";
      default:
        if (is_tls_error(code)) return "TLS: " + detail(code);
        return describe_failure(code);
    }
  }

  // The host of the URL curl was fetching when it failed: after redirects that is not
  // necessarily the configured one.
  std::string failing_host() const override {
    char* effective = nullptr;
    curl_easy_getinfo(handle(), CURLINFO_EFFECTIVE_URL, &effective);
    CurlUrlPtr url(curl_url());
    char* host = nullptr;
    if (effective && url && curl_url_set(url.get(), CURLUPART_URL, effective, 0) == CURLUE_OK &&
        curl_url_get(url.get(), CURLUPART_HOST, &host, 0) == CURLUE_OK) {
      return valid_utf8(CurlStringPtr(host).get());  // a redirect's host: the server's bytes
    }
    return effective ? valid_utf8(effective) : "";
  }

  static constexpr std::size_t kMaxHeaders = 200;  // kept per response, for conditions

  CurlSlistPtr request_headers_;
  std::vector<StatusRange> expected_status_;
  std::shared_ptr<const CompiledConditions> conditions_;  // null when there are none
  std::size_t max_body_bytes_;
  bool keep_body_;
  bool keep_headers_;
  std::size_t body_bytes_ = 0;
  bool body_too_large_ = false;
  std::string body_;                                          // kept only for conditions
  std::vector<std::pair<std::string, std::string>> headers_;  // final response, lower-case names
  std::string tls_version_;
};

}  // namespace

std::unique_ptr<Probe> make_http_probe(const ServiceSpec& spec, const ProbeSettings& settings) {
  ensure_curl_global_init();
  return std::make_unique<HttpProbe>(spec, settings);
}

std::optional<TimePoint> ProbeDetails::earliest_cert_expiry() const {
  std::optional<TimePoint> earliest;
  for (const auto& cert : certificates)
    if (cert.not_after && (!earliest || *cert.not_after < *earliest)) earliest = cert.not_after;
  return earliest;
}

PhaseTimings phases_from_marks(curl_off_t namelookup_us, curl_off_t connect_us,
                               curl_off_t appconnect_us, curl_off_t starttransfer_us,
                               curl_off_t total_us, bool tls_expected) {
  // curl's marks are cumulative from the start (summed over redirects). Each phase is the step
  // from the furthest mark so far to the next; a mark of 0 that no later mark follows was never
  // reached, so the phase it would end gets the rest of the total.
  struct Step {
    double* phase;
    curl_off_t mark;
  };
  PhaseTimings phases;
  // Runs on every probe: a fixed array, no allocation. Without TLS the tls step is left out.
  std::array<Step, 5> all = {
      Step{&phases.resolve_ms, namelookup_us}, Step{&phases.connect_ms, connect_us},
      Step{&phases.tls_ms, appconnect_us}, Step{&phases.processing_ms, starttransfer_us},
      Step{&phases.transfer_ms, total_us}};
  if (!tls_expected) std::copy(all.begin() + 3, all.end(), all.begin() + 2);
  const std::span<const Step> steps(all.data(), tls_expected ? 5 : 4);

  // Index + 1 of the last step before the transfer that curl reached (its mark is set).
  std::size_t last_reached = 0;
  for (std::size_t i = 0; i + 1 < steps.size(); ++i)
    if (steps[i].mark > 0) last_reached = i + 1;
  curl_off_t previous = 0;
  for (std::size_t i = 0; i < steps.size(); ++i) {
    // Past the last mark, the step in progress ends at the total and the rest are empty.
    const curl_off_t end =
        i < last_reached ? std::max(previous, std::min(steps[i].mark, total_us)) : total_us;
    *steps[i].phase = static_cast<double>(std::max(end, previous) - previous) / 1000.0;
    previous = std::max(end, previous);
  }
  return phases;
}

}  // namespace vigil

// The TCP probe kind: tcp://host:port. curl opens the connection (CURLOPT_CONNECT_ONLY,
// as an http:// URL it never sends a request to), so resolving and connecting run inside the
// runner's multi loop like every probe. The optional conversation after it (write `send`, read
// until `expect`) uses curl_easy_send/curl_easy_recv, which never block: when the socket is not
// ready the probe hands the runner a SocketWait, and the runner polls that socket together with
// curl's own (curl_multi_poll's extra fds). So a TCP check never blocks the loop, and the whole
// check is bounded by the service's timeout. (libcurl's telnet:// would block the loop inside
// curl; gopher:// adds its own framing.)
#include <poll.h>

#include <algorithm>
#include <stdexcept>

#include "core/json_input.h"
#include "core/probe_kind.h"
#include "core/text.h"
#include "runner/curl_handles.h"
#include "runner/curl_probe.h"

namespace vigil {
namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr std::size_t kMaxReceived = 64 * 1024;  // bytes read while looking for `expect`

// The text quoted for a message.
std::string shown(const std::string& text) { return vigil::shown(nlohmann::json(text)); }

class TcpProbe final : public CurlProbe {
 public:
  TcpProbe(const ServiceSpec& spec, const ProbeSettings& settings)
      : CurlProbe(spec, settings),
        send_(spec.probe.tcp_send),
        expect_(spec.probe.tcp_expect),
        conditions_(spec.probe.conditions.compiled),
        started_(SteadyClock::now()),
        deadline_(started_ + timeout()) {
    // A line protocol wants its line ended; "\n" is added unless the text already ends one.
    if (!send_.empty() && !send_.ends_with("\n")) send_ += "\n";
    // tcp://host:port -> http://host:port/: curl only connects (CONNECT_ONLY), it never speaks
    // HTTP to it.
    std::string url = "http://" + spec.url.substr(probe_scheme_of(spec.url).size());
    if (!url.ends_with("/")) url += "/";
    CurlUrlPtr parsed(curl_url());
    char* host = nullptr;
    if (parsed && curl_url_set(parsed.get(), CURLUPART_URL, url.c_str(), 0) == CURLUE_OK &&
        curl_url_get(parsed.get(), CURLUPART_HOST, &host, 0) == CURLUE_OK)
      host_ = CurlStringPtr(host).get();
    CURL* e = easy();
    set_text_option(e, CURLOPT_URL, url, "URL");
    curl_easy_setopt(e, CURLOPT_CONNECT_ONLY, 1L);
    // Not FORBID_REUSE: that would close the connection as soon as it is made, before the
    // conversation; connect-only connections are never reused anyway.
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http");
    curl_easy_setopt(e, CURLOPT_PROXY, "");  // connect to the host itself, whatever the env says
  }

  std::optional<SocketWait> transfer_done(CURLcode code) override {
    connected_at_ = SteadyClock::now();
    if (code != CURLE_OK || (send_.empty() && expect_.empty())) return std::nullopt;
    curl_socket_t socket = CURL_SOCKET_BAD;
    if (curl_easy_getinfo(easy(), CURLINFO_ACTIVESOCKET, &socket) != CURLE_OK ||
        socket == CURL_SOCKET_BAD) {
      failure_ = "connection lost before sending";
      return std::nullopt;
    }
    socket_ = socket;
    talking_ = true;
    return step();
  }

  std::optional<SocketWait> resume(short revents) override {
    if (revents == 0 && SteadyClock::now() >= deadline_) {
      timed_out_ = true;
      return finish_talking();
    }
    return step();
  }

  ProbeResult finish(CURLcode code) override {
    if (talking_ && !done_talking_) {  // the caller gave up waiting: that is a timeout
      timed_out_ = true;
      finish_talking();
    }
    ProbeResult result;
    const curl_off_t connect_us = mark(CURLINFO_TOTAL_TIME_T);
    const auto talked_us =
        talking_
            ? std::chrono::duration_cast<std::chrono::microseconds>(ended_ - connected_at_).count()
            : 0;
    const curl_off_t total_us = connect_us + talked_us;
    result.response_ms = static_cast<double>(total_us) / 1000.0;
    // resolve and connect from curl; the conversation is the transfer. No TLS, no request.
    const curl_off_t connected_us = mark(CURLINFO_CONNECT_TIME_T);
    result.phases = phases_from_marks(mark(CURLINFO_NAMELOOKUP_TIME_T), connected_us, 0,
                                      code == CURLE_OK ? connected_us : 0, total_us, false);
    result.details.resolved_ip = primary_ip();
    result.details.body_bytes = static_cast<std::int64_t>(received_.size());

    if (code != CURLE_OK) {
      result.error = describe_failure(code);
      return result;
    }
    if (!failure_.empty()) {
      result.error = failure_;
      return result;
    }
    if (conditions_) {
      ResponseFacts facts;
      facts.response_ms = result.response_ms;
      result.details.conditions = evaluate_conditions(*conditions_, facts);
      result.error = failed_conditions_text(result.details.conditions);
    }
    result.up = result.error.empty();
    return result;
  }

 private:
  // Writes what is left to send, then reads until `expect` appears; returns the socket wait
  // when the socket is not ready, nothing when the conversation is over.
  std::optional<SocketWait> step() {
    if (SteadyClock::now() >= deadline_) {
      timed_out_ = true;
      return finish_talking();
    }
    while (sent_ < send_.size()) {
      std::size_t n = 0;
      const CURLcode rc = curl_easy_send(easy(), send_.data() + sent_, send_.size() - sent_, &n);
      if (rc == CURLE_AGAIN) return SocketWait{socket_, POLLOUT, deadline_};
      if (rc != CURLE_OK) {
        failure_ = "send failed: " + detail(rc);
        return finish_talking();
      }
      sent_ += n;
    }
    if (expect_.empty()) return finish_talking();
    char buffer[4096];
    for (;;) {
      std::size_t n = 0;
      const CURLcode rc = curl_easy_recv(easy(), buffer, sizeof buffer, &n);
      if (rc == CURLE_AGAIN) return SocketWait{socket_, POLLIN, deadline_};
      if (rc != CURLE_OK) {
        failure_ = "receive failed: " + detail(rc);
        return finish_talking();
      }
      if (n == 0) {
        failure_ = "expected " + shown(expect_) + " not received (connection closed after " +
                   std::to_string(received_.size()) + " bytes)";
        return finish_talking();
      }
      received_.append(buffer, n);
      if (received_.find(expect_) != std::string::npos) return finish_talking();
      if (received_.size() > kMaxReceived) {
        failure_ = "expected " + shown(expect_) + " not received in the first " +
                   std::to_string(kMaxReceived) + " bytes";
        return finish_talking();
      }
    }
  }

  std::optional<SocketWait> finish_talking() {
    done_talking_ = true;
    ended_ = SteadyClock::now();
    if (timed_out_) {
      failure_ = "timeout after " + std::to_string(timeout().count()) + " ms " +
                 (sent_ < send_.size() ? std::string("sending") : "waiting for " + shown(expect_));
    }
    return std::nullopt;
  }

  std::string failing_host() const override { return host_; }

  std::string host_;
  std::string send_;
  std::string expect_;
  std::shared_ptr<const CompiledConditions> conditions_;
  SteadyClock::time_point started_;
  SteadyClock::time_point deadline_;
  SteadyClock::time_point connected_at_;
  SteadyClock::time_point ended_;
  curl_socket_t socket_ = CURL_SOCKET_BAD;
  bool talking_ = false;
  bool done_talking_ = false;
  bool timed_out_ = false;
  std::size_t sent_ = 0;
  std::string received_;
  std::string failure_;  // why the conversation failed; empty when it did not (or did not run)
};

}  // namespace

std::unique_ptr<Probe> make_tcp_probe(const ServiceSpec& spec, const ProbeSettings& settings) {
  ensure_curl_global_init();
  return std::make_unique<TcpProbe>(spec, settings);
}

}  // namespace vigil

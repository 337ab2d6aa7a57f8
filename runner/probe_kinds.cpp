// Which probe kind checks a service, and running one probe to the end outside the runner
// (`vigil probe`, tests).
#include <algorithm>
#include <stdexcept>

#include "runner/curl_handles.h"
#include "runner/probe.h"

namespace vigil {

std::unique_ptr<Probe> make_probe(const ServiceSpec& spec, const ProbeLimits& limits) {
  if (spec.url.starts_with("tcp://")) return make_tcp_probe(spec, limits);
  return make_http_probe(spec, limits);
}

ProbeResult run_probe_now(Probe& probe, Millis timeout) {
  using Clock = std::chrono::steady_clock;
  ensure_curl_global_init();
  CurlMultiPtr multi(curl_multi_init());
  if (!multi) throw std::runtime_error("curl_multi_init failed");
  if (curl_multi_add_handle(multi.get(), probe.easy()) != CURLM_OK)
    throw std::runtime_error("curl_multi_add_handle failed");
  // curl ends the transfer at the probe's timeout; the slack only guards against a bug.
  const auto deadline = Clock::now() + timeout + std::chrono::seconds(1);
  const auto wait_ms = [&] {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    return static_cast<int>(std::clamp<long long>(left.count(), 0, 100));
  };

  CURLcode code = CURLE_OPERATION_TIMEDOUT;
  bool done = false;
  while (!done && Clock::now() < deadline) {
    int running = 0;
    curl_multi_perform(multi.get(), &running);
    int queued = 0;
    while (CURLMsg* message = curl_multi_info_read(multi.get(), &queued)) {
      if (message->msg != CURLMSG_DONE) continue;
      code = message->data.result;
      done = true;
    }
    if (!done) curl_multi_poll(multi.get(), nullptr, 0, wait_ms(), nullptr);
  }

  // The conversation, if the probe has one: the handle stays in the multi meanwhile.
  auto wait = probe.transfer_done(code);
  while (wait) {
    curl_waitfd fd{wait->socket, wait->events, 0};
    curl_multi_poll(multi.get(), &fd, 1, wait_ms(), nullptr);
    wait = probe.resume(fd.revents);
    if (Clock::now() >= deadline) break;
  }
  curl_multi_remove_handle(multi.get(), probe.easy());
  return probe.finish(code);
}

}  // namespace vigil

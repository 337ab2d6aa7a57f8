// Which Probe checks each probe kind (core/probe_kind.h), and running one probe to the end
// outside the runner (`vigil probe`, tests) through the runner's own ProbeMulti.
#include <algorithm>
#include <stdexcept>

#include "core/probe_kind.h"
#include "runner/probe.h"
#include "runner/probe_multi.h"

namespace vigil {
namespace {

using ProbeFactory = std::unique_ptr<Probe> (*)(const ServiceSpec&, const ProbeSettings&);

struct ProbeKindFactory {
  ProbeKind kind;
  ProbeFactory make;
};

// One row per kind.
constexpr ProbeKindFactory kFactories[] = {
    {ProbeKind::http, make_http_probe},
    {ProbeKind::tcp, make_tcp_probe},
};

}  // namespace

std::unique_ptr<Probe> make_probe(const ServiceSpec& spec, const ProbeSettings& settings) {
  // A URL no kind checks goes to the HTTP probe, which reports its scheme as unsupported.
  const ProbeKindInfo* info = probe_kind_for(spec.url);
  const ProbeKind kind = info ? info->kind : ProbeKind::http;
  for (const auto& factory : kFactories)
    if (factory.kind == kind) return factory.make(spec, settings);
  throw std::logic_error("no probe for a kind of core/probe_kind.h");
}

ProbeResult run_probe_now(Probe& probe, Millis timeout) {
  using Clock = std::chrono::steady_clock;
  using namespace std::chrono_literals;
  ProbeMulti multi;
  RunningProbe running{&probe};
  if (multi.add(running) != CURLM_OK) throw std::runtime_error("curl_multi_add_handle failed");
  bool done = false;
  const ProbeMulti::Done finished = [&](RunningProbe&) { done = true; };
  // curl ends the transfer, and the probe its conversation, at the probe's timeout; the slack
  // only guards against a bug.
  const auto deadline = Clock::now() + timeout + 1s;
  for (;;) {
    multi.perform(finished);
    if (done || Clock::now() >= deadline) break;
    multi.poll(std::clamp<std::chrono::nanoseconds>(deadline - Clock::now(), 0ns, 100ms));
    multi.advance(finished);
    if (done) break;
  }
  if (!done) {
    // Given up: a transfer curl never reported counts as timed out; a conversation still going
    // is the probe's to call a timeout in finish().
    if (!running.waiting) running.code = CURLE_OPERATION_TIMEDOUT;
    multi.remove(running);
  }
  return probe.finish(running.code);
}

}  // namespace vigil

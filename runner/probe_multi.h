// ProbeMulti: probes running on one curl multi handle, from the transfer through the
// conversation some kinds hold after it (Probe::transfer_done/resume) to the moment the probe is
// done and finish() may be called. The runner drives one for all its services; run_probe_now
// drives one for a single probe, so `vigil probe` and the tests run a probe through the same
// loop code as the runner.
//
// One thread calls everything except wakeup(), which any thread may call.
#pragma once

#include <curl/curl.h>

#include <chrono>
#include <functional>
#include <optional>
#include <vector>

#include "runner/curl_handles.h"
#include "runner/probe.h"

namespace vigil {

// One probe in a ProbeMulti. The caller owns it (and its probe) and keeps it at one address
// from add() until it is handed back as done or remove()d: curl's handle points to it.
struct RunningProbe {
  Probe* probe = nullptr;  // not owned
  // While the probe converses after its transfer: the socket it waits on, until when.
  std::optional<SocketWait> waiting = std::nullopt;
  CURLcode code = CURLE_OK;  // the transfer's result once curl reported it: for finish()
};

class ProbeMulti {
 public:
  // Done: the probe's handle is out of the multi handle; calling probe->finish(running.code)
  // is the callee's part.
  using Done = std::function<void(RunningProbe&)>;

  // Throws std::runtime_error when libcurl cannot be initialised.
  ProbeMulti();
  // Every probe must be done or removed before: curl wants its handles out first.
  ~ProbeMulti() = default;
  ProbeMulti(const ProbeMulti&) = delete;
  ProbeMulti& operator=(const ProbeMulti&) = delete;

  // Starts `running`'s probe. Returns CURLM_OK, or curl's error when it could not be added (then
  // nothing was).
  CURLMcode add(RunningProbe& running);
  // Drops `running` without finishing it (an abandoned probe): its handle leaves the multi
  // handle, a conversation ends where it is. Harmless for a probe that is not in.
  void remove(RunningProbe& running);

  // Moves every transfer on (curl_multi_perform). A probe whose transfer ended either starts
  // its conversation (transfer_done asked for a socket wait) or is done and goes to `done`.
  // Returns curl_multi_perform's code.
  CURLMcode perform(const Done& done);
  // Sleeps until curl or a conversation's socket has something to do, at most `max_wait`
  // (shortened to the earliest conversation deadline, rounded up to a whole millisecond), or
  // until wakeup(). Returns curl_multi_poll's code.
  CURLMcode poll(std::chrono::nanoseconds max_wait);
  // After poll(): each conversation whose socket became ready or whose deadline passed takes
  // its next step; one that ended is done and goes to `done`.
  void advance(const Done& done);

  // Makes a poll() in progress (or the next one) return at once. Safe from any thread.
  void wakeup();

 private:
  CurlMultiPtr multi_;
  std::vector<RunningProbe*> talking_;    // in a conversation, handles still in the multi
  std::vector<curl_waitfd> talking_fds_;  // their sockets, as the last poll() waited on them
};

}  // namespace vigil

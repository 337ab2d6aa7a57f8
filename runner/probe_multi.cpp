#include "runner/probe_multi.h"

#include <algorithm>
#include <stdexcept>

namespace vigil {

ProbeMulti::ProbeMulti() {
  ensure_curl_global_init();
  multi_.reset(curl_multi_init());
  if (!multi_) throw std::runtime_error("curl_multi_init failed");
}

CURLMcode ProbeMulti::add(RunningProbe& running) {
  CURL* easy = running.probe->easy();
  curl_easy_setopt(easy, CURLOPT_PRIVATE, &running);
  return curl_multi_add_handle(multi_.get(), easy);
}

void ProbeMulti::remove(RunningProbe& running) {
  // The sockets of the last poll no longer line up with talking_: advance() treats them as
  // silent (deadlines still apply).
  if (std::erase(talking_, &running) > 0) talking_fds_.clear();
  curl_multi_remove_handle(multi_.get(), running.probe->easy());
}

CURLMcode ProbeMulti::perform(const Done& done) {
  int running_handles = 0;
  const CURLMcode performed = curl_multi_perform(multi_.get(), &running_handles);
  int queued = 0;
  while (CURLMsg* message = curl_multi_info_read(multi_.get(), &queued)) {
    if (message->msg != CURLMSG_DONE) continue;
    // Copy out before remove_handle: the message belongs to the handle.
    CURL* easy = message->easy_handle;
    const CURLcode code = message->data.result;
    char* user = nullptr;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &user);
    auto* running = reinterpret_cast<RunningProbe*>(user);
    running->code = code;
    // A probe that talks on over the connection keeps its handle in: curl closes a connect-only
    // connection when its handle leaves.
    running->waiting = running->probe->transfer_done(code);
    if (running->waiting) {
      talking_.push_back(running);
      continue;
    }
    curl_multi_remove_handle(multi_.get(), easy);
    done(*running);
  }
  return performed;
}

CURLMcode ProbeMulti::poll(std::chrono::nanoseconds max_wait) {
  using namespace std::chrono_literals;
  // Conversation deadlines are set by the probes on real time, like curl's own timeouts.
  const auto now = std::chrono::steady_clock::now();
  talking_fds_.clear();
  for (const RunningProbe* running : talking_) {
    talking_fds_.push_back({running->waiting->socket, running->waiting->events, 0});
    max_wait =
        std::clamp<std::chrono::nanoseconds>(running->waiting->deadline - now, 0ns, max_wait);
  }
  // Round up: sleeping 0 ms for a slot 0.3 ms away would spin.
  const auto wait_ms = std::chrono::ceil<std::chrono::milliseconds>(std::max(max_wait, 0ns));
  return curl_multi_poll(multi_.get(), talking_fds_.data(),
                         static_cast<unsigned>(talking_fds_.size()),
                         static_cast<int>(wait_ms.count()), nullptr);
}

void ProbeMulti::advance(const Done& done) {
  if (talking_.empty()) return;
  const auto now = std::chrono::steady_clock::now();
  std::vector<RunningProbe*> ended;
  for (std::size_t i = 0; i < talking_.size(); ++i) {
    RunningProbe* running = talking_[i];
    const short revents = i < talking_fds_.size() ? talking_fds_[i].revents : 0;
    if (revents == 0 && now < running->waiting->deadline) continue;
    running->waiting = running->probe->resume(revents);
    if (!running->waiting) ended.push_back(running);
  }
  for (RunningProbe* running : ended) {
    std::erase(talking_, running);
    curl_multi_remove_handle(multi_.get(), running->probe->easy());
    done(*running);
  }
}

void ProbeMulti::wakeup() { curl_multi_wakeup(multi_.get()); }

}  // namespace vigil

// Clients that hold connections to a server on 127.0.0.1 and never send a byte, as an attacker
// holding its connection slots does; from several loopback addresses (127.0.0.x are all local)
// to model distinct clients. Header-only.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <string>
#include <thread>
#include <vector>

namespace vigil::test {

// Binds `fd` to the loopback address `source` (127.0.0.x: every one is local), the port chosen
// at connect; true when done. Lets one test model clients at distinct addresses.
inline bool bind_source(int fd, const std::string& source) {
  int yes = 1;
  ::setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &yes, sizeof yes);
  sockaddr_in from{};
  from.sin_family = AF_INET;
  return ::inet_pton(AF_INET, source.c_str(), &from.sin_addr) == 1 &&
         ::bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from) == 0;
}

inline sockaddr_in loopback_address(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

// `count` connections to 127.0.0.1:port that never send a byte, spread over the `sources`
// addresses, each reopened as soon as the server closes it: an attacker holding slots. One
// thread with epoll; it stops at stop(), after `max_time` or after `max_connects` connects.
class IdleFlood {
 public:
  IdleFlood(int port, std::vector<std::string> sources, std::size_t count,
            std::chrono::milliseconds max_time, std::size_t max_connects)
      : port_(port), sources_(std::move(sources)), fds_(count, -1) {
    epoll_ = ::epoll_create1(0);
    thread_ = std::thread([this, max_time, max_connects] { run(max_time, max_connects); });
  }
  ~IdleFlood() { stop(); }
  IdleFlood(const IdleFlood&) = delete;
  IdleFlood& operator=(const IdleFlood&) = delete;

  void stop() {
    stopping_ = true;
    if (thread_.joinable()) thread_.join();
    for (const int fd : fds_)
      if (fd >= 0) ::close(fd);
    fds_.assign(fds_.size(), -1);
    if (epoll_ >= 0) ::close(epoll_);
    epoll_ = -1;
  }
  std::size_t connects() const { return connects_.load(); }  // connections established
  std::size_t cuts() const { return cuts_.load(); }          // closed by the server

 private:
  void open(std::size_t slot) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    fds_[slot] = fd;
    if (fd < 0) return;
    const sockaddr_in addr = loopback_address(port_);
    if (!bind_source(fd, sources_[slot % sources_.size()]) ||
        (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 &&
         errno != EINPROGRESS)) {
      ::close(fd);
      fds_[slot] = -1;
      return;
    }
    epoll_event event{};
    event.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
    event.data.u64 = slot;
    ::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &event);
  }

  void run(std::chrono::milliseconds max_time, std::size_t max_connects) {
    const auto until = std::chrono::steady_clock::now() + max_time;
    for (std::size_t slot = 0; slot < fds_.size(); ++slot) open(slot);
    std::vector<epoll_event> events(256);
    while (!stopping_ && std::chrono::steady_clock::now() < until && connects_ < max_connects) {
      // Slots whose socket could not even be made are retried here.
      for (std::size_t slot = 0; slot < fds_.size(); ++slot)
        if (fds_[slot] < 0) open(slot);
      const int n = ::epoll_wait(epoll_, events.data(), int(events.size()), 20);
      for (int i = 0; i < n; ++i) {
        const auto slot = std::size_t(events[std::size_t(i)].data.u64);
        const int fd = fds_[slot];
        if (fd < 0) continue;
        const auto what = events[std::size_t(i)].events;
        if (what & EPOLLOUT) {  // connected (or failed: then EPOLLERR/HUP below)
          if (!(what & (EPOLLERR | EPOLLHUP))) ++connects_;
          epoll_event event{};
          event.events = EPOLLIN | EPOLLRDHUP;
          event.data.u64 = slot;
          ::epoll_ctl(epoll_, EPOLL_CTL_MOD, fd, &event);
        }
        if (!(what & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP))) continue;
        char sink[4096];
        ssize_t got = 0;
        while ((got = ::recv(fd, sink, sizeof sink, MSG_DONTWAIT)) > 0) {
        }
        if (got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
          ++cuts_;
          ::close(fd);
          fds_[slot] = -1;
          open(slot);  // at once, as an attacker would
        }
      }
    }
  }

  const int port_;
  const std::vector<std::string> sources_;
  std::vector<int> fds_;  // only the flood's thread touches it until stop() joins it
  int epoll_ = -1;
  std::atomic<bool> stopping_{false};
  std::atomic<std::size_t> connects_{0};
  std::atomic<std::size_t> cuts_{0};
  std::thread thread_;
};

}  // namespace vigil::test

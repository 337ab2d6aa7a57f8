#include "support/raw_target.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <stdexcept>

namespace vigil::test {

namespace {

using Clock = std::chrono::steady_clock;
constexpr std::chrono::milliseconds kPollStep{50};  // how soon a wait notices the target stopping

// Waits for `events` on fd for at most one step; true when they are ready.
bool ready(int fd, short events) {
  pollfd p{fd, events, 0};
  return ::poll(&p, 1, static_cast<int>(kPollStep.count())) > 0;
}

}  // namespace

std::string RawConnection::read_head(std::chrono::milliseconds timeout) {
  std::string head;
  const auto deadline = Clock::now() + timeout;
  while (fd_ >= 0 && !stopping_ && Clock::now() < deadline &&
         head.find("\r\n\r\n") == std::string::npos) {
    if (!ready(fd_, POLLIN)) continue;
    char buffer[4096];
    const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
    if (n <= 0) break;
    head.append(buffer, static_cast<std::size_t>(n));
  }
  return head;
}

std::string RawConnection::read_until(std::string_view marker, std::chrono::milliseconds timeout) {
  std::string received;
  const auto deadline = Clock::now() + timeout;
  while (fd_ >= 0 && !stopping_ && Clock::now() < deadline &&
         received.find(marker) == std::string::npos) {
    if (!ready(fd_, POLLIN)) continue;
    char buffer[4096];
    const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
    if (n <= 0) break;
    received.append(buffer, static_cast<std::size_t>(n));
  }
  return received;
}

bool RawConnection::send(std::string_view bytes) {
  while (fd_ >= 0 && !bytes.empty()) {
    if (stopping_) return false;
    if (!ready(fd_, POLLOUT)) continue;
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return fd_ >= 0;
}

void RawConnection::wait_for_close(std::chrono::milliseconds limit) {
  const auto deadline = Clock::now() + limit;
  while (fd_ >= 0 && !stopping_ && Clock::now() < deadline) {
    if (!ready(fd_, POLLIN)) continue;
    char buffer[4096];
    if (::recv(fd_, buffer, sizeof buffer, 0) <= 0) return;  // closed (or reset) by the peer
  }
}

void RawConnection::finish() {
  if (fd_ < 0) return;
  // Half-close, then drain until the peer closes: closing with unread input would send a reset
  // that can destroy what the peer has not read yet.
  ::shutdown(fd_, SHUT_WR);
  wait_for_close(std::chrono::seconds(5));
  ::close(fd_);
  fd_ = -1;
}

std::string RawConnection::peer_address() const {
  sockaddr_in peer{};
  socklen_t size = sizeof peer;
  char text[INET_ADDRSTRLEN] = {};
  if (::getpeername(fd_, reinterpret_cast<sockaddr*>(&peer), &size) != 0 ||
      !::inet_ntop(AF_INET, &peer.sin_addr, text, sizeof text))
    return {};
  return text;
}

void RawConnection::close() {
  if (fd_ < 0) return;
  ::close(fd_);
  fd_ = -1;
}

void RawConnection::reset() {
  if (fd_ < 0) return;
  linger hard{1, 0};
  ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
  ::close(fd_);
  fd_ = -1;
}

RawTarget::RawTarget(Behaviour behave, Threading threading)
    : behave_(std::move(behave)), threading_(threading) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) throw std::runtime_error("raw target: socket() failed");
  int yes = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd_, 128) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(listen_fd_);
    throw std::runtime_error("raw target: cannot listen on 127.0.0.1");
  }
  port_ = ntohs(addr.sin_port);
  acceptor_ = std::thread([this] { accept_loop(); });
}

RawTarget::~RawTarget() {
  stopping_ = true;
  acceptor_.join();
  ::close(listen_fd_);
  std::lock_guard lock(connections_mutex_);
  for (auto& connection : connections_) connection.join();
}

std::string RawTarget::url(const std::string& path, const std::string& scheme) const {
  return scheme + "://127.0.0.1:" + std::to_string(port_) + path;
}

void RawTarget::accept_loop() {
  // Finished connection threads are joined as new ones arrive, so a long test does not keep
  // one idle thread per connection it ever had.
  std::vector<std::shared_ptr<std::atomic<bool>>> done;
  while (!stopping_) {
    if (!ready(listen_fd_, POLLIN)) continue;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    ++accepted_;
    if (threading_ == Threading::inline_quick) {
      RawConnection connection(fd, stopping_);
      behave_(connection);
      connection.close();
      continue;
    }
    std::lock_guard lock(connections_mutex_);
    for (std::size_t i = 0; i < connections_.size();) {
      if (*done[i]) {
        connections_[i].join();
        connections_.erase(connections_.begin() + static_cast<std::ptrdiff_t>(i));
        done.erase(done.begin() + static_cast<std::ptrdiff_t>(i));
      } else {
        ++i;
      }
    }
    auto finished = std::make_shared<std::atomic<bool>>(false);
    done.push_back(finished);
    connections_.emplace_back([this, fd, finished] {
      RawConnection connection(fd, stopping_);
      behave_(connection);
      connection.finish();  // a no-op after reset()
      *finished = true;
    });
  }
}

}  // namespace vigil::test

#include "api/guarded_server.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace vigil {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Waits are cut into slices this long so that a stopping server is noticed quickly.
constexpr milliseconds kWaitSlice{100};
// After an error reply the guard reads (and drops) what the client still sends, at most this
// long and this much, so that closing does not reset the connection before the reply is read.
constexpr milliseconds kLingerTime{500};
constexpr std::size_t kLingerBytes = 256 * 1024;
constexpr std::size_t kReadChunk = 4096;

// Set by the pool while it runs a connection over the cap on the accepting thread, so that
// process_and_close_socket only refuses it.
thread_local bool tl_over_capacity = false;

// One thread per connection, started on demand up to `max` and then reused. httplib's listen
// loop calls enqueue() once per accepted connection and shutdown() when it stops.
class ConnectionPool final : public httplib::TaskQueue {
 public:
  explicit ConnectionPool(std::size_t max) : max_(std::max<std::size_t>(max, 1)) {}
  ~ConnectionPool() override { shutdown(); }

  void enqueue(std::function<void()> fn) override {
    std::unique_lock lock(mutex_);
    if (busy_ >= max_) {
      lock.unlock();
      refuse(fn);
      return;
    }
    if (threads_.size() <= busy_) {
      try {
        threads_.emplace_back([this] { work(); });
      } catch (const std::system_error&) {
        // No thread to be had (a process or memory limit): refused like one past the cap.
        lock.unlock();
        refuse(fn);
        return;
      }
    }
    ++busy_;
    jobs_.push_back(std::move(fn));
    lock.unlock();
    wake_.notify_one();
  }

  // `fn` owns the socket: it must run to close it. Flagged, it only writes a short 503 without
  // blocking, so the accepting thread is not held up.
  static void refuse(const std::function<void()>& fn) {
    tl_over_capacity = true;
    fn();
    tl_over_capacity = false;
  }

  void shutdown() override {
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
      stopping_ = true;
    }
    wake_.notify_all();
    for (auto& thread : threads_) thread.join();
  }

 private:
  void work() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
        if (jobs_.empty()) return;  // stopping, and every queued connection was handled
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();
      std::lock_guard lock(mutex_);
      --busy_;
    }
  }

  const std::size_t max_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;  // only the accepting thread and shutdown() touch it
  std::size_t busy_ = 0;              // connections queued or being served
  bool stopping_ = false;
};

milliseconds to_ms(time_t sec, time_t usec) {
  return milliseconds(static_cast<std::int64_t>(sec) * 1000 + usec / 1000);
}

// httplib's view of one connection, with a deadline over every wait and the request head read
// ahead into a buffer.
class GuardedStream final : public httplib::Stream {
 public:
  enum class Head { complete, closed, timed_out, line_too_long, too_large };

  GuardedStream(socket_t sock, milliseconds read_timeout, milliseconds write_timeout,
                const std::atomic<socket_t>& listener)
      : sock_(sock),
        read_timeout_(read_timeout),
        write_timeout_(write_timeout),
        listener_(listener) {}

  void set_deadline(Clock::time_point deadline) { deadline_ = deadline; }

  // Whether a request starts (buffered bytes, or readable) within `idle`.
  bool wait_for_request(milliseconds idle) {
    deadline_ = Clock::time_point::max();
    return pending() > 0 || wait(POLLIN, idle);
  }

  // Reads until the buffer holds a whole request head (request line and headers), within the
  // deadline, and checks its sizes.
  Head read_head(const ConnectionLimits& limits) {
    for (;;) {
      const std::string_view unread(buffer_.data() + pos_, buffer_.size() - pos_);
      const auto line_end = unread.find('\n');
      if ((line_end == std::string_view::npos ? unread.size() : line_end) > limits.max_request_line)
        return Head::line_too_long;
      if (line_end != std::string_view::npos &&
          longest_header_line(unread.substr(0, line_end + 1), unread) > limits.max_header_line)
        return Head::too_large;
      auto head_end = unread.find("\r\n\r\n");
      if (head_end != std::string_view::npos) head_end += 4;
      const auto bare_end = unread.find("\n\n");  // httplib accepts bare LF line ends too
      if (bare_end != std::string_view::npos && bare_end + 2 < head_end) head_end = bare_end + 2;
      if (head_end != std::string_view::npos)
        return head_end > limits.max_head ? Head::too_large : Head::complete;
      if (unread.size() > limits.max_head) return Head::too_large;
      if (!wait(POLLIN, read_timeout_)) return stopping() ? Head::closed : Head::timed_out;
      if (fill() <= 0) return Head::closed;
    }
  }

  // The longest line after the request line (`first`, a prefix of `unread`) up to the end of
  // the head or of what has arrived, counting a line still arriving.
  static std::size_t longest_header_line(std::string_view first, std::string_view unread) {
    std::size_t longest = 0;
    for (std::size_t at = first.size(); at < unread.size();) {
      const auto end = unread.find('\n', at);
      const std::size_t length = (end == std::string_view::npos ? unread.size() : end) - at;
      longest = std::max(longest, length);
      if (end == std::string_view::npos || length <= 1) break;  // still arriving, or head end
      at = end + 1;
    }
    return longest;
  }

  bool is_readable() const override { return pending() > 0 || wait(POLLIN, read_timeout_); }
  bool is_writable() const override { return wait(POLLOUT, write_timeout_); }

  ssize_t read(char* ptr, size_t size) override {
    if (pending() == 0) {
      if (!wait(POLLIN, read_timeout_)) return -1;
      // Large reads (bodies) go straight to the caller; httplib's line reader asks for one
      // byte at a time, which the buffer serves.
      if (size >= kReadChunk) return receive(ptr, size);
      const ssize_t n = fill();
      if (n <= 0) return n;
    }
    const std::size_t n = std::min(size, pending());
    std::memcpy(ptr, buffer_.data() + pos_, n);
    pos_ += n;
    return static_cast<ssize_t>(n);
  }

  ssize_t write(const char* ptr, size_t size) override {
    if (!wait(POLLOUT, write_timeout_)) return -1;
    for (;;) {
      // Non-blocking: a blocking send of a large answer would wait for all of it, past every
      // deadline, as long as the client reads a little now and then.
      const ssize_t n = ::send(sock_, ptr, size, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (!wait(POLLOUT, write_timeout_)) return -1;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      return n;
    }
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    address(::getpeername, ip, port);
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    address(::getsockname, ip, port);
  }
  socket_t socket() const override { return sock_; }

 private:
  std::size_t pending() const { return buffer_.size() - pos_; }
  bool stopping() const { return listener_.load() == INVALID_SOCKET; }

  // Whether `events` happen on the socket within `timeout` and before the deadline, while the
  // server keeps running.
  bool wait(short events, milliseconds timeout) const {
    const auto until = std::min(deadline_, Clock::now() + timeout);
    for (;;) {
      if (stopping()) return false;
      const auto left = std::chrono::duration_cast<milliseconds>(until - Clock::now());
      if (left <= milliseconds::zero()) return false;
      pollfd pfd{sock_, events, 0};
      const int ready = ::poll(&pfd, 1, static_cast<int>(std::min(left, kWaitSlice).count()));
      if (ready > 0) return true;  // includes POLLHUP/POLLERR: the read or write reports it
      if (ready < 0 && errno != EINTR) return false;
    }
  }

  ssize_t receive(char* ptr, std::size_t size) {
    for (;;) {
      const ssize_t n = ::recv(sock_, ptr, size, 0);
      if (n < 0 && errno == EINTR) continue;
      return n;
    }
  }

  // Appends what the socket has (it is readable) to the buffer, dropping what was consumed.
  ssize_t fill() {
    buffer_.erase(0, pos_);
    pos_ = 0;
    char chunk[kReadChunk];
    const ssize_t n = receive(chunk, sizeof chunk);
    if (n > 0) buffer_.append(chunk, static_cast<std::size_t>(n));
    return n;
  }

  template <class GetName>
  void address(GetName get_name, std::string& ip, int& port) const {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    ip.clear();
    port = 0;
    if (get_name(sock_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return;
    char host[NI_MAXHOST];
    char service[NI_MAXSERV];
    if (::getnameinfo(reinterpret_cast<sockaddr*>(&addr), len, host, sizeof host, service,
                      sizeof service, NI_NUMERICHOST | NI_NUMERICSERV) != 0)
      return;
    ip = host;
    port = std::atoi(service);
  }

  socket_t sock_;
  milliseconds read_timeout_;
  milliseconds write_timeout_;
  const std::atomic<socket_t>& listener_;
  Clock::time_point deadline_ = Clock::time_point::max();
  std::string buffer_;
  std::size_t pos_ = 0;  // bytes of buffer_ already handed to httplib
};

}  // namespace

GuardedServer::GuardedServer(ConnectionLimits limits, ErrorBody error_body)
    : limits_(limits), error_body_(std::move(error_body)) {
  new_task_queue = [max = limits_.max_connections]() -> httplib::TaskQueue* {
    return new ConnectionPool(max);  // httplib takes ownership (unique_ptr) of its task queue
  };
}

bool GuardedServer::widen_listen_backlog(int backlog) {
  const socket_t sock = svr_sock_.load();
  return sock != INVALID_SOCKET && ::listen(sock, backlog) == 0;
}

bool GuardedServer::process_and_close_socket(socket_t sock) {
  if (tl_over_capacity) {
    reply_and_close(sock, 503, "Service Unavailable", "too many connections, try again later");
    return false;
  }
  GuardedStream stream(sock, to_ms(read_timeout_sec_, read_timeout_usec_),
                       to_ms(write_timeout_sec_, write_timeout_usec_), svr_sock_);
  const std::size_t max_requests = std::max<std::size_t>(keep_alive_max_count_, 1);
  bool ok = false;
  for (std::size_t served = 0; served < max_requests; ++served) {
    const milliseconds idle = served == 0 ? to_ms(read_timeout_sec_, read_timeout_usec_)
                                          : to_ms(keep_alive_timeout_sec_, 0);
    if (!stream.wait_for_request(idle)) break;
    const auto started = Clock::now();
    stream.set_deadline(started + limits_.head_deadline);
    switch (stream.read_head(limits_)) {
      case GuardedStream::Head::complete:
        break;
      case GuardedStream::Head::closed:
        reply_and_close(sock, 0, {}, {});
        return false;
      case GuardedStream::Head::timed_out:
        reply_and_close(sock, 408, "Request Timeout", "the request head did not arrive in time");
        return false;
      case GuardedStream::Head::line_too_long:
        reply_and_close(sock, 414, "URI Too Long",
                        "the request line is longer than " +
                            std::to_string(limits_.max_request_line) + " bytes");
        return false;
      case GuardedStream::Head::too_large:
        reply_and_close(
            sock, 431, "Request Header Fields Too Large",
            "the request headers are larger than " + std::to_string(limits_.max_head) + " bytes");
        return false;
    }
    stream.set_deadline(started + limits_.request_deadline);
    bool closed = false;
    ok = process_request(stream, served + 1 == max_requests, closed, nullptr);
    if (!ok || closed) break;
  }
  reply_and_close(sock, 0, {}, {});
  return ok;
}

// Sends a short error reply (status 0: none) without blocking, then closes the connection,
// first reading briefly what the client still sends so that the reply is not lost to a reset.
void GuardedServer::reply_and_close(socket_t sock, int status, std::string_view reason,
                                    std::string_view message) const {
  if (status != 0) {
    const std::string body =
        error_body_ ? error_body_(status, message) : std::string(message) + "\n";
    const std::string type = error_body_ ? "application/json" : "text/plain";
    const std::string reply = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) +
                              "\r\nContent-Type: " + type +
                              "\r\nContent-Length: " + std::to_string(body.size()) +
                              "\r\nConnection: close\r\n\r\n" + body;
    (void)::send(sock, reply.data(), reply.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    ::shutdown(sock, SHUT_WR);
    if (!tl_over_capacity) {
      const auto until = Clock::now() + kLingerTime;
      std::size_t drained = 0;
      char sink[kReadChunk];
      while (drained < kLingerBytes && Clock::now() < until) {
        pollfd pfd{sock, POLLIN, 0};
        if (::poll(&pfd, 1, static_cast<int>(kWaitSlice.count())) <= 0) continue;
        const ssize_t n = ::recv(sock, sink, sizeof sink, 0);
        if (n <= 0) break;
        drained += static_cast<std::size_t>(n);
      }
    }
  }
  ::shutdown(sock, SHUT_RDWR);
  ::close(sock);
}

}  // namespace vigil

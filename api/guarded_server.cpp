#include "api/guarded_server.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace vigil {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Waits are cut into slices this long so that a stopping server is noticed quickly.
constexpr milliseconds kWaitSlice{100};
// How often the event loop looks for connections past their timeouts.
constexpr milliseconds kSweepInterval{50};
// After an error reply the guard reads (and drops) what the client still sends, at most this
// long and this much, so that closing does not reset the connection before the reply is read.
constexpr milliseconds kLingerTime{500};
constexpr std::size_t kLingerBytes = 256 * 1024;
constexpr std::size_t kReadChunk = 4096;
// Connections accepted per wake-up of the loop, so that a flood of connects does not keep it
// from reading the connections it has.
constexpr int kAcceptBurst = 64;
constexpr int kMaxEvents = 256;
// How long a worker waits for a keep-alive client's next request before handing the connection
// back to the loop: about a loopback or LAN round trip.
constexpr std::chrono::microseconds kWorkerGrace{2000};

milliseconds to_ms(time_t sec, time_t usec) {
  return milliseconds(static_cast<std::int64_t>(sec) * 1000 + usec / 1000);
}

void close_now(int fd) {
  ::shutdown(fd, SHUT_RDWR);
  ::close(fd);
}

// What the bytes received so far make of a request head.
enum class Head { incomplete, complete, line_too_long, too_large };

// The longest line after the request line (`first`, a prefix of `unread`) up to the end of the
// head or of what has arrived, counting a line still arriving.
std::size_t longest_header_line(std::string_view first, std::string_view unread) {
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

Head classify_head(std::string_view unread, const ConnectionLimits& limits) {
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
  return unread.size() > limits.max_head ? Head::too_large : Head::incomplete;
}

// A client address as the per-address cap counts it: an IPv4 address (also when mapped into
// IPv6), or the /64 of an IPv6 one, since a single IPv6 client usually holds a whole /64.
struct Address {
  std::array<unsigned char, 17> bytes{};  // [16]: 4 or 6
  bool operator==(const Address&) const = default;
};

struct AddressHash {
  std::size_t operator()(const Address& a) const noexcept {
    std::uint64_t h = 1469598103934665603ull;  // FNV-1a
    for (unsigned char b : a.bytes) h = (h ^ b) * 1099511628211ull;
    return static_cast<std::size_t>(h);
  }
};

Address address_of(const sockaddr_storage& addr) {
  Address key;
  if (addr.ss_family == AF_INET) {
    const auto& v4 = reinterpret_cast<const sockaddr_in&>(addr);
    std::memcpy(key.bytes.data(), &v4.sin_addr, 4);
    key.bytes[16] = 4;
  } else if (addr.ss_family == AF_INET6) {
    const auto& v6 = reinterpret_cast<const sockaddr_in6&>(addr);
    if (IN6_IS_ADDR_V4MAPPED(&v6.sin6_addr)) {
      std::memcpy(key.bytes.data(), v6.sin6_addr.s6_addr + 12, 4);
      key.bytes[16] = 4;
    } else {
      std::memcpy(key.bytes.data(), v6.sin6_addr.s6_addr, 8);
      key.bytes[16] = 6;
    }
  }
  return key;
}

// Where a connection held by the event loop is. The order is the order of eviction: a
// connection being closed after an error reply first, then one that has sent nothing since it
// was accepted, then one that has sent nothing of its next request, then one whose head is
// still arriving.
enum class State { lingering = 0, silent = 1, idle = 2, reading = 3 };

// The eviction order: state first, then age in that state (a sequence number, so unique).
using OrderKey = std::pair<int, std::uint64_t>;

struct Conn {
  int fd = -1;
  Address address;
  State state = State::silent;
  std::uint64_t seq = 0;        // when it entered its state, as an order
  Clock::time_point since;      // when it entered its state (reading: the head's first byte)
  Clock::time_point last_read;  // reading: when bytes last arrived
  std::size_t served = 0;       // requests answered on it
  std::size_t lingered = 0;     // lingering: bytes dropped
  std::string buffer;           // received, not yet handed to httplib

  OrderKey key() const { return {static_cast<int>(state), seq}; }
};

// One thread per connection in a request, started on demand up to `max` and then reused. Only
// the event-loop thread calls run() and shutdown().
class WorkerPool {
 public:
  using Serve = std::function<void(Conn)>;

  WorkerPool(std::size_t max, Serve serve)
      : max_(std::max<std::size_t>(max, 1)), serve_(std::move(serve)) {}
  ~WorkerPool() { shutdown(); }
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Moves `conn` to a worker; false (and `conn` untouched) when no worker can be had.
  bool run(Conn& conn) {
    std::unique_lock lock(mutex_);
    if (stopping_ || busy_ >= max_) return false;
    if (threads_.size() <= busy_) {
      try {
        threads_.emplace_back([this] { work(); });
      } catch (const std::system_error&) {
        return false;  // no thread to be had (a process or memory limit)
      }
    }
    ++busy_;
    jobs_.push_back(std::move(conn));
    lock.unlock();
    wake_.notify_one();
    return true;
  }

  // Runs the jobs already queued, then joins every worker.
  void shutdown() {
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
      std::optional<Conn> job;
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
        if (jobs_.empty()) return;  // stopping, and every queued connection was handled
        job.emplace(std::move(jobs_.front()));
        jobs_.pop_front();
      }
      serve_(std::move(*job));
      std::lock_guard lock(mutex_);
      --busy_;
    }
  }

  const std::size_t max_;
  const Serve serve_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Conn> jobs_;
  std::vector<std::thread> threads_;  // only the event-loop thread touches it
  std::size_t busy_ = 0;              // connections queued or being served
  bool stopping_ = false;
};

// httplib's view of one connection in a request, with a deadline over every wait and the
// request head already in a buffer.
class GuardedStream final : public httplib::Stream {
 public:
  GuardedStream(socket_t sock, milliseconds read_timeout, milliseconds write_timeout,
                const std::atomic<socket_t>& listener, std::string buffer)
      : sock_(sock),
        read_timeout_(read_timeout),
        write_timeout_(write_timeout),
        listener_(listener),
        buffer_(std::move(buffer)) {}

  void set_deadline(Clock::time_point deadline) { deadline_ = deadline; }

  // The bytes received and not read by httplib (a pipelined next request).
  std::string take_unread() {
    buffer_.erase(0, pos_);
    pos_ = 0;
    return std::move(buffer_);
  }

  bool is_readable() const override { return pending() > 0 || wait(POLLIN, read_timeout_); }
  bool is_writable() const override { return wait(POLLOUT, write_timeout_); }

  ssize_t read(char* ptr, size_t size) override {
    if (pending() == 0) {
      // Large reads (bodies) go straight to the caller; httplib's line reader asks for one
      // byte at a time, which the buffer serves.
      if (size >= kReadChunk) return receive(ptr, size);
      buffer_.erase(0, pos_);
      pos_ = 0;
      char chunk[kReadChunk];
      const ssize_t n = receive(chunk, sizeof chunk);
      if (n <= 0) return n;
      buffer_.append(chunk, static_cast<std::size_t>(n));
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

  // One read of what the socket has, waiting for it within the timeouts (the socket is
  // non-blocking); -1 when nothing came in time.
  ssize_t receive(char* ptr, std::size_t size) {
    for (;;) {
      const ssize_t n = ::recv(sock_, ptr, size, MSG_DONTWAIT);
      if (n >= 0) return n;
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
      if (!wait(POLLIN, read_timeout_)) return -1;
    }
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

// The event loop: owns the listening socket and every connection not in a request. All of it
// runs on the thread in listen_after_bind, except serve(), which runs on the workers and hands
// each connection back through `returned_` and the server's wake descriptor.
class GuardedServer::Loop {
 public:
  Loop(GuardedServer& server, int listener)
      : server_(server),
        limits_(server.limits_),
        listener_(listener),
        read_timeout_(to_ms(server.read_timeout_sec_, server.read_timeout_usec_)),
        keep_alive_timeout_(to_ms(server.keep_alive_timeout_sec_, 0)),
        max_requests_(std::max<std::size_t>(server.keep_alive_max_count_, 1)),
        max_connections_(std::max<std::size_t>(limits_.max_connections, 1)),
        max_per_address_(std::max<std::size_t>(limits_.max_connections_per_address, 1)),
        first_request_grace_(std::max(limits_.first_request_grace, milliseconds::zero())),
        descriptor_reserve_(limits_.descriptor_reserve),
        connection_cap_(max_connections_),
        pool_(max_connections_, [this](Conn conn) { serve(std::move(conn)); }) {
    epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
    // Kept open so that, when the process has no descriptor left, one can be freed to accept
    // and close a connection rather than leave it spinning in the backlog.
    spare_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    const int flags = ::fcntl(listener_, F_GETFL);
    ready_ = epoll_ >= 0 && flags >= 0 && ::fcntl(listener_, F_SETFL, flags | O_NONBLOCK) == 0 &&
             watch(listener_) && watch(server_.wake_fd_);
    update_connection_cap();
  }

  ~Loop() {
    pool_.shutdown();  // requests in progress end soon: their waits see the stop
    take_returned();   // closes what the workers gave back
    for (auto& [fd, conn] : conns_) close_now(fd);
    if (spare_ >= 0) ::close(spare_);
    if (epoll_ >= 0) ::close(epoll_);
  }

  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  bool ready() const { return ready_; }

  // Until stop(), or an error of epoll itself.
  void run() {
    auto next_sweep = Clock::now() + kSweepInterval;
    std::array<epoll_event, kMaxEvents> events{};
    while (!stopping()) {
      // While accepting waits for a grace to end (a few milliseconds), the loop does not sleep:
      // on a busy machine waking up again would take longer than the wait itself.
      const auto left = std::chrono::duration_cast<milliseconds>(next_sweep - Clock::now());
      const int timeout =
          accepting_
              ? static_cast<int>(std::clamp(left, milliseconds::zero(), kSweepInterval).count())
              : 0;
      const int n = ::epoll_wait(epoll_, events.data(), kMaxEvents, timeout);
      if (n < 0 && errno != EINTR) return;
      for (int i = 0; i < n; ++i) {
        const int fd = events[static_cast<std::size_t>(i)].data.fd;
        if (fd == listener_) {
          accept_some();
        } else if (fd == server_.wake_fd_) {
          std::uint64_t count = 0;
          (void)!::read(server_.wake_fd_, &count, sizeof count);
          take_returned();
        } else {
          // An event may be stale (its connection closed earlier in this batch, the number
          // even reused): then this is one read attempt too many, which finds nothing.
          on_input(fd);
        }
      }
      const auto now = Clock::now();
      if (!accepting_ && now >= resume_at_) resume_accepting();
      if (now >= next_sweep) {
        sweep(now);
        next_sweep = now + kSweepInterval;
      }
    }
  }

 private:
  struct AddressSlots {
    std::size_t held = 0;          // connections from it, in the loop or in a request
    std::set<OrderKey> evictable;  // those in the loop
  };
  struct Returned {
    Conn conn;
    bool closed = false;  // the worker closes it; only its address is still counted
  };

  bool stopping() const { return server_.svr_sock_.load() == INVALID_SOCKET; }

  bool watch(int fd) {
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.fd = fd;
    return ::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &event) == 0;
  }

  // New connections wait in the listen backlog (which costs the process nothing) until
  // `until`, or until a connection held is gone.
  void pause_accepting(Clock::time_point until) {
    resume_at_ = until;
    if (!accepting_) return;
    epoll_event event{};
    event.data.fd = listener_;
    accepting_ = ::epoll_ctl(epoll_, EPOLL_CTL_MOD, listener_, &event) != 0;
  }

  void resume_accepting() {
    if (accepting_) return;
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.fd = listener_;
    accepting_ = ::epoll_ctl(epoll_, EPOLL_CTL_MOD, listener_, &event) == 0;
  }

  // --- on workers ---

  void serve(Conn conn) {
    bool more = true;
    while (more) {
      const bool last = conn.served + 1 >= max_requests_;
      more = server_.serve_request(conn.fd, conn.buffer, conn.since, last);
      ++conn.served;
      // Under pressure a connection between requests belongs in the loop, where it can be
      // evicted, not on a worker.
      if (!more || stopping() || crowded_.load() || !next_head_arrives(conn)) break;
    }
    const int fd = conn.fd;
    {
      std::lock_guard lock(returned_mutex_);
      returned_.push_back(Returned{std::move(conn), !more});
    }
    // Closed after it is queued: a client that saw the close and connects again finds its
    // slot free (admit takes the queue first).
    if (!more) close_now(fd);
    server_.wake();
  }

  // Whether the next request's whole head is in `conn`'s buffer within kWorkerGrace: a
  // keep-alive client that sends it at once is served on this worker, without a trip through
  // the loop (which halves the rate of small requests). Otherwise the loop takes the
  // connection with what arrived, and applies the limits to it.
  bool next_head_arrives(Conn& conn) const {
    const auto until = Clock::now() + kWorkerGrace;
    for (;;) {
      if (!conn.buffer.empty()) {
        const Head head = classify_head(conn.buffer, limits_);
        if (head == Head::complete) conn.since = Clock::now();
        if (head != Head::incomplete) return head == Head::complete;
      }
      const auto left = std::chrono::duration_cast<std::chrono::microseconds>(until - Clock::now());
      if (left <= std::chrono::microseconds::zero()) return false;
      pollfd pfd{conn.fd, POLLIN, 0};
      const timespec wait{0, static_cast<long>(left.count()) * 1000};
      if (::ppoll(&pfd, 1, &wait, nullptr) <= 0) return false;
      char chunk[kReadChunk];
      const ssize_t n = ::recv(conn.fd, chunk, sizeof chunk, MSG_DONTWAIT);
      if (n <= 0) return false;  // closed, or an error: the loop sees it again and closes
      conn.buffer.append(chunk, static_cast<std::size_t>(n));
    }
  }

  // --- on the loop thread ---

  void take_returned() {
    std::vector<Returned> batch;
    {
      std::lock_guard lock(returned_mutex_);
      batch.swap(returned_);
    }
    for (auto& back : batch) {
      if (back.closed) {
        release(back.conn.address);
      } else if (stopping()) {
        close_now(back.conn.fd);
        release(back.conn.address);
      } else {
        adopt(std::move(back.conn));
      }
    }
  }

  void accept_some() {
    for (int i = 0; i < kAcceptBurst; ++i) {
      // At the cap a newcomer needs a connection to evict; when the only ones are still in
      // their grace, it waits in the backlog rather than be accepted to be refused.
      if (held_ >= connection_cap_) take_returned();
      if (held_ >= connection_cap_ && must_wait_for_room()) return;
      sockaddr_storage addr{};
      socklen_t len = sizeof addr;
      const int fd = ::accept4(listener_, reinterpret_cast<sockaddr*>(&addr), &len,
                               SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd >= 0) {
        admit(fd, address_of(addr));
        continue;
      }
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE) {
        // Out of descriptors, and so is the rest of the process.
        give_back_the_reserve();
        shed_past_the_cap();
        if (must_wait_for_room()) return;
        if (evict_oldest(nullptr)) continue;
        shed_one();
      }
      return;  // EAGAIN: none left; anything else: the listener is being closed
    }
  }

  // Out of descriptors with nothing to evict: accepts one connection on the spare descriptor
  // and closes it, so the backlog drains instead of waking the loop for ever.
  void shed_one() {
    if (spare_ < 0) return;
    ::close(spare_);
    const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0) ::close(fd);
    spare_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  }

  void admit(int fd, const Address& address) {
    if (held_ >= connection_cap_ || held_by(address) >= max_per_address_) take_returned();
    if (held_by(address) >= max_per_address_ && !evict_oldest(&address)) {
      refuse(fd);
      return;
    }
    if (held_ >= connection_cap_ && !evict_oldest(nullptr)) {
      refuse(fd);
      return;
    }
    ++addresses_[address].held;
    ++held_;
    crowded_ = held_ * 2 > max_connections_;
    Conn conn;
    conn.fd = fd;
    conn.address = address;
    adopt(std::move(conn));
  }

  std::size_t held_by(const Address& address) const {
    const auto slots = addresses_.find(address);
    return slots == addresses_.end() ? 0 : slots->second.held;
  }

  // Takes a connection into the loop (new, or back from a request), already counted as held.
  void adopt(Conn conn) {
    const int fd = conn.fd;
    if (!watch(fd)) {
      close_now(fd);
      release(conn.address);
      return;
    }
    const bool buffered = !conn.buffer.empty();
    conn.state = buffered ? State::reading : conn.served == 0 ? State::silent : State::idle;
    conn.seq = next_seq_++;
    conn.since = conn.last_read = Clock::now();
    addresses_[conn.address].evictable.insert(conn.key());
    order_.emplace(conn.key(), fd);
    conns_.insert_or_assign(fd, std::move(conn));
    // The next request may be buffered already (pipelined), or waiting in the socket.
    if (buffered && !examine(fd)) return;
    on_input(fd);
  }

  // Reads what the connection has; acts on a complete, oversized or closed head.
  void on_input(int fd) {
    const auto it = conns_.find(fd);
    if (it == conns_.end()) return;
    Conn& conn = it->second;
    char chunk[kReadChunk];
    for (;;) {
      const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      if (n <= 0) {
        close_conn(fd);  // closed by the client, or an error: nothing to answer
        return;
      }
      if (conn.state == State::lingering) {
        conn.lingered += static_cast<std::size_t>(n);
        if (conn.lingered >= kLingerBytes) {
          close_conn(fd);
          return;
        }
        continue;
      }
      if (conn.state == State::silent || conn.state == State::idle) move_to(conn, State::reading);
      conn.last_read = Clock::now();
      conn.buffer.append(chunk, static_cast<std::size_t>(n));
      if (!examine(fd)) return;
    }
  }

  // Acts on the head in the buffer of a reading connection; true while it stays reading.
  bool examine(int fd) {
    Conn& conn = conns_.at(fd);
    switch (classify_head(conn.buffer, limits_)) {
      case Head::incomplete:
        return true;
      case Head::complete:
        hand_off(fd);
        return false;
      case Head::line_too_long:
        reject(conn, 414, "URI Too Long",
               "the request line is longer than " + std::to_string(limits_.max_request_line) +
                   " bytes");
        return false;
      case Head::too_large:
        reject(
            conn, 431, "Request Header Fields Too Large",
            "the request headers are larger than " + std::to_string(limits_.max_head) + " bytes");
        return false;
    }
    return false;
  }

  void hand_off(int fd) {
    const auto it = conns_.find(fd);
    Conn& conn = it->second;
    forget_order(conn);
    ::epoll_ctl(epoll_, EPOLL_CTL_DEL, fd, nullptr);
    if (pool_.run(conn)) {
      conns_.erase(it);
      return;
    }
    // No worker to be had: refused like a connection past the cap.
    const Address address = conn.address;
    conns_.erase(it);
    refuse(fd);
    release(address);
  }

  // An error reply, then the connection lingers (its input dropped) until the client closes
  // it or kLingerTime passes, so that closing does not reset the reply away.
  void reject(Conn& conn, int status, std::string_view reason, const std::string& message) {
    server_.send_error(conn.fd, status, reason, message);
    ::shutdown(conn.fd, SHUT_WR);
    conn.buffer.clear();
    conn.buffer.shrink_to_fit();
    conn.lingered = 0;
    move_to(conn, State::lingering);
  }

  // A connection that gets no slot: 503 without waiting, and closed.
  void refuse(int fd) {
    server_.send_error(fd, 503, "Service Unavailable", "too many connections, try again later");
    ::shutdown(fd, SHUT_WR);
    close_now(fd);
  }

  // Whether the connection to evict for a newcomer (the first in the eviction order) is one
  // that has sent nothing since it was accepted and is still within first_request_grace; then
  // accepting pauses until its grace ends. Without the grace, connections that never send,
  // reconnecting as fast as they are cut, would cycle through every slot faster than a real
  // client's request follows its connect (a scheduling delay, a round trip), and the real
  // client would be closed with the idle ones.
  bool must_wait_for_room() {
    if (order_.empty()) return false;
    const Conn& oldest = conns_.at(order_.begin()->second);
    if (oldest.state != State::silent) return false;
    const auto grace_ends = oldest.since + first_request_grace_;
    if (Clock::now() >= grace_ends) return false;
    pause_accepting(grace_ends);
    return true;
  }

  // How many connections the loop may hold: max_connections, or fewer when more would leave
  // the rest of the process (the store's connections, the probes' sockets) fewer than
  // descriptor_reserve descriptors under its soft limit on open files. Read at each sweep: the
  // limit can be changed from outside, and the others open and close descriptors as they go.
  void update_connection_cap() {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) {
      connection_cap_ = max_connections_;
      return;
    }
    std::size_t open = 0;
    std::error_code error;
    for (std::filesystem::directory_iterator it("/proc/self/fd", error), end; !error && it != end;
         it.increment(error))
      ++open;
    if (error) {  // not even a descriptor to read the directory: out of them, as on EMFILE
      give_back_the_reserve();
      return;
    }
    const auto soft = static_cast<std::size_t>(limit.rlim_cur);
    const std::size_t others = (open > held_ ? open - held_ : 0) + descriptor_reserve_;
    connection_cap_ = std::min(max_connections_, soft > others ? soft - others : 0);
  }

  // Out of descriptors: the cap comes down to what is held less the reserve, until the next
  // sweep counts again.
  void give_back_the_reserve() {
    connection_cap_ =
        std::min(connection_cap_, held_ > descriptor_reserve_ ? held_ - descriptor_reserve_ : 0);
  }

  // Past a lowered cap: the oldest connections go, as they would for newcomers.
  void shed_past_the_cap() {
    while (held_ > connection_cap_ && !must_wait_for_room() && evict_oldest(nullptr)) {
    }
  }

  // Closes the oldest connection in the loop (of `address` when given), by the eviction
  // order; false when there is none. The connections of one address at its cap are evicted
  // regardless of their grace: an address that floods only loses its own connections.
  bool evict_oldest(const Address* address) {
    OrderKey key;
    if (address) {
      const auto slots = addresses_.find(*address);
      if (slots == addresses_.end() || slots->second.evictable.empty()) return false;
      key = *slots->second.evictable.begin();
    } else {
      if (order_.empty()) return false;
      key = order_.begin()->first;
    }
    const int fd = order_.at(key);
    Conn& conn = conns_.at(fd);
    if (conn.state == State::reading)  // a head had started: say why it is cut
      server_.send_error(fd, 408, "Request Timeout", "the request head did not arrive in time");
    close_conn(fd);
    return true;
  }

  void sweep(Clock::time_point now) {
    update_connection_cap();
    shed_past_the_cap();
    const double pressure = this->pressure();
    const auto first_idle = shrink(read_timeout_, pressure);
    const auto next_idle = shrink(keep_alive_timeout_, pressure);
    const auto head = shrink(limits_.head_deadline, pressure);
    const auto stall = shrink(read_timeout_, pressure);
    std::vector<int> expired;
    std::vector<int> late;
    for (const auto& [fd, conn] : conns_) {
      switch (conn.state) {
        case State::silent:
        case State::idle:
          if (now - conn.since >= (conn.served == 0 ? first_idle : next_idle))
            expired.push_back(fd);
          break;
        case State::reading:
          if (now - conn.since >= head || now - conn.last_read >= stall) late.push_back(fd);
          break;
        case State::lingering:
          if (now - conn.since >= kLingerTime) expired.push_back(fd);
          break;
      }
    }
    for (const int fd : expired) close_conn(fd);
    for (const int fd : late)
      reject(conns_.at(fd), 408, "Request Timeout", "the request head did not arrive in time");
  }

  // 0 up to half of max_connections held, rising linearly to 1 at the cap.
  double pressure() const {
    const double half = static_cast<double>(max_connections_) / 2;
    const double held = static_cast<double>(held_);
    if (held <= half) return 0;
    return std::min(1.0, (held - half) / half);
  }

  milliseconds shrink(milliseconds timeout, double pressure) const {
    const auto floor = limits_.pressure_timeout;
    if (timeout <= floor) return timeout;
    return timeout - std::chrono::duration_cast<milliseconds>((timeout - floor) * pressure);
  }

  void move_to(Conn& conn, State state) {
    forget_order(conn);
    conn.state = state;
    conn.seq = next_seq_++;
    conn.since = Clock::now();
    addresses_[conn.address].evictable.insert(conn.key());
    order_.emplace(conn.key(), conn.fd);
  }

  void forget_order(const Conn& conn) {
    order_.erase(conn.key());
    const auto slots = addresses_.find(conn.address);
    if (slots != addresses_.end()) slots->second.evictable.erase(conn.key());
  }

  void close_conn(int fd) {
    const auto it = conns_.find(fd);
    if (it == conns_.end()) return;
    forget_order(it->second);
    const Address address = it->second.address;
    conns_.erase(it);
    close_now(fd);  // also takes it out of the epoll set
    release(address);
  }

  // One connection of `address` is gone.
  void release(const Address& address) {
    if (held_ > 0) --held_;
    crowded_ = held_ * 2 > max_connections_;
    resume_accepting();  // a slot, and a descriptor, are free
    const auto slots = addresses_.find(address);
    if (slots == addresses_.end()) return;
    if (slots->second.held > 0) --slots->second.held;
    if (slots->second.held == 0) addresses_.erase(slots);
  }

  GuardedServer& server_;
  const ConnectionLimits& limits_;
  const int listener_;
  const milliseconds read_timeout_;
  const milliseconds keep_alive_timeout_;
  const std::size_t max_requests_;
  const std::size_t max_connections_;
  const std::size_t max_per_address_;
  const milliseconds first_request_grace_;
  const std::size_t descriptor_reserve_;
  std::size_t connection_cap_;  // max_connections_, or fewer near the descriptor limit
  int epoll_ = -1;
  int spare_ = -1;
  bool ready_ = false;
  bool accepting_ = true;                // the listener is in the epoll set
  Clock::time_point resume_at_;          // when accepting resumes, while paused
  std::unordered_map<int, Conn> conns_;  // in the loop, by descriptor
  std::map<OrderKey, int> order_;        // in the loop, in eviction order
  std::unordered_map<Address, AddressSlots, AddressHash> addresses_;
  std::size_t held_ = 0;              // in the loop or in a request
  std::atomic<bool> crowded_{false};  // more than half of max_connections held
  std::uint64_t next_seq_ = 0;
  std::mutex returned_mutex_;
  std::vector<Returned> returned_;  // guarded by returned_mutex_
  WorkerPool pool_;                 // last: its workers use everything above
};

GuardedServer::GuardedServer(ConnectionLimits limits, ErrorBody error_body)
    : limits_(limits), error_body_(std::move(error_body)) {
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

GuardedServer::~GuardedServer() {
  stop();
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

bool GuardedServer::widen_listen_backlog(int backlog) {
  const socket_t sock = svr_sock_.load();
  return sock != INVALID_SOCKET && ::listen(sock, backlog) == 0;
}

bool GuardedServer::listen_after_bind() {
  socket_t listener = INVALID_SOCKET;
  {
    std::lock_guard lock(lifecycle_mutex_);
    listener = svr_sock_.load();
    if (stop_requested_ || loop_started_ || listener == INVALID_SOCKET || wake_fd_ < 0)
      return false;
    loop_started_ = true;
  }
  bool ok = false;
  {
    Loop loop(*this, listener);
    ok = loop.ready();
    if (ok) {
      running_ = true;
      loop.run();
      running_ = false;
    }
    svr_sock_.store(INVALID_SOCKET);  // also when the loop failed: workers must stop
  }
  ::close(listener);
  return ok;
}

bool GuardedServer::listen(const std::string& host, int port, int socket_flags) {
  return bind_to_port(host, port, socket_flags) && listen_after_bind();
}

void GuardedServer::stop() {
  {
    std::lock_guard lock(lifecycle_mutex_);
    stop_requested_ = true;
    const socket_t sock = svr_sock_.exchange(INVALID_SOCKET);
    // Never served: no loop will close it.
    if (sock != INVALID_SOCKET && !loop_started_) ::close(sock);
  }
  wake();
}

void GuardedServer::wake() const {
  const std::uint64_t one = 1;
  if (wake_fd_ >= 0) (void)!::write(wake_fd_, &one, sizeof one);
}

bool GuardedServer::process_and_close_socket(socket_t sock) {
  close_now(sock);
  return false;
}

bool GuardedServer::serve_request(socket_t sock, std::string& buffer,
                                  std::chrono::steady_clock::time_point started, bool last) {
  GuardedStream stream(sock, to_ms(read_timeout_sec_, read_timeout_usec_),
                       to_ms(write_timeout_sec_, write_timeout_usec_), svr_sock_,
                       std::move(buffer));
  stream.set_deadline(started + limits_.request_deadline);
  bool closed = false;
  const bool ok = process_request(stream, last, closed, nullptr);
  buffer = stream.take_unread();
  return ok && !closed && !last;
}

// A short error reply, written without blocking (it fits any socket buffer).
void GuardedServer::send_error(socket_t sock, int status, std::string_view reason,
                               std::string_view message) const {
  const std::string body = error_body_ ? error_body_(status, message) : std::string(message) + "\n";
  const std::string type = error_body_ ? "application/json" : "text/plain";
  const std::string reply = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) +
                            "\r\nContent-Type: " + type +
                            "\r\nContent-Length: " + std::to_string(body.size()) +
                            "\r\nConnection: close\r\n\r\n" + body;
  (void)::send(sock, reply.data(), reply.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

}  // namespace vigil

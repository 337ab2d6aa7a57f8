// GuardedServer: an httplib::Server that hostile clients cannot take down. Debian ships
// cpp-httplib 0.11.4 as a compiled library, so its header macros change nothing; it answers a
// long URL with 414 but takes any number of headers, has no deadline for a request as a whole
// (a client sending a byte a second holds a thread for ever), gives every connection a thread
// from a pool of 8, idle or not. GuardedServer replaces its accept loop and its pool, the way
// nginx and HAProxy are built:
//   - one thread (the one that calls listen_after_bind) owns the listening socket and, with
//     epoll, every connection that has not yet sent a whole request head: idle new ones, idle
//     keep-alive ones between requests, and heads still arriving. Such a connection costs a
//     file descriptor and a small buffer, never a thread;
//   - the request line and headers are read there: a request line over `max_request_line`
//     bytes is 414, a header line over `max_header_line` or a head over `max_head` bytes is 431
//     (then the connection is closed), and a head that is not complete within `head_deadline`
//     of its first byte, or that stalls for the read timeout, is 408;
//   - only a connection with a complete head goes to a worker thread (started on demand, then
//     reused) for httplib's routing and handlers; everything for one request (head, body,
//     response) must be done within `request_deadline` of the head's first byte, and each read
//     or write must make progress within the server's read/write timeouts. After a keep-alive
//     answer the connection goes back to the event loop;
//   - an idle connection is closed after the read timeout (before its first request) or the
//     keep-alive timeout (between requests); keep-alive is limited by set_keep_alive_max_count;
//   - at most `max_connections` connections are held, and at most
//     `max_connections_per_address` from one client address (IPv4 address, IPv6 /64). A new
//     connection past either cap is not refused while an older connection could make room:
//     the oldest one that is not in a request is closed for it (of the same address when that
//     address is at its cap): one that has sent nothing since it was accepted first, then one
//     idle between requests, both silently, then one whose head is still arriving, with a
//     408. A connection that has sent nothing is not closed for a newcomer within
//     `first_request_grace` of its accept (the cap of one address excepted): the newcomer
//     waits in the listen backlog until then. Only when every slot is a request in progress
//     is the new one answered 503 and closed. Near the process's limit on open files the cap
//     is lowered to leave `descriptor_reserve` descriptors to the rest of the process
//     (checked every 50 ms); if it runs out all the same, the same eviction makes room;
//   - under pressure (more than half of `max_connections` held) the idle timeouts and the head
//     deadline shrink, linearly with the number held, down to `pressure_timeout` at the cap.
// So connections that send nothing, or trickle a head, cannot keep real requests out, however
// many there are and however fast they reconnect.
//
// Use it through GuardedServer (not a httplib::Server reference): listen_after_bind, listen,
// is_running and stop hide httplib's non-virtual ones. Routing, handlers, timeouts and all
// other settings are httplib's. Handlers run on worker threads, several at once.
#pragma once

#include <httplib.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

namespace vigil {

struct ConnectionLimits {
  std::size_t max_request_line = 8192;  // bytes, method and URL and version
  std::size_t max_header_line = 8192;   // bytes, one header (httplib's own limit, else 400)
  std::size_t max_head = 16 * 1024;     // bytes, request line and all headers
  std::chrono::milliseconds head_deadline{10'000};
  std::chrono::milliseconds request_deadline{60'000};
  std::size_t max_connections = 512;
  std::size_t max_connections_per_address = 256;
  // What idle timeouts and the head deadline shrink to when `max_connections` are held.
  std::chrono::milliseconds pressure_timeout{1'000};
  // How long a connection that has sent nothing since it was accepted is safe from eviction:
  // time for a real client's request to follow its connect. Under a flood of connections that
  // never send, a newcomer waits about (queued connections / slots) times this.
  std::chrono::milliseconds first_request_grace{5};
  // Descriptors left to the rest of the process under its soft limit on open files: near the
  // limit the cap on connections is lowered to keep them free, so that a flood of connections
  // cannot leave the store or the probes without a descriptor.
  std::size_t descriptor_reserve = 8;
};

class GuardedServer : public httplib::Server {
 public:
  // The body of a response written by the guard itself (414, 431, 408, 503); called once per
  // such response, so the API also counts it there. The API passes its JSON error envelope.
  // Called on the event-loop thread only.
  using ErrorBody = std::function<std::string(int status, std::string_view message)>;

  explicit GuardedServer(ConnectionLimits limits = {}, ErrorBody error_body = {});
  ~GuardedServer() override;  // stop(); closes the listening socket if it was never served
  GuardedServer(const GuardedServer&) = delete;
  GuardedServer& operator=(const GuardedServer&) = delete;

  // httplib 0.11.4 listens with a backlog of 5: connections arriving faster than they are
  // accepted get their SYN dropped and retried a second or more later. Call after binding;
  // false when not bound.
  bool widen_listen_backlog(int backlog = SOMAXCONN);

  // Serves the bound socket on the calling thread until stop(); then closes every connection,
  // waits for the requests in progress (cut short: their waits notice the stop) and returns
  // true. False at once when not bound, already stopped, or the event loop cannot be set up.
  // Call once.
  bool listen_after_bind();
  // bind_to_port, then listen_after_bind.
  bool listen(const std::string& host, int port, int socket_flags = 0);
  // Whether listen_after_bind is accepting connections. Any thread.
  bool is_running() const { return running_.load(); }
  // Makes listen_after_bind return soon. Any thread, any number of times.
  void stop();

 private:
  class Loop;  // the event loop (guarded_server.cpp)

  // Only httplib's own listen loop calls this, which GuardedServer never runs: refuses.
  bool process_and_close_socket(socket_t sock) override;

  // On a worker: serves one request whose head is at the start of `buffer`, on `sock`, within
  // `request_deadline` of `started`; `last` makes it the connection's last. Leaves in `buffer`
  // what arrived after the request (a pipelined next one). True when the connection may serve
  // another request.
  bool serve_request(socket_t sock, std::string& buffer,
                     std::chrono::steady_clock::time_point started, bool last);
  // A short error reply (414, 431, 408, 503), without blocking; the caller closes.
  void send_error(socket_t sock, int status, std::string_view reason,
                  std::string_view message) const;
  void wake() const;  // wakes the event loop

  ConnectionLimits limits_;
  ErrorBody error_body_;
  int wake_fd_ = -1;  // eventfd: stop() and workers wake the event loop through it
  std::mutex lifecycle_mutex_;
  bool stop_requested_ = false;  // guarded by lifecycle_mutex_
  bool loop_started_ = false;    // guarded by lifecycle_mutex_
  std::atomic<bool> running_{false};
};

}  // namespace vigil

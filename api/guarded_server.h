// GuardedServer: an httplib::Server that hostile clients cannot take down. Debian ships
// cpp-httplib 0.11.4 as a compiled library, so its header macros change nothing; it answers a
// long URL with 414 but takes any number of headers, has no deadline for a request as a whole
// (a client sending a byte a second holds a thread for ever) and queues connections behind a
// pool of 8 threads. GuardedServer replaces the per-connection loop and the pool:
//   - the request line and headers are read by us first: a request line over
//     `max_request_line` bytes is 414, a header line over `max_header_line` or a head over
//     `max_head` bytes is 431 (then the connection is closed), and a head that is not complete
//     within `head_deadline` of its first byte is 408;
//   - everything for one request (head, body, response) must be done within `request_deadline`;
//     each read or write must make progress within the server's read/write timeouts;
//   - one thread per connection, started on demand up to `max_connections` and then reused;
//     past the cap a new connection gets 503 and is closed at once, so a flood costs bounded
//     memory and threads, and slow clients never queue ahead of fast ones;
//   - an idle connection is closed after the read timeout (first request) or the keep-alive
//     timeout (later ones); keep-alive is limited by set_keep_alive_max_count as in httplib.
// Routing, handlers and all other settings are httplib's.
#pragma once

#include <httplib.h>
#include <sys/socket.h>

#include <chrono>
#include <cstddef>
#include <functional>
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
};

class GuardedServer : public httplib::Server {
 public:
  // The body of a response written by the guard itself (414, 431, 408, 503); called once per
  // such response, so the API also counts it there. The API passes its JSON error envelope.
  using ErrorBody = std::function<std::string(int status, std::string_view message)>;

  explicit GuardedServer(ConnectionLimits limits = {}, ErrorBody error_body = {});

  // httplib 0.11.4 listens with a backlog of 5: connections arriving faster than they are
  // accepted get their SYN dropped and retried a second or more later. Call after binding;
  // false when not bound.
  bool widen_listen_backlog(int backlog = SOMAXCONN);

 private:
  // Called by httplib's listen loop (through its task queue) for every accepted connection.
  bool process_and_close_socket(socket_t sock) override;
  void reply_and_close(socket_t sock, int status, std::string_view reason,
                       std::string_view message) const;

  ConnectionLimits limits_;
  ErrorBody error_body_;
};

}  // namespace vigil

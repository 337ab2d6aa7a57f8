// A raw TCP target for misbehaviour an HTTP library will not produce: a reset in the middle of a
// body, broken chunked encoding, a TLS port that accepts and never speaks. It listens on an
// ephemeral 127.0.0.1 port and runs `behave` for each accepted connection on a thread of its
// own; every wait inside is bounded and ends when the target is destroyed.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace vigil::test {

// One accepted connection, as `behave` sees it.
class RawConnection {
 public:
  RawConnection(int fd, const std::atomic<bool>& stopping) : fd_(fd), stopping_(stopping) {}
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  // Reads until the end of the request head (a blank line), the peer closes, or `timeout`;
  // returns what arrived.
  std::string read_head(std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // Reads until `marker` has arrived, the peer closes, or `timeout`; returns what arrived (a
  // line protocol's request: read_until("\n")).
  std::string read_until(std::string_view marker,
                         std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // Writes all of `bytes`; false when the peer is gone or the target is stopping.
  bool send(std::string_view bytes);
  // Holds the connection silently until the peer closes it, the target stops, or `limit`.
  void wait_for_close(std::chrono::milliseconds limit = std::chrono::seconds(60));
  // Ends the connection in order (what happens after `behave` returns, unless it reset): a
  // half-close, then waiting for the peer to close, so that no unread input turns it into a reset.
  void finish();
  // Closes at once: for a peer that has sent all it will send.
  void close();
  // Closes with SO_LINGER 0, so the peer sees a TCP reset instead of an orderly end.
  void reset();
  bool stopping() const { return stopping_; }
  // The client's address ("127.0.0.2"); empty when the socket has none.
  std::string peer_address() const;

 private:
  int fd_;
  const std::atomic<bool>& stopping_;
};

class RawTarget {
 public:
  using Behaviour = std::function<void(RawConnection&)>;
  enum class Threading {
    per_connection,  // `behave` on a thread of its own: it may hold the connection for long
    // `behave` on the accepting thread, connection after connection, and the connection closed
    // right after it: for a quick answer at a high rate, where creating a thread would cost more
    // than the answer. `behave` must not wait (read_head's own wait aside).
    inline_quick,
  };

  // Starts listening; throws on failure.
  explicit RawTarget(Behaviour behave, Threading threading = Threading::per_connection);
  ~RawTarget();  // stops accepting, ends and joins every connection
  RawTarget(const RawTarget&) = delete;
  RawTarget& operator=(const RawTarget&) = delete;

  int port() const { return port_; }
  // "<scheme>://127.0.0.1:<port><path>"
  std::string url(const std::string& path = "/", const std::string& scheme = "http") const;
  int accepted() const { return accepted_; }

 private:
  void accept_loop();

  Behaviour behave_;
  Threading threading_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> accepted_{0};
  std::mutex connections_mutex_;
  std::vector<std::thread> connections_;  // guarded by connections_mutex_
  std::thread acceptor_;
};

}  // namespace vigil::test

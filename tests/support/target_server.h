// A real HTTP target for tests: a cpp-httplib server on an ephemeral 127.0.0.1 port whose
// answers the test controls. Routes:
//   /ok                 200 "ok"
//   /status/{code}      that status, body "status"
//   /slow?ms=N          200 after N milliseconds
//   /trickle            200, then one byte a second, for a minute
//   /endless            200 with a body that never ends (chunked)
//   /redirect-loop      302 to itself, forever
//   /switch             200 or 503, whichever set_switch_up() last chose (starts up)
//   /hits/{name}        200, counting requests per name (see hits())
//   /hang?ms=N          no answer for N ms (default 60000), cut short when the server stops,
//                       so a never-answering target does not hold up the test's teardown
//   /require-header?name=H&value=V   200 when the request has header H equal to V, else 400
//   /conn/{name}        200, remembering each request's client port per name (see connections())
//   /peer/{name}        200, counting requests per client address per name (see peers())
// Probe depth:
//   /json               200 application/json {"status":"UP","db":{"ok":true,"latency_ms":12},
//                       "items":[1,2,3],"version":"1.2"}
//   /text?body=B&type=T 200 with body B and Content-Type T (default text/plain)
//   /redirect/{n}       302 to /redirect/{n-1}; /redirect/0 is 200 "ok"
//   /echo               POST, PUT, PATCH, DELETE: 200 "<method> <request body>"
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace httplib {
class Server;
}

namespace vigil::test {

class TargetServer {
 public:
  TargetServer();   // starts listening; throws on failure
  ~TargetServer();  // stops and joins
  int port() const { return port_; }
  std::string url(const std::string& path) const;  // "http://127.0.0.1:<port><path>"
  void set_switch_up(bool up) { switch_up_ = up; }
  int hits(const std::string& name) const;
  // Distinct client ports seen by /conn/{name}: one per TCP connection the client opened.
  int connections(const std::string& name) const;
  // Requests to /peer/{name} per client address ("127.0.0.2" -> 3).
  std::map<std::string, int> peers(const std::string& name) const;
  // Every request to /peer/{name}: from which client address, and when it arrived.
  struct PeerHit {
    std::string address;
    std::chrono::steady_clock::time_point at;
  };
  std::vector<PeerHit> peer_hits(const std::string& name) const;

 private:
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
  std::atomic<bool> switch_up_{true};
  std::atomic<bool> stopping_{false};
  mutable std::mutex hits_mutex_;
  std::map<std::string, int> hits_;
  std::map<std::string, std::set<int>> connection_ports_;
  std::map<std::string, std::vector<PeerHit>> peer_hits_;
};

// A 127.0.0.1 port with nothing listening (bound once, then released).
int closed_port();

// A fresh directory under the system temp dir, removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  // Keeps the directory when this is destroyed: its new owner removes it.
  void release() { path_.clear(); }

 private:
  std::string path_;
};

}  // namespace vigil::test

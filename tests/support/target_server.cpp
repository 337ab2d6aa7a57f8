#include "support/target_server.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>

namespace vigil::test {

TargetServer::TargetServer() : server_(std::make_unique<httplib::Server>()) {
  auto& s = *server_;
  s.Get("/ok", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok", "text/plain");
  });
  s.Get(R"(/status/(\d+))", [](const httplib::Request& req, httplib::Response& res) {
    res.status = std::stoi(req.matches[1]);
    res.set_content("status", "text/plain");
  });
  s.Get("/slow", [](const httplib::Request& req, httplib::Response& res) {
    const int ms = req.has_param("ms") ? std::stoi(req.get_param_value("ms")) : 1000;
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    res.set_content("slow", "text/plain");
  });
  s.Get("/trickle", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content_provider(60, "text/plain",
                             [this](size_t offset, size_t, httplib::DataSink& sink) {
                               for (int i = 0; i < 10 && !stopping_; ++i)
                                 std::this_thread::sleep_for(std::chrono::milliseconds(100));
                               if (stopping_) return false;
                               sink.write("x", 1);
                               (void)offset;
                               return true;
                             });
  });
  s.Get("/endless", [this](const httplib::Request&, httplib::Response& res) {
    res.set_chunked_content_provider("text/plain", [this](size_t, httplib::DataSink& sink) {
      static const std::string chunk(64 * 1024, 'z');
      if (stopping_) return false;
      return sink.write(chunk.data(), chunk.size());
    });
  });
  s.Get("/redirect-loop", [](const httplib::Request&, httplib::Response& res) {
    res.set_redirect("/redirect-loop");
  });
  s.Get("/switch", [this](const httplib::Request&, httplib::Response& res) {
    res.status = switch_up_ ? 200 : 503;
    res.set_content(switch_up_ ? "up" : "down", "text/plain");
  });
  s.Get(R"(/hits/([\w-]+))", [this](const httplib::Request& req, httplib::Response& res) {
    std::lock_guard lock(hits_mutex_);
    ++hits_[req.matches[1]];
    res.set_content("hit", "text/plain");
  });
  s.Get("/hang", [this](const httplib::Request& req, httplib::Response& res) {
    const int ms = req.has_param("ms") ? std::stoi(req.get_param_value("ms")) : 60000;
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (!stopping_ && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    res.set_content("late", "text/plain");
  });
  s.Get("/require-header", [](const httplib::Request& req, httplib::Response& res) {
    const std::string name = req.get_param_value("name");
    const bool ok = req.has_header(name.c_str()) &&
                    req.get_header_value(name.c_str()) == req.get_param_value("value");
    res.status = ok ? 200 : 400;
    res.set_content(ok ? "present" : "missing", "text/plain");
  });
  s.Get(R"(/peer/([\w-]+))", [this](const httplib::Request& req, httplib::Response& res) {
    std::lock_guard lock(hits_mutex_);
    peer_hits_[req.matches[1]].push_back({req.remote_addr, std::chrono::steady_clock::now()});
    res.set_content("peer", "text/plain");
  });
  s.Get(R"(/conn/([\w-]+))", [this](const httplib::Request& req, httplib::Response& res) {
    std::lock_guard lock(hits_mutex_);
    connection_ports_[req.matches[1]].insert(req.remote_port);
    res.set_content("conn", "text/plain");
  });
  // Probe depth: bodies, headers and redirects for conditions.
  s.Get("/json", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(
        R"({"status":"UP","db":{"ok":true,"latency_ms":12},"items":[1,2,3],"version":"1.2"})",
        "application/json");
  });
  s.Get("/text", [](const httplib::Request& req, httplib::Response& res) {
    const std::string type = req.has_param("type") ? req.get_param_value("type") : "text/plain";
    res.set_content(req.get_param_value("body"), type.c_str());
  });
  s.Get(R"(/redirect/(\d+))", [](const httplib::Request& req, httplib::Response& res) {
    const int left = std::stoi(req.matches[1]);
    if (left == 0) {
      res.set_content("ok", "text/plain");
      return;
    }
    res.set_redirect("/redirect/" + std::to_string(left - 1));
  });
  const auto echo = [](const httplib::Request& req, httplib::Response& res) {
    res.set_content(req.method + " " + req.body, "text/plain");
  };
  s.Post("/echo", echo);
  s.Put("/echo", echo);
  s.Patch("/echo", echo);
  s.Delete("/echo", echo);
  s.new_task_queue = [] { return new httplib::ThreadPool(32); };
  port_ = s.bind_to_any_port("127.0.0.1");
  if (port_ <= 0) throw std::runtime_error("test target: cannot bind 127.0.0.1");
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  while (!server_->is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

TargetServer::~TargetServer() {
  stopping_ = true;
  server_->stop();
  if (thread_.joinable()) thread_.join();
}

std::map<std::string, int> TargetServer::peers(const std::string& name) const {
  std::map<std::string, int> counts;
  for (const auto& hit : peer_hits(name)) ++counts[hit.address];
  return counts;
}

std::vector<TargetServer::PeerHit> TargetServer::peer_hits(const std::string& name) const {
  std::lock_guard lock(hits_mutex_);
  auto it = peer_hits_.find(name);
  return it == peer_hits_.end() ? std::vector<PeerHit>{} : it->second;
}

int TargetServer::connections(const std::string& name) const {
  std::lock_guard lock(hits_mutex_);
  auto it = connection_ports_.find(name);
  return it == connection_ports_.end() ? 0 : static_cast<int>(it->second.size());
}

std::string TargetServer::url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + path;
}

int TargetServer::hits(const std::string& name) const {
  std::lock_guard lock(hits_mutex_);
  auto it = hits_.find(name);
  return it == hits_.end() ? 0 : it->second;
}

int closed_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("bind() failed");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

TempDir::TempDir() {
  std::string templ = (std::filesystem::temp_directory_path() / "vigil-test-XXXXXX").string();
  if (!::mkdtemp(templ.data())) throw std::runtime_error("mkdtemp failed");
  path_ = templ;
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

}  // namespace vigil::test

// A notification receiver on 127.0.0.1 standing in for a webhook, Slack or PagerDuty endpoint:
// it records every POST by path and answers from a per-path script.
#pragma once

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace vigil::test {

// A receiver: every POST is recorded by path; each path answers from a script (status, body)
// consumed in order, the last entry repeating; /hang is recorded and then never answers (until
// the receiver stops).
class Receiver {
 public:
  struct Request {
    std::string path;
    std::string body;
    httplib::Headers headers;
  };

  Receiver() {
    server_.Post(R"(/.*)", [this](const httplib::Request& req, httplib::Response& res) {
      if (req.path == "/hang") {
        {
          // Recorded on arrival, so a test can tell that a delivery is under way.
          std::lock_guard lock(mutex_);
          requests_.push_back({req.path, req.body, req.headers});
        }
        for (int i = 0; i < 3000 && !stopping_; ++i)
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
        return;
      }
      std::lock_guard lock(mutex_);
      requests_.push_back({req.path, req.body, req.headers});
      auto& script = scripts_[req.path];
      std::pair<int, std::string> answer{200, "ok"};
      if (!script.empty()) {
        answer = script.front();
        if (script.size() > 1) script.pop_front();
      }
      res.status = answer.first;
      res.set_content(answer.second, "text/plain");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    for (int i = 0; i < 500 && !server_.is_running(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ~Receiver() {
    stopping_ = true;
    server_.stop();
    thread_.join();
  }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  void script(const std::string& path, std::deque<std::pair<int, std::string>> answers) {
    std::lock_guard lock(mutex_);
    scripts_[path] = std::move(answers);
  }
  std::vector<Request> requests(const std::string& path) const {
    std::lock_guard lock(mutex_);
    std::vector<Request> out;
    for (const auto& r : requests_)
      if (r.path == path) out.push_back(r);
    return out;
  }
  std::vector<std::string> bodies(const std::string& path) const {
    std::vector<std::string> out;
    for (const auto& r : requests(path)) out.push_back(r.body);
    return out;
  }
  // Waits (at most `timeout`) until `path` has received `count` requests.
  std::vector<Request> wait_for(
      const std::string& path, std::size_t count,
      std::chrono::steady_clock::duration timeout = std::chrono::seconds(5)) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (requests(path).size() < count && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    return requests(path);
  }

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mutex_;
  std::vector<Request> requests_;
  std::map<std::string, std::deque<std::pair<int, std::string>>> scripts_;
};

}  // namespace vigil::test

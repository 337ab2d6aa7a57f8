#include "api/server.h"

#include <httplib.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "api/alert_routes.h"
#include "api/guarded_server.h"
#include "api/history_routes.h"
#include "api/json_views.h"
#include "api/page_routes.h"
#include "api/push_routes.h"
#include "api/push_tokens.h"
#include "api/responses.h"
#include "api/router.h"
#include "api/series_routes.h"
#include "api/service_routes.h"
#include "api/system_routes.h"
#include "core/logging.h"

namespace vigil {

namespace {

constexpr std::chrono::seconds kIoTimeout{5};
// 0.11.4 notices stop() on an idle keep-alive connection only when its wait ends, so this bounds
// how long stop() (and so vigil's shutdown) waits for idle clients such as a scraper.
constexpr time_t kKeepAliveSeconds = 1;
// The route label for requests that matched no route: keeps the label set bounded whatever
// paths clients send.
constexpr const char* kUnmatchedRoute = "unmatched";

// A request path fit for the log: a push token is a secret, so it is masked.
std::string loggable_path(const std::string& path) {
  constexpr std::string_view kPush = "/v1/push/";
  if (!path.starts_with(kPush)) return path;
  const auto end = path.find('/', kPush.size());
  return std::string(kPush) + "<token>" + (end == std::string::npos ? "" : path.substr(end));
}

}  // namespace

class ApiServer::Impl {
 public:
  Impl(Store& store, prometheus::Registry& registry, HealthCheck health, ApiOptions options)
      : options_(std::move(options)),
        push_tokens_(store),
        requests_(prometheus::BuildCounter()
                      .Name("vigil_api_requests_total")
                      .Help("HTTP API requests by route pattern and status code.")
                      .Register(registry)),
        durations_(prometheus::BuildHistogram()
                       .Name("vigil_api_request_duration_seconds")
                       .Help("HTTP API request duration by route pattern, in seconds.")
                       .Register(registry)),
        buckets_{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5},
        router_(server_, AccessTokens{options_.write_token, options_.read_token}) {
    // The order of the groups is the order of routes() and of matching; every route must be
    // documented in api/openapi.json under its label (the path template):
    // StatusHttp.OpenApiDocumentsExactlyTheRegisteredRoutes fails otherwise.
    add_service_routes(router_, store, options_, push_tokens_);
    add_history_routes(router_, store);
    add_series_routes(router_, store);
    add_push_routes(router_, store, options_.commands, push_tokens_);
    add_alert_routes(router_, options_);
    add_system_routes(router_, store, registry, options_, health);
    add_page_routes(router_, store, options_, std::move(health));
    configure();
  }

  ~Impl() { stop(); }

  int start(const std::string& host, int port) {
    std::lock_guard lock(lifecycle_mutex_);
    if (started_) throw std::logic_error("api: start() may be called once");
    started_ = true;
    const std::string address = host + ":" + std::to_string(port);
    int bound = -1;
    if (port == 0)
      bound = server_.bind_to_any_port(host);
    else if (port > 0 && port <= 65535 && server_.bind_to_port(host, port))
      bound = port;
    if (bound <= 0) throw std::runtime_error("api: cannot bind " + address);
    server_.widen_listen_backlog();

    listen_done_ = false;
    thread_ = std::thread([this] {
      server_.listen_after_bind();
      listen_done_ = true;
    });
    // 0.11.4 has no wait_until_ready; the listen loop flips is_running() once it accepts.
    while (!server_.is_running() && !listen_done_)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (!server_.is_running()) {
      thread_.join();
      throw std::runtime_error("api: cannot listen on " + address);
    }
    return bound;
  }

  void stop() {
    std::lock_guard lock(lifecycle_mutex_);
    if (!thread_.joinable()) return;
    server_.stop();  // closes the listener; the pool finishes requests in progress
    thread_.join();
  }

  std::vector<RouteInfo> routes() const { return router_.routes(); }

 private:
  void configure() {
    // httplib's default options add SO_REUSEPORT, which lets a second vigil bind the same port
    // and silently share its traffic; SO_REUSEADDR alone still allows a quick restart.
    server_.set_socket_options([](socket_t sock) {
      int yes = 1;
      ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });
    // httplib sends headers and body in separate writes; with Nagle on, every request after the
    // first on a keep-alive connection waits ~40 ms for the client's delayed ACK.
    server_.set_tcp_nodelay(true);
    server_.set_keep_alive_timeout(kKeepAliveSeconds);
    server_.set_payload_max_length(kMaxBodyBytes);
    server_.set_read_timeout(kIoTimeout);
    server_.set_write_timeout(kIoTimeout);
    server_.set_exception_handler([](const httplib::Request& req, httplib::Response& res,
                                     const std::exception_ptr& ep) { on_exception(req, res, ep); });
    server_.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      on_response(req, res);
    });
  }

  static void on_exception(const httplib::Request& req, httplib::Response& res,
                           const std::exception_ptr& ep) noexcept {
    std::string what = "unknown exception";
    bool storage = false;
    bool unavailable = false;
    try {
      std::rethrow_exception(ep);
    } catch (const StorageUnavailable& e) {
      what = e.what();
      unavailable = true;
    } catch (const StorageError& e) {
      what = e.what();
      storage = true;
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    try {
      // Details go to the log only: storage messages can carry paths and SQL.
      log_error("api: " + req.method + " " + loggable_path(req.path) + " failed: " + what);
      res.headers.clear();
      // The database gone or stuck: nothing was done, and a later try may succeed.
      if (unavailable) return send_error(res, 503, "storage unavailable");
      send_error(res, 500, storage ? "storage error" : "internal error");
    } catch (...) {
      res.status = 500;
    }
  }

  // The request metrics and the debug log line, once the response is written.
  void on_response(const httplib::Request& req, const httplib::Response& res) noexcept {
    try {
      const Router::RequestRecord record = Router::finish_request();
      const std::string route = record.route ? record.route : kUnmatchedRoute;
      requests_.Add({{"route", route}, {"code", std::to_string(res.status)}}).Increment();
      if (!record.started) return;  // never routed (malformed request): no start time
      const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - record.start;
      durations_.Add({{"route", route}}, buckets_).Observe(elapsed.count());
      if (log_enabled(LogLevel::debug))
        log_debug("api: " + req.method + " " + loggable_path(req.path) + " " +
                  std::to_string(res.status) + " " + std::to_string(elapsed.count() * 1000.0) +
                  "ms");
    } catch (...) {
      // Metrics must never take a request thread down.
    }
  }

  const ApiOptions options_;
  PushTokenIndex push_tokens_;
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& durations_;
  const prometheus::Histogram::BucketBoundaries buckets_;

  // Limits on request sizes, deadlines and connections that httplib 0.11.4 lacks.
  // Its own answers (408, 414, 431, 503) never reach routing: counted as route "unmatched".
  GuardedServer server_{
      ConnectionLimits{}, [this](int status, std::string_view message) {
        requests_.Add({{"route", kUnmatchedRoute}, {"code", std::to_string(status)}}).Increment();
        return error_envelope(status, std::string(message)).dump();
      }};
  Router router_;  // after server_, whose handlers it installs
  std::mutex lifecycle_mutex_;
  bool started_ = false;  // guarded by lifecycle_mutex_
  std::atomic<bool> listen_done_{false};
  std::thread thread_;
};

ApiServer::ApiServer(Store& store, prometheus::Registry& registry, HealthCheck health,
                     ApiOptions options)
    : impl_(std::make_unique<Impl>(store, registry, std::move(health), std::move(options))) {}

ApiServer::~ApiServer() = default;

int ApiServer::start(const std::string& host, int port) { return impl_->start(host, port); }

void ApiServer::stop() { impl_->stop(); }

std::vector<RouteInfo> ApiServer::routes() const { return impl_->routes(); }

}  // namespace vigil

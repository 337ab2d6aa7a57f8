#include "api/server.h"

#include <httplib.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <sys/socket.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <exception>
#include <limits>
#include <mutex>
#include <optional>
#include <regex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "api/json_views.h"
#include "config/logging.h"

namespace vigil {

using nlohmann::json;

namespace {

constexpr std::size_t kMaxPayloadBytes = 64 * 1024;
constexpr std::chrono::seconds kIoTimeout{5};
// 0.11.4 notices stop() on an idle keep-alive connection only when its wait ends, so this bounds
// how long stop() (and so vigil's shutdown) waits for idle clients such as a scraper.
constexpr time_t kKeepAliveSeconds = 1;
constexpr int kDefaultLimit = 100;
constexpr int kMaxLimit = 1000;
constexpr const char* kJsonType = "application/json";
constexpr const char* kPrometheusType = "text/plain; version=0.0.4; charset=utf-8";
constexpr const char* kAllowGet = "GET, HEAD";
// The route label for requests that matched no route: keeps the label set bounded whatever
// paths clients send.
constexpr const char* kUnmatchedRoute = "unmatched";

// A client error a handler reports with its status and message (400, 404).
class ApiError : public std::runtime_error {
 public:
  ApiError(int status, const std::string& message) : std::runtime_error(message), status(status) {}
  int status;
};

ApiError bad_request(const std::string& message) { return ApiError(400, message); }

// httplib hands a request to the pre-routing handler, the route handler, the error handler and
// the logger one after another on the same pool thread, so per-request timing can live in a
// thread_local without passing anything through httplib.
struct RequestContext {
  bool active = false;
  std::chrono::steady_clock::time_point start;
  const char* route = nullptr;
};
thread_local RequestContext tl_request;

// Strict: the whole string is one decimal integer (no sign other than '-', no spaces, no '+').
std::optional<std::int64_t> parse_int64(std::string_view text) {
  std::int64_t value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc{} || ptr != end) return std::nullopt;
  return value;
}

ServiceId parse_service_id(std::string_view text) {
  auto id = parse_int64(text);
  if (!id || *id < 1) throw bad_request("service id must be a positive integer");
  return *id;
}

int parse_limit(const httplib::Request& req) {
  if (!req.has_param("limit")) return kDefaultLimit;
  auto limit = parse_int64(req.get_param_value("limit"));
  if (!limit || *limit < 1 || *limit > kMaxLimit)
    throw bad_request("limit must be an integer from 1 to " + std::to_string(kMaxLimit));
  return static_cast<int>(*limit);
}

// A non-negative unix time in seconds with an optional decimal fraction ("1700000000",
// "1700000000.25"), kept exact so from/to compare without float rounding.
struct UnixSeconds {
  std::int64_t seconds = 0;
  std::string fraction;  // digits after the point, trailing zeros removed

  // Milliseconds rounded toward the inside of a [from, to] range: up for from, down for to, so
  // an inclusive bound never admits a tick outside what the client asked for.
  std::int64_t floor_ms() const {
    std::int64_t ms = 0;
    for (std::size_t i = 0; i < 3; ++i)
      ms = ms * 10 + (i < fraction.size() ? fraction[i] - '0' : 0);
    return seconds * 1000 + ms;
  }
  std::int64_t ceil_ms() const { return floor_ms() + (fraction.size() > 3 ? 1 : 0); }

  friend bool operator<(const UnixSeconds& a, const UnixSeconds& b) {
    // Digit strings without trailing zeros order like the fractions they spell.
    return a.seconds != b.seconds ? a.seconds < b.seconds : a.fraction < b.fraction;
  }
};

std::optional<UnixSeconds> parse_unix_seconds(std::string_view text) {
  // Bounds the seconds so that seconds * 1000 + 999 (+1) still fits in int64.
  constexpr std::int64_t kMaxSeconds = std::numeric_limits<std::int64_t>::max() / 1000 - 1;
  const auto point = text.find('.');
  const std::string_view whole = text.substr(0, point);
  if (whole.empty() || whole.front() == '-') return std::nullopt;
  auto seconds = parse_int64(whole);
  if (!seconds || *seconds > kMaxSeconds) return std::nullopt;
  UnixSeconds out{*seconds, {}};
  if (point != std::string_view::npos) {
    const std::string_view fraction = text.substr(point + 1);
    if (fraction.empty()) return std::nullopt;
    for (char c : fraction)
      if (c < '0' || c > '9') return std::nullopt;
    out.fraction = std::string(fraction);
    while (!out.fraction.empty() && out.fraction.back() == '0') out.fraction.pop_back();
  }
  return out;
}

std::optional<UnixSeconds> time_param(const httplib::Request& req, const char* name) {
  if (!req.has_param(name)) return std::nullopt;
  auto value = parse_unix_seconds(req.get_param_value(name));
  if (!value) throw bad_request(std::string(name) + " must be a non-negative unix time in seconds");
  return value;
}

// Invalid UTF-8 (a service name, a curl error text) is replaced rather than failing the dump,
// which by default throws and would turn a whole listing into a 500.
std::string dump(const json& body) {
  return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(dump(body), kJsonType);
}

// For bodies rendered as text: moved into the response, since 0.11.4's set_content only copies
// (a 10,000-service listing is several MB).
void send_json_text(httplib::Response& res, int status, std::string body) {
  res.status = status;
  res.body = std::move(body);
  res.set_header("Content-Type", kJsonType);
}

// A JSON array of `items`, appended to `out`.
template <typename T>
void append_list(std::string& out, const std::vector<T>& items,
                 void (*append)(std::string&, const T&)) {
  out += '[';
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += ',';
    append(out, items[i]);
  }
  out += ']';
}

void send_error(httplib::Response& res, int status, const std::string& message) {
  send_json(res, status, error_envelope(status, message));
}

std::string_view health_word(PartHealth health) {
  switch (health) {
    case PartHealth::alive:
      return "alive";
    case PartHealth::stalled:
      return "stalled";
    case PartHealth::not_running:
      return "not_running";
  }
  return "unknown";
}

}  // namespace

class ApiServer::Impl {
 public:
  Impl(Store& store, prometheus::Registry& registry, HealthCheck health)
      : store_(store),
        registry_(registry),
        health_(std::move(health)),
        requests_(prometheus::BuildCounter()
                      .Name("vigil_api_requests_total")
                      .Help("HTTP API requests by route pattern and status code.")
                      .Register(registry)),
        durations_(prometheus::BuildHistogram()
                       .Name("vigil_api_request_duration_seconds")
                       .Help("HTTP API request duration by route pattern, in seconds.")
                       .Register(registry)),
        buckets_{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5} {
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

 private:
  // One entry per route pattern: the label used in metrics and how to recognise its paths
  // (needed to tell 405 on a known path from 404 on an unknown one).
  struct Route {
    const char* label;
    std::regex pattern;
  };

  using Handler = void (Impl::*)(const httplib::Request&, httplib::Response&);

  void add_route(const char* label, const char* pattern, Handler handler) {
    routes_.push_back(Route{label, std::regex(pattern)});
    server_.Get(pattern,
                [this, label, handler](const httplib::Request& req, httplib::Response& res) {
                  tl_request.route = label;
                  try {
                    (this->*handler)(req, res);
                  } catch (const ApiError& e) {
                    send_error(res, e.status, e.what());
                  }
                  // Anything else reaches the exception handler: 500 with a generic message.
                });
  }

  const char* match_route(const std::string& path) const {
    for (const auto& route : routes_)
      if (std::regex_match(path, route.pattern)) return route.label;
    return nullptr;
  }

  void configure() {
    // Ids are captured loosely ([^/]+) so that "abc" or "-1" reach the handler and get a 400
    // naming the problem instead of a 404 for an unknown route.
    add_route("/v1/services", "/v1/services", &Impl::list_services);
    add_route("/v1/services/{id}", R"(/v1/services/([^/]+))", &Impl::get_service);
    add_route("/v1/services/{id}/events", R"(/v1/services/([^/]+)/events)", &Impl::events);
    add_route("/v1/services/{id}/ticks", R"(/v1/services/([^/]+)/ticks)", &Impl::ticks);
    add_route("/healthz", "/healthz", &Impl::healthz);
    add_route("/metrics", "/metrics", &Impl::metrics);

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
    server_.set_payload_max_length(kMaxPayloadBytes);
    server_.set_read_timeout(kIoTimeout);
    server_.set_write_timeout(kIoTimeout);

    server_.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      tl_request = RequestContext{true, std::chrono::steady_clock::now(), nullptr};
      // httplib 0.11.4 reads a body for POST/PUT/PATCH/DELETE even when none is declared, so
      // `curl -X POST` would wait out the read timeout (5 s) for its 405. No length and no
      // chunking means no body: answer now. Declared bodies still get read (and 413 if large).
      const bool bodyless =
          !req.has_header("Content-Length") && !req.has_header("Transfer-Encoding");
      if (req.method != "GET" && req.method != "HEAD" && bodyless) {
        res.status = 404;  // on_error turns it into 405 on a known path
        on_error(req, res);
        return httplib::Server::HandlerResponse::Handled;
      }
      return httplib::Server::HandlerResponse::Unhandled;
    });
    server_.set_error_handler(httplib::Server::HandlerWithResponse(
        [this](const httplib::Request& req, httplib::Response& res) {
          // "Handled" makes httplib frame the body we wrote (Content-Length); without it an
          // unrouted response goes out with no length and the client waits for the close.
          return on_error(req, res) ? httplib::Server::HandlerResponse::Handled
                                    : httplib::Server::HandlerResponse::Unhandled;
        }));
    server_.set_exception_handler([this](const httplib::Request& req, httplib::Response& res,
                                         std::exception_ptr ep) { on_exception(req, res, ep); });
    server_.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      on_response(req, res);
    });
  }

  // httplib calls this for every response with status >= 400, including the ones a route
  // already answered; only responses without a body (httplib's own 404/400/413...) get one.
  // Returns whether it wrote the body.
  bool on_error(const httplib::Request& req, httplib::Response& res) noexcept {
    try {
      if (!res.body.empty()) return false;
      const char* route = match_route(req.path);
      if (route && !tl_request.route) tl_request.route = route;
      const bool wrong_method = req.method != "GET" && req.method != "HEAD";
      if (route && wrong_method && (res.status == 404 || res.status == 400)) {
        res.set_header("Allow", kAllowGet);
        send_error(res, 405, "method " + req.method + " not allowed on " + route);
        return true;
      }
      switch (res.status) {
        case 404:
          send_error(res, 404, "unknown route");
          break;
        case 413:
          send_error(
              res, 413,
              "request body too large (limit " + std::to_string(kMaxPayloadBytes) + " bytes)");
          break;
        default:
          send_error(res, res.status, status_desc(res.status));
      }
      return true;
    } catch (...) {
      // Leave httplib's bare response; throwing here would end the pool thread.
      return false;
    }
  }

  void on_exception(const httplib::Request& req, httplib::Response& res,
                    std::exception_ptr ep) noexcept {
    std::string what = "unknown exception";
    bool storage = false;
    try {
      std::rethrow_exception(ep);
    } catch (const StorageError& e) {
      what = e.what();
      storage = true;
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    try {
      // Details go to the log only: storage messages can carry paths and SQL.
      log_error("api: " + req.method + " " + req.path + " failed: " + what);
      res.headers.clear();
      send_error(res, 500, storage ? "storage error" : "internal error");
    } catch (...) {
      res.status = 500;
    }
  }

  void on_response(const httplib::Request& req, const httplib::Response& res) noexcept {
    try {
      const RequestContext context = std::exchange(tl_request, RequestContext{});
      const std::string route = context.route ? context.route : kUnmatchedRoute;
      requests_.Add({{"route", route}, {"code", std::to_string(res.status)}}).Increment();
      if (!context.active) return;  // never routed (malformed request): no start time
      const std::chrono::duration<double> elapsed =
          std::chrono::steady_clock::now() - context.start;
      durations_.Add({{"route", route}}, buckets_).Observe(elapsed.count());
      if (log_enabled(LogLevel::debug))
        log_debug("api: " + req.method + " " + req.path + " " + std::to_string(res.status) + " " +
                  std::to_string(elapsed.count() * 1000.0) + "ms");
    } catch (...) {
      // Metrics must never take a request thread down.
    }
  }

  // Routes.

  void list_services(const httplib::Request&, httplib::Response& res) {
    // One store query and one pass writing text: no per-service queries and no JSON tree,
    // whose build, dump and free dominated the time for 10,000 services.
    const std::vector<ServiceView> views = store_.list_services();
    std::string data;
    data.reserve(views.size() * 700 + 64);
    data += R"({"services":{"data":)";
    append_list(data, views, &append_service_json);
    data += "}}";
    send_json_text(res, 200, envelope_text(200, data));
  }

  void get_service(const httplib::Request& req, httplib::Response& res) {
    const ServiceId id = parse_service_id(req.matches[1].str());
    auto view = store_.get_service(id);
    if (!view) throw not_found(id);
    std::string data = R"({"service":)";
    append_service_json(data, *view);
    data += '}';
    send_json_text(res, 200, envelope_text(200, data));
  }

  void events(const httplib::Request& req, httplib::Response& res) {
    const ServiceId id = parse_service_id(req.matches[1].str());
    const int limit = parse_limit(req);
    std::optional<std::int64_t> before;
    if (req.has_param("before")) {
      before = parse_int64(req.get_param_value("before"));
      if (!before || *before < 1) throw bad_request("before must be a positive event id");
    }
    const std::vector<Event> events = store_.events(id, limit, before);
    // Events only exist for existing services, so the existence query is needed only when
    // the page is empty.
    if (events.empty() && !store_.get_service(id)) throw not_found(id);
    std::string data = R"({"events":{"data":)";
    append_list(data, events, &append_event_json);
    // A full page may have more behind it: `next` is the `before` for the following page.
    data += R"(,"next":)";
    data += events.size() == static_cast<std::size_t>(limit) ? std::to_string(events.back().id)
                                                             : std::string("null");
    data += "}}";
    send_json_text(res, 200, envelope_text(200, data));
  }

  void ticks(const httplib::Request& req, httplib::Response& res) {
    const ServiceId id = parse_service_id(req.matches[1].str());
    const auto from = time_param(req, "from");
    const auto to = time_param(req, "to");
    if (from && to && *to < *from) throw bad_request("from must not be after to");
    TickQuery query;
    query.limit = parse_limit(req);
    if (from) query.from = from_unix_ms(from->ceil_ms());
    if (to) query.to = from_unix_ms(to->floor_ms());
    std::vector<Tick> ticks;
    // from == to within one millisecond can round to an empty range; no tick can match it.
    if (!(query.from && query.to && *query.from > *query.to)) ticks = store_.ticks(id, query);
    if (ticks.empty() && !store_.get_service(id)) throw not_found(id);
    std::string data = R"({"ticks":{"data":)";
    append_list(data, ticks, &append_tick_json);
    data += "}}";
    send_json_text(res, 200, envelope_text(200, data));
  }

  void healthz(const httplib::Request&, httplib::Response& res) {
    json data = json::object();
    std::vector<std::string> failed;
    try {
      const HealthReport report = health_ ? health_() : HealthReport{};
      data["runner"] = health_word(report.runner);
      data["writer"] = health_word(report.writer);
      if (report.runner == PartHealth::stalled) failed.push_back("runner");
      if (report.writer == PartHealth::stalled) failed.push_back("writer");
    } catch (const std::exception& e) {
      log_error(std::string("api: health check failed: ") + e.what());
      data["runner"] = data["writer"] = "unknown";
      failed.push_back("health check");
    }
    bool storage_ok = false;
    try {
      storage_ok = store_.ping();
    } catch (const std::exception& e) {
      log_error(std::string("api: storage ping failed: ") + e.what());
    }
    data["storage"] = storage_ok ? "ok" : "failed";
    if (!storage_ok) failed.push_back("storage");

    if (failed.empty()) return send_json(res, 200, envelope(200, std::move(data)));
    std::string message = "unhealthy:";
    for (const auto& part : failed) message += " " + part;
    json body = error_envelope(503, message);
    body["data"] = std::move(data);
    send_json(res, 503, body);
  }

  void metrics(const httplib::Request&, httplib::Response& res) {
    res.status = 200;
    res.set_content(prometheus::TextSerializer().Serialize(registry_.Collect()), kPrometheusType);
  }

  static ApiError not_found(ServiceId id) {
    return ApiError(404, "service " + std::to_string(id) + " not found");
  }

  Store& store_;
  prometheus::Registry& registry_;
  HealthCheck health_;
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& durations_;
  const prometheus::Histogram::BucketBoundaries buckets_;

  httplib::Server server_;
  std::vector<Route> routes_;
  std::mutex lifecycle_mutex_;
  bool started_ = false;  // guarded by lifecycle_mutex_
  std::atomic<bool> listen_done_{false};
  std::thread thread_;
};

ApiServer::ApiServer(Store& store, prometheus::Registry& registry, HealthCheck health)
    : impl_(std::make_unique<Impl>(store, registry, std::move(health))) {}

ApiServer::~ApiServer() = default;

int ApiServer::start(const std::string& host, int port) { return impl_->start(host, port); }

void ApiServer::stop() { impl_->stop(); }

}  // namespace vigil

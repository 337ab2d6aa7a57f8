#include "api/server.h"

#include <httplib.h>
#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <sys/socket.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <exception>
#include <iterator>
#include <limits>
#include <mutex>
#include <optional>
#include <regex>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "alerting/alert_store.h"
#include "alerting/alert_views.h"
#include "alerting/alerter.h"
#include "alerting/alerting_config.h"
#include "alerting/maintenance.h"
#include "api/auth.h"
#include "api/badges.h"
#include "api/freshness_gauges.h"
#include "api/guarded_server.h"
#include "api/health.h"
#include "api/json_views.h"
#include "api/metrics_exposition.h"
#include "api/openapi.h"
#include "api/paging.h"
#include "api/series_routes.h"
#include "api/status_page.h"
#include "api/uptime_gauges.h"
#include "config/config.h"
#include "core/json_input.h"
#include "core/logging.h"
#include "core/text.h"

namespace vigil {

using nlohmann::json;

namespace {

constexpr std::size_t kMaxPayloadBytes = 64 * 1024;
constexpr std::chrono::seconds kIoTimeout{5};
// 0.11.4 notices stop() on an idle keep-alive connection only when its wait ends, so this bounds
// how long stop() (and so vigil's shutdown) waits for idle clients such as a scraper.
constexpr time_t kKeepAliveSeconds = 1;
constexpr const char* kJsonType = "application/json";
constexpr const char* kHtmlType = "text/html; charset=utf-8";
constexpr const char* kPrometheusType = "text/plain; version=0.0.4; charset=utf-8";
// What a write body is called in validation messages ("service.interval_seconds: ..."),
// the longest push msg, and how long the push route trusts a token it looked up.
constexpr const char* kBodyName = "service";
constexpr std::size_t kMaxPushMessage = 1024;
constexpr auto kPushTokenTtl = std::chrono::seconds(5);
constexpr std::size_t kMaxCachedPushTokens = 100'000;
// The route label for requests that matched no route: keeps the label set bounded whatever
// paths clients send.
constexpr const char* kUnmatchedRoute = "unmatched";

// A client error a handler reports with its status and message (400, 404).
class ApiError : public std::runtime_error {
 public:
  ApiError(int code, const std::string& message) : std::runtime_error(message), status(code) {}
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

std::optional<std::string> optional_param(const httplib::Request& req, const char* name) {
  if (!req.has_param(name)) return std::nullopt;
  return req.get_param_value(name);
}

// ---- paging (api/paging.h): the same limit, cursor and next on every list ----

int parse_limit(const httplib::Request& req) {
  try {
    return paging::parse_limit(optional_param(req, "limit"));
  } catch (const paging::BadParam& e) {
    throw bad_request(e.what());
  }
}

// The position `cursor` names in `list`; `older` is the list's own older parameter (offset,
// before), which says where to start too and so cannot be combined with a cursor.
std::optional<paging::Key> parse_cursor(const httplib::Request& req, paging::List list,
                                        std::int64_t scope, const char* older = nullptr) {
  if (older && req.has_param("cursor") && req.has_param(older))
    throw bad_request(std::string("cursor and ") + older + " cannot be combined: use cursor");
  try {
    return paging::parse_cursor(optional_param(req, "cursor"), list, scope);
  } catch (const paging::BadParam& e) {
    throw bad_request(e.what());
  }
}

// Pages are read with limit + 1 rows, so that the last page is known without another request.
// Trims `items` to `limit` and returns the cursor after its last item, or empty when the extra
// row was not there (the last page).
template <typename T, typename KeyOf>
std::optional<std::string> trim_page(std::vector<T>& items, int limit, paging::List list,
                                     std::int64_t scope, KeyOf key_of) {
  if (items.size() <= static_cast<std::size_t>(limit)) return std::nullopt;
  items.resize(static_cast<std::size_t>(limit));
  return paging::encode_cursor(list, scope, key_of(items.back()));
}

// Appends `,"next":"<cursor>"` or `,"next":null` (a cursor is base64url: nothing to escape).
void append_next(std::string& out, const std::optional<std::string>& next) {
  out += R"(,"next":)";
  out += next ? '"' + *next + '"' : std::string("null");
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

// One part in /healthz: {"status","age_seconds","instance"}, the last two when it is running.
json part_json(const PartVerdict& verdict) {
  json part = {{"status", part_state_word(verdict.state)}};
  if (verdict.age) {
    part["age_seconds"] = double(verdict.age->count()) / 1000.0;
    part["instance"] = verdict.instance;
  }
  return part;
}

// ---- push tokens, bodies, flags ----

// Push token -> service id, so a beat costs no query: learned from the store on a miss and kept
// kPushTokenTtl (another process may deactivate or purge the service meanwhile). This API's own
// writes invalidate it once they have committed. A lookup that read the store before the latest
// invalidation may have read the row as it was before that write, so it answers with what it read
// but does not fill the cache: once a DELETE has answered, no stale entry can come back.
// Unknown tokens are not kept: each costs one indexed query.
class PushTokenIndex {
 public:
  explicit PushTokenIndex(Store& store) : store_(store) {}

  std::optional<ServiceId> find(const std::string& token) {
    const auto now = std::chrono::steady_clock::now();
    std::uint64_t generation = 0;
    {
      std::lock_guard lock(mutex_);
      auto it = ids_.find(token);
      if (it != ids_.end() && it->second.expires > now) return it->second.id;
      generation = generation_;
    }
    const auto service = store_.find_by_push_token(token);
    std::lock_guard lock(mutex_);
    if (!service) {
      ids_.erase(token);
      return std::nullopt;
    }
    if (generation == generation_) put(token, service->id, now);
    return service->id;
  }

  // After a write of `service` has committed: the next push reads its row again.
  void invalidate(const Service& service) { invalidate(service.push_token); }
  void invalidate(const std::string& token) {
    std::lock_guard lock(mutex_);
    ++generation_;
    if (!token.empty()) ids_.erase(token);
  }
  // Invalidates `token` when it goes out of scope: held across a write, so that the invalidation
  // follows the commit however the handler leaves.
  class [[nodiscard]] Invalidation {
   public:
    Invalidation(PushTokenIndex& index, std::string token)
        : index_(index), token_(std::move(token)) {}
    ~Invalidation() { index_.invalidate(token_); }
    Invalidation(const Invalidation&) = delete;
    Invalidation& operator=(const Invalidation&) = delete;

   private:
    PushTokenIndex& index_;
    std::string token_;
  };
  Invalidation invalidate_on_exit(std::string token) { return {*this, std::move(token)}; }

 private:
  struct Known {
    ServiceId id;
    std::chrono::steady_clock::time_point expires;
  };
  // Caller holds mutex_.
  void put(const std::string& token, ServiceId id, std::chrono::steady_clock::time_point now) {
    if (ids_.size() >= kMaxCachedPushTokens) ids_.clear();  // bounded; refills on demand
    ids_[token] = Known{id, now + kPushTokenTtl};
  }

  Store& store_;
  std::mutex mutex_;
  std::unordered_map<std::string, Known> ids_;  // guarded by mutex_
  std::uint64_t generation_ = 0;                // invalidations so far; guarded by mutex_
};

// A write body: a JSON object, or a 400 saying what is wrong with it. It is read by the services
// file's rules (core/json_input.h): a key given twice or nesting past the bound is refused.
json body_object(const httplib::Request& req) {
  if (req.body.empty()) throw bad_request("body: expected a JSON object");
  json body;
  try {
    body = parse_json_input(req.body, "body");
  } catch (const ConfigError& e) {
    throw bad_request(e.what());
  }
  if (!body.is_object()) {
    throw bad_request("body: expected a JSON object, got " + shortened(dump(body), 80));
  }
  return body;
}

std::optional<bool> bool_param(const httplib::Request& req, const char* name) {
  if (!req.has_param(name)) return std::nullopt;
  const auto value = req.get_param_value(name);
  if (value == "true") return true;
  if (value == "false") return false;
  throw bad_request(std::string(name) + " must be true or false");
}

// Runs a validation, turning its ConfigError into a 400 with the same message.
template <typename Body>
auto validated(Body&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const ConfigError& e) {
    throw bad_request(e.what());
  }
}

// Runs a store write, turning a name conflict into a 409.
template <typename Body>
auto conflict_checked(Body&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const ConflictError& e) {
    throw ApiError(409, e.what());
  }
}

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
      : store_(store),
        registry_(registry),
        health_(std::move(health)),
        options_(std::move(options)),
        tokens_{options_.write_token, options_.read_token},
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
        uptime_gauges_(std::make_shared<UptimeGauges>(store)),
        freshness_gauges_(std::make_shared<FreshnessGauges>(store)) {
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

 private:
  // One entry per route pattern: the label used in metrics, how to recognise its paths (needed
  // to tell 405 on a known path from 404 on an unknown one) and the methods it allows.
  struct Route {
    const char* label;
    std::regex pattern;
    std::string allow;  // "GET, HEAD, POST"
  };

  // Who may call an endpoint: anyone, readers (API_READ_TOKEN when set), writers.
  enum class Gate { open, read, write };

  using Handler = void (Impl::*)(const httplib::Request&, httplib::Response&,
                                 const std::smatch& path);

  // One method of one route.
  struct Endpoint {
    std::string method;  // GET (also serves HEAD), POST, PATCH, DELETE
    std::size_t route;   // index in routes_
    Gate gate;
    Handler handler;
  };

  void add_route(const char* label, const char* pattern, const std::string& method, Gate gate,
                 Handler handler) {
    std::size_t route = 0;
    while (route < routes_.size() && std::string_view(routes_[route].label) != label) ++route;
    const std::string allow = method == "GET" ? "GET, HEAD" : method;
    if (route == routes_.size())
      routes_.push_back(Route{label, std::regex(pattern), allow});
    else
      routes_[route].allow += ", " + allow;
    const std::size_t index = endpoints_.size();
    endpoints_.push_back(Endpoint{method, route, gate, handler});
    const auto callback = [this, index](const httplib::Request& req, httplib::Response& res) {
      invoke(endpoints_[index], req, res, req.matches);
    };
    if (method == "GET")
      server_.Get(pattern, callback);
    else if (method == "POST")
      server_.Post(pattern, callback);
    else if (method == "PATCH")
      server_.Patch(pattern, callback);
    else if (method == "DELETE")
      server_.Delete(pattern, callback);
    else
      throw std::logic_error("api: no route registration for method " + method);
  }

  void invoke(const Endpoint& endpoint, const httplib::Request& req, httplib::Response& res,
              const std::smatch& path) {
    tl_request.route = routes_[endpoint.route].label;
    try {
      authorize(endpoint.gate, req);
      require_utf8(endpoint, req, path);
      (this->*endpoint.handler)(req, res, path);
    } catch (const ApiError& e) {
      if (e.status == 401) res.set_header("WWW-Authenticate", "Bearer");
      send_error(res, e.status, e.what());
    }
    // Anything else reaches the exception handler: 500 with a generic message.
  }

  // Query and form parameters and path segments reach a handler percent-decoded (%FF is the
  // byte 0xFF); they name things (a channel, a cursor, an id), so one that is not valid UTF-8 is
  // a 400 naming it, here for every route, before any handler quotes or stores it. The one free
  // text, a push's msg, is cleaned by its handler instead: a job's output must not lose a beat.
  void require_utf8(const Endpoint& endpoint, const httplib::Request& req,
                    const std::smatch& path) const {
    for (const auto& [name, value] : req.params) {
      if (!is_valid_utf8(name))
        throw bad_request("query parameter " + dump(json(valid_utf8(name))) +
                          ": name is not valid UTF-8");
      if (name == "msg" && endpoint.handler == &Impl::push) continue;
      if (!is_valid_utf8(value)) throw bad_request(name + ": not valid UTF-8");
    }
    // The path's captures, in the order of the label's {placeholders}.
    const std::string_view label = routes_[endpoint.route].label;
    std::size_t capture = 1;
    for (auto open = label.find('{'); open != std::string_view::npos && capture < path.size();
         open = label.find('{', open + 1), ++capture) {
      if (!is_valid_utf8(path[capture].str()))
        throw bad_request(std::string(label.substr(open, label.find('}', open) - open + 1)) +
                          " in the path: not valid UTF-8");
    }
  }

  Credentials credentials(const httplib::Request& req) const {
    auto it = req.headers.find("Authorization");
    return Credentials{it == req.headers.end() ? std::string_view() : std::string_view(it->second),
                       req.remote_addr};
  }

  // Throws 401/403 unless the caller may pass `gate`. Never says which token was expected.
  void authorize(Gate gate, const httplib::Request& req) const {
    if (gate == Gate::open) return;
    const Access access = gate == Gate::write ? write_access(tokens_, credentials(req))
                                              : read_access(tokens_, credentials(req));
    if (access == Access::allowed) return;
    if (access == Access::unauthenticated)
      throw ApiError(401, std::string("this route needs Authorization: Bearer <") +
                              (gate == Gate::write ? "API_TOKEN" : "API_READ_TOKEN") + ">");
    if (gate == Gate::write && tokens_.write.empty())
      throw ApiError(403,
                     "writes are accepted only from loopback clients while API_TOKEN is "
                     "not set");
    throw ApiError(403, "wrong token");
  }

  const Route* match_route(const std::string& path) const {
    for (const auto& route : routes_)
      if (std::regex_match(path, route.pattern)) return &route;
    return nullptr;
  }

  bool allows(const Route& route, const std::string& method) const {
    const std::string wanted = method == "HEAD" ? "GET" : method;
    for (const auto& endpoint : endpoints_)
      if (&routes_[endpoint.route] == &route && endpoint.method == wanted) return true;
    return false;
  }

  void configure() {
    // Ids and tokens are captured loosely ([^/]+) so that "abc" or "-1" reach the handler and
    // get a 400 naming the problem instead of a 404 for an unknown route.
    // Every route must be documented in api/openapi.json under its label (the path template):
    // StatusHttp.OpenApiDocumentsExactlyTheRegisteredRoutes fails otherwise.
    add_route("/v1/services", "/v1/services", "GET", Gate::read, &Impl::list_services);
    add_route("/v1/services", "/v1/services", "POST", Gate::write, &Impl::create_service);
    add_route("/v1/services/{id}", R"(/v1/services/([^/]+))", "GET", Gate::read,
              &Impl::get_service);
    add_route("/v1/services/{id}", R"(/v1/services/([^/]+))", "PATCH", Gate::write,
              &Impl::patch_service);
    add_route("/v1/services/{id}", R"(/v1/services/([^/]+))", "DELETE", Gate::write,
              &Impl::delete_service);
    add_route("/v1/services/{id}/events", R"(/v1/services/([^/]+)/events)", "GET", Gate::read,
              &Impl::events);
    add_route("/v1/services/{id}/ticks", R"(/v1/services/([^/]+)/ticks)", "GET", Gate::read,
              &Impl::ticks);
    // Time series: api/series_routes.h.
    add_route("/v1/services/{id}/metrics", R"(/v1/services/([^/]+)/metrics)", "GET", Gate::read,
              &Impl::service_metrics);
    add_route("/v1/services/{id}/series", R"(/v1/services/([^/]+)/series)", "GET", Gate::read,
              &Impl::service_series);
    add_route("/v1/uptime", "/v1/uptime", "GET", Gate::read, &Impl::all_uptime);
    // The push token in the path is the credential: cron jobs carry no other.
    add_route("/v1/push/{token}", R"(/v1/push/([^/]+)(/fail)?)", "GET", Gate::open, &Impl::push);
    add_route("/v1/push/{token}", R"(/v1/push/([^/]+)(/fail)?)", "POST", Gate::open, &Impl::push);
    add_route("/v1/alerts", "/v1/alerts", "GET", Gate::read, &Impl::list_alerts);
    add_route("/v1/alerts/test", "/v1/alerts/test", "POST", Gate::write, &Impl::test_alert);
    add_route("/v1/alerts/{id}", R"(/v1/alerts/([^/]+))", "GET", Gate::read, &Impl::get_alert);
    add_route("/v1/maintenance", "/v1/maintenance", "GET", Gate::read, &Impl::list_maintenance);
    add_route("/v1/maintenance", "/v1/maintenance", "POST", Gate::write, &Impl::create_maintenance);
    add_route("/v1/maintenance/{id}", R"(/v1/maintenance/([^/]+))", "DELETE", Gate::write,
              &Impl::delete_maintenance);
    add_route("/healthz", "/healthz", "GET", Gate::open, &Impl::healthz);
    add_route("/metrics", "/metrics", "GET", Gate::read, &Impl::metrics);
    // The API's own documentation, open like /healthz.
    add_route("/openapi.json", "/openapi.json", "GET", Gate::open, &Impl::openapi_json);
    add_route("/docs", "/docs", "GET", Gate::open, &Impl::docs);
    // Status page and badges: public only when STATUS_PAGE_PUBLIC says so.
    const Gate status_gate = options_.status_page_public ? Gate::open : Gate::read;
    add_route("/", "/", "GET", status_gate, &Impl::status_page);
    add_route("/services/{id}", R"(/services/([^/]+))", "GET", status_gate, &Impl::service_page);
    add_route("/v1/services/{id}/badges/status.svg", R"(/v1/services/([^/]+)/badges/status\.svg)",
              "GET", status_gate, &Impl::badge<BadgeKind::status, false>);
    add_route("/v1/services/{id}/badges/uptime.svg", R"(/v1/services/([^/]+)/badges/uptime\.svg)",
              "GET", status_gate, &Impl::badge<BadgeKind::uptime, false>);
    add_route("/v1/services/{id}/badges/response-time.svg",
              R"(/v1/services/([^/]+)/badges/response-time\.svg)", "GET", status_gate,
              &Impl::badge<BadgeKind::response_time, false>);
    // By name: (.+), since a name may hold a '/' (sent as %2F, decoded before matching).
    add_route("/v1/badges/{name}/status.svg", R"(/v1/badges/(.+)/status\.svg)", "GET", status_gate,
              &Impl::badge<BadgeKind::status, true>);
    add_route("/v1/badges/{name}/uptime.svg", R"(/v1/badges/(.+)/uptime\.svg)", "GET", status_gate,
              &Impl::badge<BadgeKind::uptime, true>);
    add_route("/v1/badges/{name}/response-time.svg", R"(/v1/badges/(.+)/response-time\.svg)", "GET",
              status_gate, &Impl::badge<BadgeKind::response_time, true>);

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
      // `curl -X POST` would wait out the read timeout (5 s). No length and no chunking means
      // no body: dispatch to the endpoint here (a DELETE, a push), or answer 404/405 now.
      // Declared bodies still get read (and 413 if large) and routed by httplib.
      const bool bodyless =
          !req.has_header("Content-Length") && !req.has_header("Transfer-Encoding");
      if (req.method != "GET" && req.method != "HEAD" && bodyless) {
        for (const auto& endpoint : endpoints_) {
          std::smatch path;
          if (endpoint.method == req.method &&
              std::regex_match(req.path, path, routes_[endpoint.route].pattern)) {
            invoke(endpoint, req, res, path);
            return httplib::Server::HandlerResponse::Handled;
          }
        }
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
      const Route* route = match_route(req.path);
      if (route && !tl_request.route) tl_request.route = route->label;
      if (route && !allows(*route, req.method) && (res.status == 404 || res.status == 400)) {
        res.set_header("Allow", route->allow);
        send_error(res, 405, "method " + req.method + " not allowed on " + route->label);
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
      log_error("api: " + req.method + " " + loggable_path(req.path) + " failed: " + what);
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
        log_debug("api: " + req.method + " " + loggable_path(req.path) + " " +
                  std::to_string(res.status) + " " + std::to_string(elapsed.count() * 1000.0) +
                  "ms");
    } catch (...) {
      // Metrics must never take a request thread down.
    }
  }

  // Routes.

  void list_services(const httplib::Request& req, httplib::Response& res, const std::smatch&) {
    ServiceFilter filter = service_filter(req);
    const int limit = parse_limit(req);
    filter.limit = limit + 1;
    if (const auto after = parse_cursor(req, paging::List::services, 0, "offset"))
      filter.after_id = after->id;
    // One store query and one pass writing text: no per-service queries and no JSON tree,
    // whose build, dump and free dominated the time for 10,000 services.
    std::vector<ServiceView> views = store_.list_services(filter);
    const auto next = trim_page(views, limit, paging::List::services, 0, [](const ServiceView& v) {
      return paging::Key{0, v.service.id};
    });
    std::string body;
    body.reserve(views.size() * 700 + 128);
    append_envelope_begin(body);  // in place: a page of 1,000 is 0.5 MB, not copied again
    body += R"({"services":{"data":[)";
    const ServiceJsonOptions options{.audience = url_audience(req), .now = filter.now};
    for (std::size_t i = 0; i < views.size(); ++i) {
      if (i > 0) body += ',';
      append_service_json(body, views[i], options);
    }
    body += ']';
    append_next(body, next);
    body += "}}";
    append_envelope_end(body, 200);
    send_json_text(res, 200, std::move(body));
  }

  void get_service(const httplib::Request& req, httplib::Response& res, const std::smatch& path) {
    const ServiceId id = parse_service_id(path[1].str());
    auto view = store_.get_service(id);
    if (!view) throw not_found(id);
    send_service(res, 200, *view, may_see_secrets(tokens_, credentials(req)), url_audience(req));
  }

  // Query values of probe URLs are shown to writers only (core/url_redaction.h).
  UrlAudience url_audience(const httplib::Request& req) const {
    return write_access(tokens_, credentials(req)) == Access::allowed ? UrlAudience::writer
                                                                      : UrlAudience::reader;
  }

  // ---- writes and pushes ----

  void create_service(const httplib::Request& req, httplib::Response& res, const std::smatch&) {
    const json body = body_object(req);
    const ServiceSpec spec = validated([&] {
      auto parsed = parse_service_spec(body, kBodyName, options_.service_defaults);
      if (options_.alerting) check_alert_routes(*options_.alerting, parsed, kBodyName);
      return parsed;
    });
    const Service created = conflict_checked([&] { return store_.create_service(spec, now_ms()); });
    if (options_.commands) options_.commands->service_changed(created);
    push_tokens_.invalidate(created);
    ServiceView view;
    view.service = created;
    send_service(res, 201, view, true);  // the one response that always shows the push token
  }

  void patch_service(const httplib::Request& req, httplib::Response& res, const std::smatch& path) {
    const ServiceId id = parse_service_id(path[1].str());
    json body = body_object(req);
    // Read, merge, validate and write in one write transaction: a concurrent PATCH of other
    // fields of this service is merged onto, never overwritten.
    const auto edited = conflict_checked([&] {
      return store_.edit_service(
          id,
          [&](const Service& current) {
            if (current.source == ServiceSource::file)
              throw file_owned(current, "edit it in the services file");
            Store::ServiceEdit edit{current.spec, current.active};
            if (body.contains("active")) {
              if (!body["active"].is_boolean())
                throw bad_request("active: expected true or false, got " + dump(body["active"]));
              edit.active = body["active"].get<bool>();
              body.erase("active");
            }
            if (!body.empty()) {
              edit.spec = validated([&] {
                const json merged =
                    merge_service_patch(current.spec, body, kBodyName, options_.service_defaults);
                auto parsed = parse_service_spec(merged, kBodyName, options_.service_defaults);
                if (options_.alerting) check_alert_routes(*options_.alerting, parsed, kBodyName);
                return parsed;
              });
            }
            return edit;
          },
          now_ms());
    });
    if (!edited) throw not_found(id);
    if (options_.commands) options_.commands->service_changed(*edited);
    push_tokens_.invalidate(*edited);
    auto view = store_.get_service(id);
    if (!view) throw not_found(id);
    send_service(res, 200, *view, true);
  }

  void delete_service(const httplib::Request& req, httplib::Response& res,
                      const std::smatch& path) {
    const ServiceId id = parse_service_id(path[1].str());
    const bool purge = bool_param(req, "purge").value_or(false);
    auto current = store_.get_service(id);
    if (!current) throw not_found(id);
    const Service& service = current->service;
    if (service.source == ServiceSource::file && (!purge || service.active))
      throw file_owned(service, purge ? "remove it from the file first (vigil deactivates it at "
                                        "the next start), then purge it"
                                      : "remove it from the file");
    // The runner lets go first, so no tick is produced after the delete. Deactivated, the
    // service keeps its state in the runner for a reactivation; purged, it loses it.
    if (options_.commands) {
      if (purge) {
        options_.commands->service_purged(id);
      } else {
        Service inactive = service;
        inactive.active = false;
        options_.commands->service_changed(inactive);
      }
    }
    // After the write below, not before: a push that read the row meanwhile must not refill it.
    const auto invalidation = push_tokens_.invalidate_on_exit(service.push_token);
    if (purge) {
      if (!store_.purge_service(id)) throw not_found(id);
      send_json(res, 200, envelope(200, json{{"id", id}, {"purged", true}}));
      return;
    }
    if (!store_.set_service_active(id, false, now_ms())) throw not_found(id);
    auto view = store_.get_service(id);
    if (!view) throw not_found(id);
    send_service(res, 200, *view, false);
  }

  void push(const httplib::Request& req, httplib::Response& res, const std::smatch& path) {
    const std::string token = path[1].str();
    const bool fail = path[2].matched;
    // The token first: an unknown one is a 404 whatever else the request says, and nothing
    // is written for it.
    const auto id = push_tokens_.find(token);
    if (!id) throw ApiError(404, "unknown push token");
    const BeatReport beat = beat_report(req, fail);
    if (options_.commands) {
      options_.commands->beat(*id, beat);
    } else {
      switch (store_.enqueue_beat(*id, beat)) {
        case Store::BeatQueued::queued:
          break;
        case Store::BeatQueued::unknown_service:
          push_tokens_.invalidate(token);
          throw ApiError(404, "unknown push token");
        case Store::BeatQueued::full:
          throw ApiError(503,
                         "too many beats waiting for the runner process: is `vigil runner` "
                         "running on this database?");
      }
    }
    res.status = 200;
    res.set_content("OK", "text/plain");
  }

  static BeatReport beat_report(const httplib::Request& req, bool fail) {
    // Query and form fields (httplib parses both into params), or a JSON object body.
    std::optional<std::string> status, message;
    std::optional<double> duration;
    if (req.has_param("status")) status = req.get_param_value("status");
    if (req.has_param("msg")) message = req.get_param_value("msg");
    if (req.has_param("duration_ms")) {
      const auto text = req.get_param_value("duration_ms");
      double value = 0;
      const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
      if (text.empty() || ec != std::errc{} || end != text.data() + text.size())
        throw bad_request("duration_ms must be a number of milliseconds, 0 or more");
      duration = value;
    }
    if (req.get_header_value("Content-Type").starts_with("application/json") && !req.body.empty()) {
      const json body = body_object(req);
      for (const auto& [key, value] : body.items()) {
        if (key == "status" && value.is_string()) {
          status = value.get<std::string>();
        } else if (key == "msg" && value.is_string()) {
          message = value.get<std::string>();
        } else if (key == "duration_ms" && value.is_number()) {
          duration = value.get<double>();
        } else if (key == "status" || key == "msg" || key == "duration_ms") {
          throw bad_request(key + ": wrong type, got " + dump(value));
        } else {
          throw bad_request("body: unknown key \"" + key + "\" (known: status, msg, duration_ms)");
        }
      }
    }
    BeatReport beat;
    beat.at = now_ms();
    beat.up = !fail;
    if (status) {
      if (*status != "up" && *status != "down") throw bad_request("status must be up or down");
      if (fail && *status == "up") throw bad_request("status: /fail always records a failure");
      beat.up = *status == "up";
    }
    if (message) {
      if (message->size() > kMaxPushMessage)
        throw bad_request("msg: at most " + std::to_string(kMaxPushMessage) + " bytes, got " +
                          std::to_string(message->size()));
      // A job's output in a legacy encoding must not cost the beat: invalid bytes become
      // U+FFFD (which may lengthen it, hence the cut on a character boundary).
      beat.message = clean_text(*message, kMaxPushMessage);
    }
    if (duration) {
      if (!std::isfinite(*duration) || *duration < 0 || *duration > 1e10)
        throw bad_request("duration_ms must be a number of milliseconds, 0 or more");
      beat.duration_ms = *duration;
    }
    return beat;
  }

  static ServiceFilter service_filter(const httplib::Request& req) {
    ServiceFilter filter;
    filter.now = now_ms();
    const auto text = [&](const char* name) -> std::optional<std::string> {
      if (!req.has_param(name)) return std::nullopt;
      auto value = req.get_param_value(name);
      if (value.empty()) throw bad_request(std::string(name) + " must not be empty");
      return value;
    };
    filter.team = text("team");
    filter.tag = text("tag");
    if (const auto status = text("status")) {
      if (*status == "stale")
        filter.stale = true;
      else if (*status == "up" || *status == "down")
        filter.status = *status == "up" ? EventKind::uptime : EventKind::downtime;
      else
        throw bad_request("status must be up, down or stale");
    }
    filter.muted = bool_param(req, "muted");
    if (const auto kind = text("kind")) {
      if (*kind != "http" && *kind != "heartbeat")
        throw bad_request("kind must be http or heartbeat");
      filter.kind = *kind == "http" ? ServiceKind::http : ServiceKind::heartbeat;
    }
    if (req.has_param("offset")) {
      const auto offset = parse_int64(req.get_param_value("offset"));
      if (!offset || *offset < 0 || *offset > 1'000'000'000)
        throw bad_request("offset must be an integer, 0 or more");
      filter.offset = static_cast<int>(*offset);
    }
    return filter;
  }

  // Write routes answer writers: they see the URL's query values unless told otherwise.
  static void send_service(httplib::Response& res, int status, const ServiceView& view,
                           bool with_push_token, UrlAudience audience = UrlAudience::writer) {
    std::string data = R"({"service":)";
    append_service_json(
        data, view, ServiceJsonOptions{.with_push_token = with_push_token, .audience = audience});
    data += '}';
    send_json_text(res, status, envelope_text(status, data));
  }

  static ApiError file_owned(const Service& service, const std::string& what_to_do) {
    return ApiError(409, "service " + std::to_string(service.id) + " (\"" + service.spec.name +
                             "\") is managed by the services file: " + what_to_do);
  }

  void events(const httplib::Request& req, httplib::Response& res, const std::smatch& path) {
    const ServiceId id = parse_service_id(path[1].str());
    const int limit = parse_limit(req);
    std::optional<std::int64_t> before;
    if (req.has_param("before")) {
      before = parse_int64(req.get_param_value("before"));
      if (!before || *before < 1) throw bad_request("before must be a positive event id");
    }
    // Events are newest first by id, so the cursor's key is the `before` of the next page.
    if (const auto after = parse_cursor(req, paging::List::events, id, "before"))
      before = after->id;
    std::vector<Event> events = store_.events(id, limit + 1, before);
    // Events only exist for existing services, so the existence query is needed only when
    // the page is empty.
    if (events.empty() && !store_.get_service(id)) throw not_found(id);
    const auto next = trim_page(events, limit, paging::List::events, id, [](const Event& e) {
      return paging::Key{0, e.id};
    });
    std::string data = R"({"events":{"data":)";
    append_list(data, events, &append_event_json);
    append_next(data, next);
    data += "}}";
    send_json_text(res, 200, envelope_text(200, data));
  }

  // ---- time series ----

  // Runs a series:: route body, turning its BadParam into a 400.
  template <typename Body>
  static void send_series(httplib::Response& res, Body&& body) {
    nlohmann::json data;
    try {
      data = body();
    } catch (const series::BadParam& e) {
      throw bad_request(e.what());
    }
    send_json(res, 200, envelope(200, std::move(data)));
  }

  static series::Params params_of(const httplib::Request& req) {
    return [&req](const char* name) -> std::optional<std::string> {
      if (!req.has_param(name)) return std::nullopt;
      return req.get_param_value(name);
    };
  }

  void service_metrics(const httplib::Request& req, httplib::Response& res,
                       const std::smatch& path) {
    const ServiceId id = parse_service_id(path[1].str());
    if (!store_.get_service(id)) throw not_found(id);
    send_series(res, [&] { return series::service_metrics(store_, id, params_of(req), now_ms()); });
  }

  void service_series(const httplib::Request& req, httplib::Response& res,
                      const std::smatch& path) {
    const ServiceId id = parse_service_id(path[1].str());
    if (!store_.get_service(id)) throw not_found(id);
    send_series(res, [&] { return series::service_series(store_, id, params_of(req), now_ms()); });
  }

  void all_uptime(const httplib::Request& req, httplib::Response& res, const std::smatch&) {
    send_series(res, [&] { return series::all_uptime(store_, params_of(req), now_ms()); });
  }

  // ---- alerting ----

  AlertStore& alert_store() const {
    if (!options_.alerts) throw ApiError(503, "alerting is not available in this process");
    return *options_.alerts;
  }

  void list_alerts(const httplib::Request& req, httplib::Response& res, const std::smatch&) {
    AlertQuery query;
    const int limit = parse_limit(req);
    query.limit = limit + 1;
    if (req.has_param("active")) {
      const auto value = req.get_param_value("active");
      if (value != "true" && value != "false") throw bad_request("active must be true or false");
      query.active = value == "true";
    }
    if (req.has_param("service_id"))
      query.service_id = parse_service_id(req.get_param_value("service_id"));
    if (const auto since = time_param(req, "since")) query.since = from_unix_ms(since->ceil_ms());
    if (const auto after = parse_cursor(req, paging::List::alerts, 0)) query.before_id = after->id;
    auto records = alert_store().alerts(query);
    const auto next = trim_page(records, limit, paging::List::alerts, 0, [](const AlertRecord& a) {
      return paging::Key{0, a.alert_id};
    });
    json alerts = json::array();
    for (const auto& alert : records) alerts.push_back(alert_json(alert));
    send_json(res, 200,
              envelope(200, json{{"alerts", std::move(alerts)},
                                 {"next", next ? json(*next) : json(nullptr)}}));
  }

  void get_alert(const httplib::Request&, httplib::Response& res, const std::smatch& path) {
    const auto id = parse_int64(path[1].str());
    if (!id || *id < 1) throw bad_request("alert id must be a positive integer");
    const auto alert = alert_store().alert(*id);
    if (!alert) throw ApiError(404, "alert " + std::to_string(*id) + " not found");
    json data = alert_json(*alert);
    data["notifications"] = json::array();
    for (const auto& n : alert_store().notifications(*id))
      data["notifications"].push_back(notification_json(n));
    send_json(res, 200, envelope(200, json{{"alert", std::move(data)}}));
  }

  void test_alert(const httplib::Request& req, httplib::Response& res, const std::smatch&) {
    if (!req.has_param("channel")) throw bad_request("channel is required");
    if (!options_.alerter) throw ApiError(503, "no alerter runs in this process (vigil api)");
    const auto channel = req.get_param_value("channel");
    if (!options_.alerter->send_test(channel))
      throw ApiError(404, "channel " + json(channel).dump() + " not found");
    send_json(res, 202, envelope(202, json{{"channel", channel}, {"queued", true}}));
  }

  // Maintenance windows: the services file's (read-only here) and the API's (stored).
  void list_maintenance(const httplib::Request&, httplib::Response& res, const std::smatch&) {
    const TimePoint now = now_ms();
    json windows = json::array();
    if (options_.alerting)
      for (const auto& window : options_.alerting->maintenance)
        windows.push_back(maintenance_json(window, now));
    for (const auto& window : alert_store().maintenance_windows())
      windows.push_back(maintenance_json(window, now));
    send_json(res, 200, envelope(200, json{{"windows", std::move(windows)}}));
  }

  void create_maintenance(const httplib::Request& req, httplib::Response& res, const std::smatch&) {
    const json body = body_object(req);
    const MaintenanceWindow window =
        validated([&] { return parse_maintenance_window(body, "maintenance"); });
    const TimePoint now = now_ms();
    const auto stored = alert_store().add_maintenance_window(window, now);
    send_json(res, 201, envelope(201, json{{"window", maintenance_json(stored, now)}}));
  }

  void delete_maintenance(const httplib::Request&, httplib::Response& res,
                          const std::smatch& path) {
    const auto id = parse_int64(path[1].str());
    if (!id || *id < 1) throw bad_request("maintenance window id must be a positive integer");
    if (!alert_store().delete_maintenance_window(*id))
      throw ApiError(404, "maintenance window " + std::to_string(*id) + " not found");
    send_json(res, 200, envelope(200, json{{"id", *id}, {"deleted", true}}));
  }

  void ticks(const httplib::Request& req, httplib::Response& res, const std::smatch& path) {
    const ServiceId id = parse_service_id(path[1].str());
    const auto from = time_param(req, "from");
    const auto to = time_param(req, "to");
    if (from && to && *to < *from) throw bad_request("from must not be after to");
    TickQuery query;
    const int limit = parse_limit(req);
    query.limit = limit + 1;
    if (from) query.from = from_unix_ms(from->ceil_ms());
    if (to) query.to = from_unix_ms(to->floor_ms());
    // from/to stay filters: a cursor continues the same window (pass them again with it).
    if (const auto after = parse_cursor(req, paging::List::ticks, id))
      query.before = TickPosition{from_unix_ms(after->ts_ms), after->id};
    std::vector<Tick> ticks;
    // from == to within one millisecond can round to an empty range; no tick can match it.
    if (!(query.from && query.to && *query.from > *query.to)) ticks = store_.ticks(id, query);
    if (ticks.empty() && !store_.get_service(id)) throw not_found(id);
    const auto next = trim_page(ticks, limit, paging::List::ticks, id, [](const Tick& t) {
      return paging::Key{to_unix_ms(t.ts), t.seq};
    });
    std::string data = R"({"ticks":{"data":)";
    append_list(data, ticks, &append_tick_json);
    append_next(data, next);
    data += "}}";
    send_json_text(res, 200, envelope_text(200, data));
  }

  void healthz(const httplib::Request&, httplib::Response& res, const std::smatch&) {
    json data = json::object();
    std::vector<std::string> failed;
    std::string storage_failure;
    try {
      const HealthReport report = health_ ? health_() : HealthReport{};
      const auto verdicts =
          judge_parts(report.parts, options_.health_clock(), options_.health_silent_after);
      for (const auto& verdict : verdicts) data[verdict.part] = part_json(verdict);
      if (const std::string silent = describe_silent(verdicts); !silent.empty())
        failed.push_back(silent);
      storage_failure = report.storage_failure;
    } catch (const std::exception& e) {
      log_error(std::string("api: health check failed: ") + e.what());
      for (const std::string_view part : kHealthParts) data[std::string(part)] = "unknown";
      failed.push_back("health check");
    }
    data["silent_after_seconds"] = double(options_.health_silent_after.count()) / 1000.0;
    bool storage_ok = false;
    try {
      storage_ok = store_.ping();
    } catch (const std::exception& e) {
      log_error(std::string("api: storage ping failed: ") + e.what());
    }
    data["storage"] = storage_ok ? "ok" : "failed";
    if (!storage_ok) failed.push_back("storage");
    if (storage_ok && !storage_failure.empty()) {
      data["storage"] = "failing";
      data["storage_error"] = storage_failure;
      failed.push_back("storage writes failing (" + storage_failure + ")");
    }

    if (failed.empty()) return send_json(res, 200, envelope(200, std::move(data)));
    std::string message = "unhealthy:";
    for (const auto& part : failed) message += " " + part;
    json body = error_envelope(503, message);
    body["data"] = std::move(data);
    send_json(res, 503, body);
  }

  // The registry's families and the collectables' (api/metrics_exposition.h), streamed to the
  // client in pieces: at 100,000 services the text is tens of megabytes, and neither it nor the
  // series as prometheus-cpp objects are ever held whole.
  void metrics(const httplib::Request&, httplib::Response& res, const std::smatch&) {
    std::vector<std::shared_ptr<prometheus::Collectable>> collectables = options_.collectables;
    collectables.push_back(uptime_gauges_);
    collectables.push_back(freshness_gauges_);
    res.status = 200;
    res.set_chunked_content_provider(
        kPrometheusType,
        [this, collectables = std::move(collectables)](std::size_t, httplib::DataSink& sink) {
          std::vector<const prometheus::Collectable*> sources{&registry_};
          for (const auto& collectable : collectables) sources.push_back(collectable.get());
          TextExpositionWriter out(
              [&sink](std::string_view piece) { return sink.write(piece.data(), piece.size()); });
          write_metrics_text(sources, out);
          out.finish();
          sink.done();
          return true;
        });
  }

  // ---- documentation, badges, status page ----

  void openapi_json(const httplib::Request&, httplib::Response& res, const std::smatch&) {
    res.status = 200;
    res.set_content(std::string(openapi_document()), kJsonType);
  }

  void docs(const httplib::Request&, httplib::Response& res, const std::smatch&) {
    // The document is fixed at build time: render it once.
    static const std::string page = render_docs_html(openapi_document());
    res.status = 200;
    res.set_content(page, kHtmlType);
  }

  void status_page(const httplib::Request& req, httplib::Response& res, const std::smatch&) {
    int page = 1;
    if (req.has_param("page")) {
      const auto value = parse_int64(req.get_param_value("page"));
      if (!value || *value < 1 || *value > 1'000'000)
        throw bad_request("page must be an integer from 1 to 1000000");
      page = static_cast<int>(*value);
    }
    StatusPageData data = load_status_page(store_, options_.status_page_title, now_ms(), page);
    data.monitoring_down = monitoring_down();
    send_page(res, 200, render_status_page(data));
  }

  // The status page's warning that its states may be stale: which part is silent; empty when
  // none is.
  std::string monitoring_down() {
    try {
      const HealthReport report = health_ ? health_() : HealthReport{};
      return describe_silent(
          judge_parts(report.parts, options_.health_clock(), options_.health_silent_after));
    } catch (const std::exception& e) {
      log_error(std::string("api: health check failed: ") + e.what());
      return "health check failed";
    }
  }

  void service_page(const httplib::Request&, httplib::Response& res, const std::smatch& path) {
    const ServiceId id = parse_service_id(path[1].str());
    const auto data =
        load_service_page(store_, options_.alerts, options_.status_page_title, id, now_ms());
    if (!data)
      return send_page(res, 404,
                       render_not_found_page(options_.status_page_title,
                                             "There is no service " + std::to_string(id) + "."));
    send_page(res, 200, render_service_page(*data));
  }

  void send_page(httplib::Response& res, int status, std::string page) const {
    res.status = status;
    res.body = std::move(page);
    res.set_header("Content-Type", kHtmlType);
    res.set_header("Cache-Control", "no-cache");
  }

  enum class BadgeKind { status, uptime, response_time };

  // The service of a badge path: by id, or the active service of that name.
  ServiceView badge_service(const std::string& key, bool by_name) {
    if (!by_name) {
      const ServiceId id = parse_service_id(key);
      auto view = store_.get_service(id);
      if (!view) throw not_found(id);
      return std::move(*view);
    }
    for (ServiceView& view : store_.list_services())
      if (view.service.spec.name == key) return std::move(view);
    throw ApiError(
        404,
        "service " + json(key).dump(-1, ' ', false, json::error_handler_t::replace) + " not found");
  }

  template <BadgeKind kind, bool by_name>
  void badge(const httplib::Request& req, httplib::Response& res, const std::smatch& path) {
    const std::string window_name = req.has_param("window") ? req.get_param_value("window") : "";
    const auto window = badges::window_of(window_name);
    // Checked before the lookup so a bad window is a 400 whatever the service.
    if (kind != BadgeKind::status && !window)
      throw bad_request("window must be one of 24h, 7d, 30d");
    const ServiceView view = badge_service(path[1].str(), by_name);
    badges::Badge badge;
    if constexpr (kind == BadgeKind::status) {
      badge = badges::status_badge(view, now_ms());
    } else {
      const TimePoint now = now_ms();
      const RollupSummary summary = store_.summarize(view.service.id, now - *window, now);
      badge = kind == BadgeKind::uptime ? badges::uptime_badge(summary, window_name)
                                        : badges::response_time_badge(summary, window_name);
    }
    res.status = 200;
    res.set_content(badges::render_svg(badge), "image/svg+xml; charset=utf-8");
    // Short for the state, longer for the window figures; private when a token is needed.
    res.set_header("Cache-Control",
                   std::string(options_.status_page_public ? "public" : "private") +
                       (kind == BadgeKind::status ? ", max-age=60" : ", max-age=300"));
  }

 public:
  std::vector<RouteInfo> route_list() const {
    std::vector<RouteInfo> out;
    for (const auto& endpoint : endpoints_)
      out.push_back(RouteInfo{endpoint.method, routes_[endpoint.route].label});
    return out;
  }

 private:
  static ApiError not_found(ServiceId id) {
    return ApiError(404, "service " + std::to_string(id) + " not found");
  }

  Store& store_;
  prometheus::Registry& registry_;
  HealthCheck health_;
  const ApiOptions options_;
  const AccessTokens tokens_;
  PushTokenIndex push_tokens_;
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& durations_;
  const prometheus::Histogram::BucketBoundaries buckets_;
  std::shared_ptr<UptimeGauges> uptime_gauges_;        // collected with the registry
  std::shared_ptr<FreshnessGauges> freshness_gauges_;  // last tick and staleness, from the Store

  // Limits on request sizes, deadlines and connections that httplib 0.11.4 lacks.
  // Its own answers (408, 414, 431, 503) never reach routing: counted as route "unmatched".
  GuardedServer server_{
      ConnectionLimits{}, [this](int status, std::string_view message) {
        requests_.Add({{"route", kUnmatchedRoute}, {"code", std::to_string(status)}}).Increment();
        return error_envelope(status, std::string(message)).dump();
      }};
  std::vector<Route> routes_;
  std::vector<Endpoint> endpoints_;
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

std::vector<RouteInfo> ApiServer::routes() const { return impl_->route_list(); }

}  // namespace vigil

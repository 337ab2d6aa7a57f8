#include "api/page_routes.h"

#include <httplib.h>

#include <exception>
#include <memory>
#include <string>
#include <utility>

#include "api/badges.h"
#include "api/params.h"
#include "api/responses.h"
#include "api/status_data.h"
#include "api/status_page.h"
#include "core/logging.h"

namespace vigil {
namespace {

using nlohmann::json;

enum class BadgeKind { status, uptime, response_time };

class PageRoutes {
 public:
  PageRoutes(Store& store, const ApiOptions& options, HealthCheck health)
      : store_(store), options_(options), health_(std::move(health)) {}

  void status_page(const httplib::Request& req, httplib::Response& res) const {
    int page = 1;
    if (const auto text = optional_param(req, "page")) {
      const auto value = parse_int64(*text);
      if (!value || *value < 1 || *value > 1'000'000)
        throw bad_request("page must be an integer from 1 to 1000000");
      page = static_cast<int>(*value);
    }
    StatusPageData data = load_status_page(store_, options_.status_page_title, now_ms(), page);
    data.monitoring_down = monitoring_down();
    send_page(res, 200, render_status_page(data));
  }

  void service_page(const std::smatch& path, httplib::Response& res) const {
    const ServiceId id = parse_service_id(path[1].str());
    const auto data =
        load_service_page(store_, options_.alerts, options_.status_page_title, id, now_ms());
    if (!data)
      return send_page(res, 404,
                       render_not_found_page(options_.status_page_title,
                                             "There is no service " + std::to_string(id) + "."));
    send_page(res, 200, render_service_page(*data));
  }

  // The badge of the service `key` names: its id, or when `by_name` the active service of that
  // name.
  void badge(BadgeKind kind, bool by_name, const httplib::Request& req, httplib::Response& res,
             const std::smatch& path) const {
    const std::string window_name = optional_param(req, "window").value_or("");
    const auto window = badges::window_of(window_name);
    // Checked before the lookup so a bad window is a 400 whatever the service.
    if (kind != BadgeKind::status && !window)
      throw bad_request("window must be one of 24h, 7d, 30d");
    const ServiceView view = badge_service(path[1].str(), by_name);
    badges::Badge badge;
    const TimePoint now = now_ms();
    if (kind == BadgeKind::status) {
      badge = badges::status_badge(view, now);
    } else {
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

 private:
  // The status page's warning that its states may be stale: which part is silent; empty when
  // none is.
  std::string monitoring_down() const {
    try {
      const HealthReport report = health_ ? health_() : HealthReport{};
      return describe_silent(
          judge_parts(report.parts, options_.health_clock(), options_.health_silent_after));
    } catch (const std::exception& e) {
      log_error(std::string("api: health check failed: ") + e.what());
      return "health check failed";
    }
  }

  ServiceView badge_service(const std::string& key, bool by_name) const {
    if (!by_name) {
      const ServiceId id = parse_service_id(key);
      auto view = store_.get_service(id);
      if (!view) throw service_not_found(id);
      return std::move(*view);
    }
    for (ServiceView& view : store_.list_services())
      if (view.service.spec.name == key) return std::move(view);
    throw ApiError(404, "service " + dump(json(key)) + " not found");
  }

  Store& store_;
  const ApiOptions& options_;
  const HealthCheck health_;
};

struct BadgeRoute {
  const char* label;
  const char* pattern;
  BadgeKind kind;
  bool by_name;
};

constexpr BadgeRoute kBadgeRoutes[] = {
    {"/v1/services/{id}/badges/status.svg", R"(/v1/services/([^/]+)/badges/status\.svg)",
     BadgeKind::status, false},
    {"/v1/services/{id}/badges/uptime.svg", R"(/v1/services/([^/]+)/badges/uptime\.svg)",
     BadgeKind::uptime, false},
    {"/v1/services/{id}/badges/response-time.svg",
     R"(/v1/services/([^/]+)/badges/response-time\.svg)", BadgeKind::response_time, false},
    // By name: (.+), since a name may hold a '/' (sent as %2F, decoded before matching).
    {"/v1/badges/{name}/status.svg", R"(/v1/badges/(.+)/status\.svg)", BadgeKind::status, true},
    {"/v1/badges/{name}/uptime.svg", R"(/v1/badges/(.+)/uptime\.svg)", BadgeKind::uptime, true},
    {"/v1/badges/{name}/response-time.svg", R"(/v1/badges/(.+)/response-time\.svg)",
     BadgeKind::response_time, true},
};

}  // namespace

void add_page_routes(Router& router, Store& store, const ApiOptions& options, HealthCheck health) {
  // Shared by the handlers: it holds the health check, which may own state.
  const auto routes = std::make_shared<const PageRoutes>(store, options, std::move(health));
  const Gate gate = options.status_page_public ? Gate::open : Gate::read;
  router.add("/", "/", "GET", gate,
             [routes](const auto& req, auto& res, const auto&) { routes->status_page(req, res); });
  router.add(
      "/services/{id}", R"(/services/([^/]+))", "GET", gate,
      [routes](const auto&, auto& res, const auto& path) { routes->service_page(path, res); });
  for (const BadgeRoute& badge : kBadgeRoutes) {
    router.add(badge.label, badge.pattern, "GET", gate,
               [routes, badge](const auto& req, auto& res, const auto& path) {
                 routes->badge(badge.kind, badge.by_name, req, res, path);
               });
  }
}

}  // namespace vigil

#include "api/alert_routes.h"

#include <httplib.h>

#include <string>

#include "alerting/alert_views.h"
#include "alerting/alerter.h"
#include "alerting/alerting_config.h"
#include "alerting/maintenance.h"
#include "api/json_views.h"
#include "api/params.h"
#include "api/responses.h"
#include "storage/alert_store.h"

namespace vigil {
namespace {

using nlohmann::json;

class AlertRoutes {
 public:
  explicit AlertRoutes(const ApiOptions& options) : options_(options) {}

  void list_alerts(const httplib::Request& req, httplib::Response& res) const {
    AlertQuery query;
    const int limit = parse_limit(req);
    query.limit = limit + 1;
    query.active = bool_param(req, "active");
    if (const auto service_id = optional_param(req, "service_id"))
      query.service_id = parse_service_id(*service_id);
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

  void get_alert(const std::smatch& path, httplib::Response& res) const {
    const std::int64_t id = parse_positive_id(path[1].str(), "alert id");
    const auto alert = alert_store().alert(id);
    if (!alert) throw ApiError(404, "alert " + std::to_string(id) + " not found");
    json data = alert_json(*alert);
    data["notifications"] = json::array();
    for (const auto& n : alert_store().notifications(id))
      data["notifications"].push_back(notification_json(n));
    send_json(res, 200, envelope(200, json{{"alert", std::move(data)}}));
  }

  void test_alert(const httplib::Request& req, httplib::Response& res) const {
    const auto channel = optional_param(req, "channel");
    if (!channel) throw bad_request("channel is required");
    if (!options_.alerter) throw ApiError(503, "no alerter runs in this process (vigil api)");
    if (!options_.alerter->send_test(*channel))
      throw ApiError(404, "channel " + json(*channel).dump() + " not found");
    send_json(res, 202, envelope(202, json{{"channel", *channel}, {"queued", true}}));
  }

  // Maintenance windows: the services file's (read-only here) and the API's (stored).
  void list_maintenance(httplib::Response& res) const {
    const TimePoint now = now_ms();
    json windows = json::array();
    if (options_.alerting)
      for (const auto& window : options_.alerting->maintenance)
        windows.push_back(maintenance_json(window, now));
    for (const auto& window : load_maintenance_windows(alert_store()))
      windows.push_back(maintenance_json(window, now));
    send_json(res, 200, envelope(200, json{{"windows", std::move(windows)}}));
  }

  void create_maintenance(const httplib::Request& req, httplib::Response& res) const {
    const json body = body_object(req);
    const MaintenanceWindow window =
        validated([&] { return parse_maintenance_window(body, "maintenance"); });
    const TimePoint now = now_ms();
    const auto stored = store_maintenance_window(alert_store(), window, now);
    send_json(res, 201, envelope(201, json{{"window", maintenance_json(stored, now)}}));
  }

  void delete_maintenance(const std::smatch& path, httplib::Response& res) const {
    const std::int64_t id = parse_positive_id(path[1].str(), "maintenance window id");
    if (!alert_store().delete_maintenance_window(id))
      throw ApiError(404, "maintenance window " + std::to_string(id) + " not found");
    send_json(res, 200, envelope(200, json{{"id", id}, {"deleted", true}}));
  }

 private:
  AlertStore& alert_store() const {
    if (!options_.alerts) throw ApiError(503, "alerting is not available in this process");
    return *options_.alerts;
  }

  const ApiOptions& options_;
};

}  // namespace

void add_alert_routes(Router& router, const ApiOptions& options) {
  const AlertRoutes routes(options);  // holds a reference only: copied into each handler
  router.add("/v1/alerts", "/v1/alerts", "GET", Gate::read,
             [routes](const auto& req, auto& res, const auto&) { routes.list_alerts(req, res); });
  router.add("/v1/alerts/test", "/v1/alerts/test", "POST", Gate::write,
             [routes](const auto& req, auto& res, const auto&) { routes.test_alert(req, res); });
  router.add("/v1/alerts/{id}", R"(/v1/alerts/([^/]+))", "GET", Gate::read,
             [routes](const auto&, auto& res, const auto& path) { routes.get_alert(path, res); });
  router.add("/v1/maintenance", "/v1/maintenance", "GET", Gate::read,
             [routes](const auto&, auto& res, const auto&) { routes.list_maintenance(res); });
  router.add(
      "/v1/maintenance", "/v1/maintenance", "POST", Gate::write,
      [routes](const auto& req, auto& res, const auto&) { routes.create_maintenance(req, res); });
  router.add(
      "/v1/maintenance/{id}", R"(/v1/maintenance/([^/]+))", "DELETE", Gate::write,
      [routes](const auto&, auto& res, const auto& path) { routes.delete_maintenance(path, res); });
}

}  // namespace vigil

#include "api/service_routes.h"

#include <httplib.h>

#include <optional>
#include <string>
#include <vector>

#include "alerting/alerting_config.h"
#include "api/json_views.h"
#include "api/params.h"
#include "api/responses.h"
#include "config/config.h"

namespace vigil {
namespace {

using nlohmann::json;

// What a write body is called in validation messages ("service.interval_seconds: ...").
constexpr const char* kBodyName = "service";

ServiceFilter service_filter(const httplib::Request& req) {
  ServiceFilter filter;
  filter.now = now_ms();
  const auto text = [&](const char* name) -> std::optional<std::string> {
    auto value = optional_param(req, name);
    if (value && value->empty()) throw bad_request(std::string(name) + " must not be empty");
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
  if (const auto text_offset = optional_param(req, "offset")) {
    const auto offset = parse_int64(*text_offset);
    if (!offset || *offset < 0 || *offset > 1'000'000'000)
      throw bad_request("offset must be an integer, 0 or more");
    filter.offset = static_cast<int>(*offset);
  }
  return filter;
}

// Write routes answer writers: they see the URL's query values unless told otherwise.
void send_service(httplib::Response& res, int status, const ServiceView& view, bool with_push_token,
                  UrlAudience audience = UrlAudience::writer) {
  std::string data = R"({"service":)";
  append_service_json(data, view,
                      ServiceJsonOptions{.with_push_token = with_push_token, .audience = audience});
  data += '}';
  send_json_text(res, status, envelope_text(status, data));
}

ApiError file_owned(const Service& service, const std::string& what_to_do) {
  return ApiError(409, "service " + std::to_string(service.id) + " (\"" + service.spec.name +
                           "\") is managed by the services file: " + what_to_do);
}

class ServiceRoutes {
 public:
  ServiceRoutes(Store& store, const ApiOptions& options, const AccessTokens& tokens,
                PushTokenIndex& push_tokens)
      : store_(store), options_(options), tokens_(tokens), push_tokens_(push_tokens) {}

  void list(const httplib::Request& req, httplib::Response& res) const {
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
    const ServiceJsonOptions json_options{.audience = url_audience(req), .now = filter.now};
    for (std::size_t i = 0; i < views.size(); ++i) {
      if (i > 0) body += ',';
      append_service_json(body, views[i], json_options);
    }
    body += ']';
    append_next(body, next);
    body += "}}";
    append_envelope_end(body, 200);
    send_json_text(res, 200, std::move(body));
  }

  void get(const httplib::Request& req, httplib::Response& res, const std::smatch& path) const {
    const ServiceId id = parse_service_id(path[1].str());
    auto view = store_.get_service(id);
    if (!view) throw service_not_found(id);
    send_service(res, 200, *view, may_see_secrets(tokens_, credentials_of(req)), url_audience(req));
  }

  void create(const httplib::Request& req, httplib::Response& res) const {
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

  void patch(const httplib::Request& req, httplib::Response& res, const std::smatch& path) const {
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
    if (!edited) throw service_not_found(id);
    if (options_.commands) options_.commands->service_changed(*edited);
    push_tokens_.invalidate(*edited);
    auto view = store_.get_service(id);
    if (!view) throw service_not_found(id);
    send_service(res, 200, *view, true);
  }

  void remove(const httplib::Request& req, httplib::Response& res, const std::smatch& path) const {
    const ServiceId id = parse_service_id(path[1].str());
    const bool purge = bool_param(req, "purge").value_or(false);
    auto current = store_.get_service(id);
    if (!current) throw service_not_found(id);
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
      if (!store_.purge_service(id)) throw service_not_found(id);
      send_json(res, 200, envelope(200, json{{"id", id}, {"purged", true}}));
      return;
    }
    if (!store_.set_service_active(id, false, now_ms())) throw service_not_found(id);
    auto view = store_.get_service(id);
    if (!view) throw service_not_found(id);
    send_service(res, 200, *view, false);
  }

 private:
  // Query values of probe URLs are shown to writers only (core/url_redaction.h).
  UrlAudience url_audience(const httplib::Request& req) const {
    return write_access(tokens_, credentials_of(req)) == Access::allowed ? UrlAudience::writer
                                                                         : UrlAudience::reader;
  }

  Store& store_;
  const ApiOptions& options_;
  const AccessTokens& tokens_;
  PushTokenIndex& push_tokens_;
};

}  // namespace

void add_service_routes(Router& router, Store& store, const ApiOptions& options,
                        PushTokenIndex& push_tokens) {
  // Holds references only: copied into each handler.
  const ServiceRoutes routes(store, options, router.tokens(), push_tokens);
  // Ids are captured loosely ([^/]+) so that "abc" or "-1" reach the handler and get a 400
  // naming the problem instead of a 404 for an unknown route.
  router.add("/v1/services", "/v1/services", "GET", Gate::read,
             [routes](const auto& req, auto& res, const auto&) { routes.list(req, res); });
  router.add("/v1/services", "/v1/services", "POST", Gate::write,
             [routes](const auto& req, auto& res, const auto&) { routes.create(req, res); });
  router.add(
      "/v1/services/{id}", R"(/v1/services/([^/]+))", "GET", Gate::read,
      [routes](const auto& req, auto& res, const auto& path) { routes.get(req, res, path); });
  router.add(
      "/v1/services/{id}", R"(/v1/services/([^/]+))", "PATCH", Gate::write,
      [routes](const auto& req, auto& res, const auto& path) { routes.patch(req, res, path); });
  router.add(
      "/v1/services/{id}", R"(/v1/services/([^/]+))", "DELETE", Gate::write,
      [routes](const auto& req, auto& res, const auto& path) { routes.remove(req, res, path); });
}

}  // namespace vigil

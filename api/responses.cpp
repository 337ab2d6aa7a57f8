#include "api/responses.h"

#include <httplib.h>

#include <utility>

#include "api/json_views.h"

namespace vigil {

using nlohmann::json;

ApiError bad_request(const std::string& message) { return ApiError(400, message); }

ApiError service_not_found(ServiceId id) {
  return ApiError(404, "service " + std::to_string(id) + " not found");
}

std::string dump(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(dump(body), kJsonType);
}

void send_json_text(httplib::Response& res, int status, std::string body) {
  res.status = status;
  res.body = std::move(body);
  res.set_header("Content-Type", kJsonType);
}

void send_error(httplib::Response& res, int status, const std::string& message) {
  send_json(res, status, error_envelope(status, message));
}

void send_page(httplib::Response& res, int status, std::string page) {
  res.status = status;
  res.body = std::move(page);
  res.set_header("Content-Type", kHtmlType);
  res.set_header("Cache-Control", "no-cache");
}

}  // namespace vigil

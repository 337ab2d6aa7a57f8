// What every route handler answers with: the JSON envelope (api/json_views.h) as an HTTP
// response, HTML pages, and ApiError, the client error a handler throws for the router to send.
// Every function here may be called from any thread; each writes only the response it is given.
#pragma once

#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "core/config_error.h"
#include "core/model.h"
#include "storage/store.h"

namespace httplib {
struct Response;
}  // namespace httplib

namespace vigil {

inline constexpr const char* kJsonType = "application/json";
inline constexpr const char* kHtmlType = "text/html; charset=utf-8";

// A client error a handler reports with its status and message (400, 404, 409, 503): the router
// (api/router.h) answers it as the error envelope. The message is shown to the client, so it
// never carries a secret.
class ApiError : public std::runtime_error {
 public:
  ApiError(int code, const std::string& message) : std::runtime_error(message), status(code) {}
  int status;
};

// 400 with `message`, which names the parameter or field at fault.
ApiError bad_request(const std::string& message);
// 404 "service <id> not found".
ApiError service_not_found(ServiceId id);

// Compact JSON text; invalid UTF-8 (a service name, a curl error text) is replaced by U+FFFD
// rather than failing the dump, which by default throws and would turn a listing into a 500.
std::string dump(const nlohmann::json& value);

// Sets `status` and `body` (an envelope) as JSON.
void send_json(httplib::Response& res, int status, const nlohmann::json& body);
// The same for a body already rendered as JSON text: moved into the response, since httplib
// 0.11.4's set_content only copies (a 10,000-service listing is several MB).
void send_json_text(httplib::Response& res, int status, std::string body);
// The error envelope with `message`.
void send_error(httplib::Response& res, int status, const std::string& message);
// An HTML page, never cached (the status page's states change with every tick).
void send_page(httplib::Response& res, int status, std::string page);

// Runs a validation, turning its ConfigError into a 400 with the same message; returns what
// `body` returns.
template <typename Body>
auto validated(Body&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const ConfigError& e) {
    throw bad_request(e.what());
  }
}

// Runs a store write, turning its ConflictError (a name taken) into a 409; returns what `body`
// returns.
template <typename Body>
auto conflict_checked(Body&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const ConflictError& e) {
    throw ApiError(409, e.what());
  }
}

}  // namespace vigil

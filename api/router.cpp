#include "api/router.h"

#include <httplib.h>

#include <stdexcept>
#include <string_view>
#include <utility>

#include "api/json_views.h"
#include "api/params.h"
#include "api/responses.h"
#include "core/text.h"

namespace vigil {

using nlohmann::json;

namespace {

thread_local Router::RequestRecord tl_request;

}  // namespace

Router::Router(httplib::Server& server, AccessTokens tokens)
    : server_(server), tokens_(std::move(tokens)) {
  server_.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    tl_request = RequestRecord{true, std::chrono::steady_clock::now(), nullptr};
    // httplib 0.11.4 reads a body for POST/PUT/PATCH/DELETE even when none is declared, so
    // `curl -X POST` would wait out the read timeout (5 s). No length and no chunking means
    // no body: dispatch to the endpoint here (a DELETE, a push), or answer 404/405 now.
    // Declared bodies still get read (and 413 if large) and routed by httplib.
    const bool bodyless = !req.has_header("Content-Length") && !req.has_header("Transfer-Encoding");
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
}

void Router::add(const char* label, const char* pattern, const std::string& method, Gate gate,
                 RouteHandler handler, const char* free_text_param) {
  std::size_t route = 0;
  while (route < routes_.size() && std::string_view(routes_[route].label) != label) ++route;
  const std::string allow = method == "GET" ? "GET, HEAD" : method;
  if (route == routes_.size())
    routes_.push_back(Route{label, std::regex(pattern), allow});
  else
    routes_[route].allow += ", " + allow;
  const std::size_t index = endpoints_.size();
  endpoints_.push_back(Endpoint{method, route, gate, std::move(handler), free_text_param});
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

std::vector<RouteInfo> Router::routes() const {
  std::vector<RouteInfo> out;
  for (const auto& endpoint : endpoints_)
    out.push_back(RouteInfo{endpoint.method, routes_[endpoint.route].label});
  return out;
}

Router::RequestRecord Router::finish_request() { return std::exchange(tl_request, {}); }

void Router::invoke(const Endpoint& endpoint, const httplib::Request& req, httplib::Response& res,
                    const std::smatch& path) const {
  tl_request.route = routes_[endpoint.route].label;
  try {
    authorize(endpoint.gate, req);
    require_utf8(endpoint, req, path);
    endpoint.handler(req, res, path);
  } catch (const ApiError& e) {
    if (e.status == 401) res.set_header("WWW-Authenticate", "Bearer");
    send_error(res, e.status, e.what());
  }
  // Anything else reaches the exception handler: 500 with a generic message.
}

// Query and form parameters and path segments reach a handler percent-decoded (%FF is the byte
// 0xFF); they name things (a channel, a cursor, an id), so one that is not valid UTF-8 is a 400
// naming it, here for every route, before any handler quotes or stores it. Free text (a push's
// msg) is cleaned by its handler instead: a job's output must not lose a beat.
void Router::require_utf8(const Endpoint& endpoint, const httplib::Request& req,
                          const std::smatch& path) const {
  for (const auto& [name, value] : req.params) {
    if (!is_valid_utf8(name))
      throw bad_request("query parameter " + dump(json(valid_utf8(name))) +
                        ": name is not valid UTF-8");
    if (endpoint.free_text_param && name == endpoint.free_text_param) continue;
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

// Throws 401/403 unless the caller may pass `gate`. Never says which token was expected.
void Router::authorize(Gate gate, const httplib::Request& req) const {
  if (gate == Gate::open) return;
  const Access access = gate == Gate::write ? write_access(tokens_, credentials_of(req))
                                            : read_access(tokens_, credentials_of(req));
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

const Router::Route* Router::match_route(const std::string& path) const {
  for (const auto& route : routes_)
    if (std::regex_match(path, route.pattern)) return &route;
  return nullptr;
}

bool Router::allows(const Route& route, const std::string& method) const {
  const std::string wanted = method == "HEAD" ? "GET" : method;
  for (const auto& endpoint : endpoints_)
    if (&routes_[endpoint.route] == &route && endpoint.method == wanted) return true;
  return false;
}

// httplib calls this for every response with status >= 400, including the ones a route already
// answered; only responses without a body (httplib's own 404/400/413...) get one.
bool Router::on_error(const httplib::Request& req, httplib::Response& res) const noexcept {
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
        send_error(res, 413,
                   "request body too large (limit " + std::to_string(kMaxBodyBytes) + " bytes)");
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

}  // namespace vigil

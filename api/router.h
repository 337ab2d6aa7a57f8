// Router: the API's route table on an httplib server. The route groups (api/*_routes.h) add
// their endpoints to it; for each request it
//   - runs the endpoint's gate (api/auth.h): 401 without a needed token, 403 with a wrong one;
//   - refuses query parameters and path segments that are not valid UTF-8 (400 naming them);
//   - calls the handler, and answers an ApiError it throws (api/responses.h) as the error
//     envelope; other exceptions go on to the server's exception handler (500);
//   - answers 405 (with Allow) for a wrong method on a known path, 404 for an unknown path, and
//     gives httplib's own errors (413, 400) the envelope body.
// Registration (the constructor, add) happens before the server starts, on one thread; requests
// are then dispatched on the server's pool threads, which only read the table.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <regex>
#include <string>
#include <vector>

#include "api/auth.h"
#include "api/server.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace vigil {

// The largest request body accepted (413 past it).
inline constexpr std::size_t kMaxBodyBytes = 64 * 1024;

// Who may call an endpoint: anyone, readers (API_READ_TOKEN when it is set), writers.
enum class Gate { open, read, write };

// Answers one request; `path` holds the pattern's captures. Throws ApiError for a client error.
using RouteHandler =
    std::function<void(const httplib::Request&, httplib::Response&, const std::smatch& path)>;

class Router {
 public:
  // Installs the router as `server`'s pre-routing and error handler. `server` must outlive it.
  Router(httplib::Server& server, AccessTokens tokens);
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  // Serves `method` (GET, which also answers HEAD; POST, PATCH or DELETE) on the paths that
  // match the regex `pattern` as a whole. `label` is the path template ("/v1/services/{id}"):
  // api/openapi.json documents the route under it, and it is the route label of the request
  // metrics; its {placeholders} name the pattern's captures in order. Every query parameter must
  // be valid UTF-8 except `free_text_param`, which the handler cleans itself. Routes are matched
  // in the order they were added. Throws std::logic_error for another method.
  void add(const char* label, const char* pattern, const std::string& method, Gate gate,
           RouteHandler handler, const char* free_text_param = nullptr);

  // Every endpoint, in the order added.
  std::vector<RouteInfo> routes() const;

  // The tokens the gates check (handlers ask them what a caller may see).
  const AccessTokens& tokens() const { return tokens_; }

  // What routing learned of one request, for the request metrics and log.
  struct RequestRecord {
    bool started = false;  // false: the request never reached routing (malformed)
    std::chrono::steady_clock::time_point start;
    const char* route = nullptr;  // the label of the route it matched, or null
  };
  // The record of the request the calling thread has just answered, which is reset for the
  // next. For the server's logger hook: httplib runs pre-routing, the handler, the error handler
  // and the logger of one request one after another on the same pool thread.
  static RequestRecord finish_request();

 private:
  // One route pattern: its label, how to recognise its paths (to tell 405 on a known path from
  // 404 on an unknown one) and the methods it allows.
  struct Route {
    const char* label;
    std::regex pattern;
    std::string allow;  // "GET, HEAD, POST"
  };
  // One method of one route.
  struct Endpoint {
    std::string method;  // GET (also serves HEAD), POST, PATCH, DELETE
    std::size_t route;   // index in routes_
    Gate gate;
    RouteHandler handler;
    const char* free_text_param;  // or null
  };

  void invoke(const Endpoint& endpoint, const httplib::Request& req, httplib::Response& res,
              const std::smatch& path) const;
  void require_utf8(const Endpoint& endpoint, const httplib::Request& req,
                    const std::smatch& path) const;
  void authorize(Gate gate, const httplib::Request& req) const;
  const Route* match_route(const std::string& path) const;
  bool allows(const Route& route, const std::string& method) const;
  // Returns whether it wrote the body.
  bool on_error(const httplib::Request& req, httplib::Response& res) const noexcept;

  httplib::Server& server_;
  const AccessTokens tokens_;
  std::vector<Route> routes_;
  std::vector<Endpoint> endpoints_;
};

}  // namespace vigil

// Reading a request: path ids, query parameters, times, the paging parameters (api/paging.h)
// and JSON bodies, each turned into a value or an ApiError 400 (api/responses.h) whose message
// names the parameter. Pure functions of the request; any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/auth.h"
#include "api/paging.h"
#include "core/model.h"

namespace httplib {
struct Request;
}  // namespace httplib

namespace vigil {

// The whole of `text` as one decimal integer (an optional '-', no '+', no spaces), or empty.
std::optional<std::int64_t> parse_int64(std::string_view text);

// An id from the path or the query: 400 "<what> must be a positive integer" unless it is one.
std::int64_t parse_positive_id(std::string_view text, const char* what);
// parse_positive_id for a service ("service id").
ServiceId parse_service_id(std::string_view text);

// Query (or form) parameter `name` as sent, or empty when the request does not have it.
std::optional<std::string> optional_param(const httplib::Request& req, const char* name);
// "true" or "false", or empty when absent; 400 "<name> must be true or false" otherwise.
std::optional<bool> bool_param(const httplib::Request& req, const char* name);

// A non-negative unix time in seconds with an optional decimal fraction ("1700000000",
// "1700000000.25"), kept exact so from/to compare without float rounding.
struct UnixSeconds {
  std::int64_t seconds = 0;
  std::string fraction;  // digits after the point, trailing zeros removed

  // Milliseconds rounded toward the inside of a [from, to] range: up for from, down for to, so
  // an inclusive bound never admits an item outside what the client asked for.
  std::int64_t floor_ms() const;
  std::int64_t ceil_ms() const;

  friend bool operator<(const UnixSeconds& a, const UnixSeconds& b) {
    // Digit strings without trailing zeros order like the fractions they spell.
    return a.seconds != b.seconds ? a.seconds < b.seconds : a.fraction < b.fraction;
  }
};

// Parameter `name` as a UnixSeconds, or empty when absent; 400 "<name> must be a non-negative
// unix time in seconds" when it is not one.
std::optional<UnixSeconds> time_param(const httplib::Request& req, const char* name);

// `limit` (paging::parse_limit), a BadParam turned into a 400.
int parse_limit(const httplib::Request& req);
// The position `cursor` names in `list` of `scope` (paging::parse_cursor), or empty without
// one; a BadParam turned into a 400. `older` is the list's own older parameter (offset,
// before), which says where to start too and so cannot be combined with a cursor (400).
std::optional<paging::Key> parse_cursor(const httplib::Request& req, paging::List list,
                                        std::int64_t scope, const char* older = nullptr);

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
void append_next(std::string& out, const std::optional<std::string>& next);

// A write body: a JSON object, or a 400 saying what is wrong with it. It is read by the services
// file's rules (core/json_input.h): a key given twice or nesting past the bound is refused.
nlohmann::json body_object(const httplib::Request& req);

// The caller's Authorization header and address, as api/auth.h judges them; views into `req`.
Credentials credentials_of(const httplib::Request& req);

}  // namespace vigil

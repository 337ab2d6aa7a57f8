#include "api/history_routes.h"

#include <httplib.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "api/json_views.h"
#include "api/params.h"
#include "api/responses.h"

namespace vigil {
namespace {

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

// {"<name>":{"data":[items],"next":cursor|null}} in the envelope.
template <typename T>
void send_list(httplib::Response& res, const char* name, const std::vector<T>& items,
               void (*append)(std::string&, const T&), const std::optional<std::string>& next) {
  std::string data = std::string(R"({")") + name + R"(":{"data":)";
  append_list(data, items, append);
  append_next(data, next);
  data += "}}";
  send_json_text(res, 200, envelope_text(200, data));
}

void list_events(Store& store, const httplib::Request& req, httplib::Response& res,
                 const std::smatch& path) {
  const ServiceId id = parse_service_id(path[1].str());
  const int limit = parse_limit(req);
  std::optional<std::int64_t> before;
  if (const auto text = optional_param(req, "before")) {
    before = parse_int64(*text);
    if (!before || *before < 1) throw bad_request("before must be a positive event id");
  }
  // Events are newest first by id, so the cursor's key is the `before` of the next page.
  if (const auto after = parse_cursor(req, paging::List::events, id, "before")) before = after->id;
  std::vector<Event> events = store.events(id, limit + 1, before);
  // Events only exist for existing services, so the existence query is needed only when
  // the page is empty.
  if (events.empty() && !store.get_service(id)) throw service_not_found(id);
  const auto next = trim_page(events, limit, paging::List::events, id, [](const Event& e) {
    return paging::Key{0, e.id};
  });
  send_list(res, "events", events, &append_event_json, next);
}

void list_ticks(Store& store, const httplib::Request& req, httplib::Response& res,
                const std::smatch& path) {
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
  if (!(query.from && query.to && *query.from > *query.to)) ticks = store.ticks(id, query);
  if (ticks.empty() && !store.get_service(id)) throw service_not_found(id);
  const auto next = trim_page(ticks, limit, paging::List::ticks, id, [](const Tick& t) {
    return paging::Key{to_unix_ms(t.ts), t.seq};
  });
  send_list(res, "ticks", ticks, &append_tick_json, next);
}

}  // namespace

void add_history_routes(Router& router, Store& store) {
  router.add("/v1/services/{id}/events", R"(/v1/services/([^/]+)/events)", "GET", Gate::read,
             [&store](const auto& req, auto& res, const auto& path) {
               list_events(store, req, res, path);
             });
  router.add("/v1/services/{id}/ticks", R"(/v1/services/([^/]+)/ticks)", "GET", Gate::read,
             [&store](const auto& req, auto& res, const auto& path) {
               list_ticks(store, req, res, path);
             });
}

}  // namespace vigil

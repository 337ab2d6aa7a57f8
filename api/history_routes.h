// A service's history, newest first, paged alike (api/paging.h):
//   GET /v1/services/{id}/events  state changes; pages in data.events.next (older: &before=<event
//                                 id>, not with cursor)
//   GET /v1/services/{id}/ticks   probe results; ?from=&to= (unix seconds, inclusive, may have a
//                                 decimal fraction; kept as filters with a cursor); pages in
//                                 data.ticks.next
// 404 for an unknown service, 400 naming a bad parameter.
#pragma once

#include "api/router.h"
#include "storage/store.h"

namespace vigil {

// Adds the routes to `router`. `store` must outlive it; the handlers run on the server's pool
// threads.
void add_history_routes(Router& router, Store& store);

}  // namespace vigil

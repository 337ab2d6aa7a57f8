// The service routes: list, read, create, update, deactivate or reactivate, and delete services.
//   GET /v1/services, POST /v1/services, GET|PATCH|DELETE /v1/services/{id}
// (shapes and errors in api/server.h). Writes go to the Store, then to the runner of this
// process (ApiOptions::commands) and the push-token cache.
#pragma once

#include "api/push_tokens.h"
#include "api/router.h"
#include "api/server.h"
#include "storage/store.h"

namespace vigil {

// Adds the routes to `router`. `store`, `options` and `push_tokens` must outlive it; the
// handlers run on the server's pool threads.
void add_service_routes(Router& router, Store& store, const ApiOptions& options,
                        PushTokenIndex& push_tokens);

}  // namespace vigil

// The heartbeat push route: GET|HEAD|POST /v1/push/{token}[/fail] records a beat of the heartbeat
// whose push token is in the path (the token is the credential: cron jobs carry no other).
// ?status=up|down &msg= &duration_ms=, also as a form or a JSON object body. 200 "OK"; 404 for
// an unknown token, with nothing written; 400 naming a bad parameter; 503 when `vigil api` finds
// too many beats waiting for the runner process.
#pragma once

#include "api/commands.h"
#include "api/push_tokens.h"
#include "api/router.h"
#include "storage/store.h"

namespace vigil {

// Adds the route to `router`. A beat goes to `commands` (the runner of this process), or, when
// it is null (`vigil api`), is queued in `store` for the runner process. `store`, `commands` and
// `push_tokens` must outlive the router; the handler runs on the server's pool threads.
void add_push_routes(Router& router, Store& store, ServiceCommands* commands,
                     PushTokenIndex& push_tokens);

}  // namespace vigil

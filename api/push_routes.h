// The heartbeat push route: GET|HEAD|POST /v1/push/{token}[/fail] records a beat of the heartbeat
// whose push token is in the path (the token is the credential: cron jobs carry no other).
// ?status=up|down &msg= &duration_ms=, also as a form or a JSON object body. 200 "OK" once the
// beat is committed (a crash after it loses nothing): under `vigil run` once the tick it became
// is committed by the writer, under `vigil api` once it is queued in the database for the
// runner process. 404 for an unknown token, with nothing written; 400 naming a bad parameter;
// 503 when `vigil api` finds too many beats waiting for the runner process, or when the beat is
// not committed within kApiWriteWait (storage failing or stuck; the writer keeps retrying, so
// the tick may still be stored later) or was dropped (a full write queue, a stopping vigil).
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

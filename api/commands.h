// ServiceCommands: what the API hands the runner of its own process (`vigil run`), so that a
// write or a pushed beat takes effect at once. Implemented in main.cpp by forwarding to Runner;
// absent under `vigil api`, where the runner process follows the database instead (ChangeFeed).
// Every call only queues: it never blocks on the runner.
#pragma once

#include "core/commit.h"
#include "core/model.h"

namespace vigil {

class ServiceCommands {
 public:
  virtual ~ServiceCommands() = default;
  // Created, updated, deactivated or reactivated. An inactive service is no longer probed but
  // the runner keeps its state, so a reactivation continues its history.
  virtual void service_changed(const Service& service) = 0;
  // About to be purged: the runner drops the service and its state.
  virtual void service_purged(ServiceId id) = 0;
  // A report pushed for heartbeat `id`, whose push token the API has checked. Returns at once
  // the future of its tick (Runner::record_beat): the push is answered 200 only once that is
  // `committed`.
  virtual CommitFuture beat(ServiceId id, const BeatReport& beat) = 0;
  // Whether this process's runner watches heartbeat `id` now. In a cluster another member may
  // (storage/cluster.h): the API then queues the beat in the database for it, as under
  // `vigil api`, instead of calling beat().
  virtual bool watches(ServiceId id) const = 0;
};

}  // namespace vigil

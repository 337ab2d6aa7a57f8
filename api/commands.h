// ServiceCommands: what the API hands the runner of its own process (`vigil run`), so that a
// write or a pushed beat takes effect at once. Implemented in main.cpp by forwarding to Runner;
// absent under `vigil api`, where the runner process follows the database instead (ChangeFeed).
// Every call only queues: it never blocks on the runner.
#pragma once

#include "storage/model.h"

namespace vigil {

class ServiceCommands {
 public:
  virtual ~ServiceCommands() = default;
  // Created or updated, already stored. An inactive service is removed from the runner.
  virtual void service_changed(const Service& service) = 0;
  // Deactivated or about to be purged.
  virtual void service_removed(ServiceId id) = 0;
  // A report pushed for heartbeat `id`, whose push token the API has checked.
  virtual void beat(ServiceId id, const BeatReport& beat) = 0;
};

}  // namespace vigil

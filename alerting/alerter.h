// Alerter: turns a service's transitions into alerts and delivers their notifications.
//
// The runner hands it every tick record (on_tick: only queues, never blocks, never does I/O on
// the runner thread). Its own thread then, for a record that opens a downtime event, opens an
// alert and records one pending notification per routed channel in one transaction, and for one
// that opens an uptime event closes the alert with its resolves; only then does it deliver, with
// its own curl multi handle, so a crash between "down detected" and "receiver told" leaves a
// pending row that the next start delivers. At start it also reconciles the alerts with the
// stored events (a downtime that began while the Alerter was not running still alerts).
//
// Delivery: each notification is tried, and on a failure (no answer within request_timeout, a
// non-2xx status, a channel's own refusal) tried again after backoff[0], backoff[1], ... and
// given up (recorded failed) after the last. Outcomes are counted in
// vigil_notifications_total{channel,result="sent"|"retry"|"failed"}.
//
// Noise control: a muted service (muted, or snoozed until a time not yet reached) or one inside
// a maintenance window (the services file's, or one created through the API: those are read
// from the database at every check, so they apply without a restart) gets its alerts and
// notifications recorded as suppressed; if it is still down when the mute or window ends, one
// trigger goes out then. Alerts go to the service's own channels, else its team's, else the
// default (route_for); reminders every repeat_for while the alert stays active, each one
// incrementing alert_cycle.
//
// Failures: a step that fails (the database busy or locked past its timeout, a bad row) never
// drops a status change. It is logged, counted in vigil_alerting_errors_total{stage} (stages
// status_change, reconcile, check, delivery, record) and tried again: a status change at every
// check_interval until it succeeds (later changes of the same service wait behind it, in order);
// the reconcile at start likewise; a reminder or delivery step at its next round. A delivery
// whose outcome could not be stored stays pending and is sent again (at least once). Status
// changes still waiting at stop() are found again by the next start's reconcile.
//
// previous_status: a trigger carries the status before the downtime, the last this Alerter saw
// for the service or else the newest stored event before it (so also the first transition after
// a start), and none when the service had no status yet; reminders and resolves carry "down".
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "alerting/alerting_config.h"
#include "core/model.h"
#include "storage/alert_store.h"
#include "storage/store.h"

namespace prometheus {
class Registry;
}

namespace vigil {

struct AlerterOptions {
  // Delay before the 2nd, 3rd, ... attempt; after the last delay's attempt fails, give up.
  std::vector<Millis> backoff{Millis(1'000), Millis(5'000), Millis(30'000), Millis(120'000),
                              Millis(600'000)};
  Millis request_timeout{10'000};
  std::size_t max_in_flight = 32;
  // The clock for mutes, snoozes and reminders (tests inject one). Tick times come from ticks.
  std::function<TimePoint()> clock = now_ms;
  // How often mutes and reminders are re-checked.
  Millis check_interval{1'000};
  // In a cluster (storage/cluster.h): the shards whose services this process watches now
  // (Runner::shards). Reminders, late triggers, the reconcile with stored events and deliveries
  // then cover only their alerts (and the channel tests of those shards, AlertStore::due), so
  // each is decided and sent by one member. Empty: every service.
  std::function<std::vector<int>()> shards = {};
};

class Alerter {
 public:
  // Owns `store`, its own connection to the alerts (Database::open_alert_store). `services` (to
  // read a service's name, team, mute...) and `registry` must outlive the Alerter.
  Alerter(std::unique_ptr<AlertStore> store, Store& services, AlertingConfig config,
          prometheus::Registry& registry, AlerterOptions options = {});
  ~Alerter();  // stop()
  Alerter(const Alerter&) = delete;
  Alerter& operator=(const Alerter&) = delete;

  // Reconciles with the stored events (when that fails, the thread tries again), then starts
  // the thread. Once.
  void start();
  // A tick record from the runner; only one that opens an event matters. Never blocks.
  void on_tick(const TickRecord& record);
  // Reconciles with the stored events again at the next check: for a cluster member whose runner
  // took shards over (a downtime that began while their last watcher was dying still alerts).
  // Any thread.
  void reconcile_again();
  // Queues a test notification to `channel`; false when there is no such channel.
  bool send_test(const std::string& channel);
  // Stops the thread; deliveries in flight are abandoned (they stay pending and are tried
  // again at the next start). Idempotent.
  void stop();
  // Blocks until every record queued before the call has been turned into alert rows, or has
  // failed a step and waits to be tried again (for tests and shutdown).
  void flush();

  // When the thread last took its queue of status changes and finished handling them (it
  // does so at least once a second), by options.clock; start() time before that. A thread stuck
  // in a handler (a database locked for long) does not move it; /healthz reads it. Any thread.
  TimePoint last_progress() const;

  AlertStore& store();

 private:
  class Loop;
  std::unique_ptr<Loop> loop_;
};

}  // namespace vigil

#include "alerting/alerter.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <map>
#include <mutex>
#include <set>

#include "alerting/channel.h"
#include "core/logging.h"
#include "core/shards.h"
#include "core/text.h"
#include "core/url_redaction.h"
#include "runner/curl_handles.h"

namespace vigil {
namespace {

constexpr std::size_t kMaxResponseBytes = 64 * 1024;
constexpr Millis kMaxWait{1'000};

// The steps counted in vigil_alerting_errors_total{stage}; each one is tried again later.
constexpr const char* kStageStatusChange = "status_change";  // opening or closing an alert
constexpr const char* kStageReconcile = "reconcile";         // matching alerts to stored events
constexpr const char* kStageCheck = "check";                 // a late trigger or a reminder
constexpr const char* kStageDelivery = "delivery";           // reading and starting due sends
constexpr const char* kStageRecord = "record";               // storing a delivery's outcome
constexpr const char* kStages[] = {kStageStatusChange, kStageReconcile, kStageCheck, kStageDelivery,
                                   kStageRecord};

struct StatusEvent {
  ServiceId service = 0;
  EventKind kind = EventKind::uptime;
  TimePoint at;
  std::string reason;
};

std::string reason_of(const Tick& tick) {
  if (!tick.error.empty()) return tick.error;
  if (tick.status_code) return "HTTP " + std::to_string(*tick.status_code);
  return tick.up ? "up" : "down";
}

std::int64_t seconds_between(TimePoint from, TimePoint to) {
  return std::max<std::int64_t>(0, (to_unix_ms(to) - to_unix_ms(from)) / 1000);
}

std::size_t collect_body(char* data, std::size_t size, std::size_t count, void* target) {
  auto& body = *static_cast<std::string*>(target);
  const std::size_t bytes = size * count;
  if (body.size() < kMaxResponseBytes)
    body.append(data, std::min(bytes, kMaxResponseBytes - body.size()));
  return bytes;
}

}  // namespace

class Alerter::Loop {
 public:
  Loop(std::unique_ptr<AlertStore> store, Store& services, AlertingConfig config,
       prometheus::Registry& registry, AlerterOptions options)
      : store_holder_(std::move(store)),
        store_(*store_holder_),
        services_(services),
        config_(std::move(config)),
        options_(std::move(options)),
        notifications_total_(prometheus::BuildCounter()
                                 .Name("vigil_notifications_total")
                                 .Help("Alert notification deliveries by channel and result "
                                       "(sent, retry: failed and tried again later, failed: "
                                       "given up)")
                                 .Register(registry)),
        errors_total_(prometheus::BuildCounter()
                          .Name("vigil_alerting_errors_total")
                          .Help("Alerting steps that failed (a busy or locked database, a bad "
                                "row) by stage; each is tried again at the next check")
                          .Register(registry)) {
    for (const char* stage : kStages) errors_total_.Add({{"stage", stage}});  // visible at 0
    for (const auto& [name, channel] : config_.channels) channels_.emplace(name, channel.channel);
    ensure_curl_global_init();
    multi_.reset(curl_multi_init());
    if (!multi_) throw std::runtime_error("alerting: cannot initialise libcurl");
  }

  ~Loop() { stop(); }

  void start() {
    last_progress_ms_ = to_unix_ms(options_.clock());
    // A database busy at start must not stop the process: the thread tries again.
    reconciled_ =
        guard(kStageReconcile, "reconciling with the stored events", [&] { reconcile(); });
    thread_ = std::thread([this] { run(); });
  }

  void on_tick(const TickRecord& record) {
    if (!record.opens_event) return;
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
      queue_.push_back(StatusEvent{record.tick.service_id, *record.opens_event, record.tick.ts,
                                   reason_of(record.tick)});
      ++queued_;
    }
    curl_multi_wakeup(multi_.get());
  }

  bool send_test(const std::string& channel) {
    if (!channels_.contains(channel)) return false;
    const TimePoint now = options_.clock();
    AlertMessage message;
    message.kind = "test";
    message.service = "vigil";
    message.status = "down";
    message.since = to_unix_seconds(now);
    message.reason = "test notification";
    message.external_reference_id = "vigil-test-" + std::to_string(to_unix_ms(now));
    store_.add_notifications(std::nullopt, now,
                             {NewNotification{channel, "test", message.to_json().dump(), false}});
    curl_multi_wakeup(multi_.get());
    return true;
  }

  void reconcile_again() { reconcile_requested_ = true; }

  void flush() {
    std::unique_lock lock(mutex_);
    const std::uint64_t target = queued_;
    handled_cv_.wait(lock, [&] { return handled_ >= target || finished_; });
  }

  void stop() {
    {
      std::lock_guard lock(mutex_);
      if (stopping_ && !thread_.joinable()) return;
      stopping_ = true;
    }
    if (multi_) curl_multi_wakeup(multi_.get());
    if (thread_.joinable()) thread_.join();
    for (auto& [easy, transfer] : in_flight_) curl_multi_remove_handle(multi_.get(), easy);
    in_flight_.clear();
    {
      std::lock_guard lock(mutex_);
      finished_ = true;  // flush() never waits on a thread that is not there
    }
    handled_cv_.notify_all();
  }

  AlertStore& store() { return store_; }
  TimePoint last_progress() const { return from_unix_ms(last_progress_ms_.load()); }

 private:
  struct Transfer {
    NotificationRecord notification;
    const Channel* channel = nullptr;
    CurlEasyPtr easy;
    CurlSlistPtr headers;
    std::string response;
  };

  void run() {
    TimePoint next_check{};
    for (;;) {
      std::deque<StatusEvent> events;
      bool stopping = false;
      {
        std::lock_guard lock(mutex_);
        events.swap(queue_);
        stopping = stopping_;
      }
      handle_in_order(events);
      {
        std::lock_guard lock(mutex_);
        handled_ += events.size();
        if (stopping) finished_ = true;
      }
      last_progress_ms_ = to_unix_ms(options_.clock());
      handled_cv_.notify_all();
      if (stopping) return;

      const TimePoint now = options_.clock();
      if (now >= next_check) {
        if (reconcile_requested_.exchange(false)) reconciled_ = false;
        if (!reconciled_)
          reconciled_ =
              guard(kStageReconcile, "reconciling with the stored events", [&] { reconcile(); });
        retry_status_changes();
        guard(kStageCheck, "checking mutes and reminders", [&] { check_active_alerts(now); });
        next_check = now + options_.check_interval;
      }
      guard(kStageDelivery, "starting deliveries", [&] { start_due(now); });
      int running = 0;
      curl_multi_perform(multi_.get(), &running);
      finish_done();

      Millis wait = std::min(kMaxWait, options_.check_interval);
      guard(kStageDelivery, "reading the next delivery", [&] {
        if (const auto due = store_.next_due(shards());
            due && in_flight_.size() < options_.max_in_flight)
          wait = std::clamp(std::chrono::duration_cast<Millis>(*due - options_.clock()), Millis(1),
                            wait);
      });
      curl_multi_poll(multi_.get(), nullptr, 0, static_cast<int>(wait.count()), nullptr);
    }
  }

  // One bad row or a busy database must not stop alerting: log, count, go on; the caller
  // tries the step again later. Whether `body` succeeded.
  template <typename F>
  bool guard(const char* stage, const char* what, F&& body) {
    try {
      body();
      return true;
    } catch (const std::exception& e) {
      errors_total_.Add({{"stage", stage}}).Increment();
      log_error(std::string("alerting: ") + what + ": " + e.what() + "; trying again");
      return false;
    }
  }

  // Status changes in order, per service: one that fails waits in retry_, and so does every
  // later one of its service (a recovery must not be handled before the outage it ends).
  void handle_in_order(const std::deque<StatusEvent>& events) {
    std::set<ServiceId> waiting;
    for (const auto& event : retry_) waiting.insert(event.service);
    for (const auto& event : events) {
      if (waiting.contains(event.service) ||
          !guard(kStageStatusChange, "handling a status change", [&] { handle(event); })) {
        retry_.push_back(event);
        waiting.insert(event.service);
      }
    }
  }

  // At every check: the status changes that failed, again, until they succeed (or stop():
  // then the next start's reconcile finds them in the stored events).
  void retry_status_changes() {
    if (retry_.empty()) return;
    std::deque<StatusEvent> again;
    again.swap(retry_);
    handle_in_order(again);
  }

  AlertMessage message_for(const Service& service, const AlertRecord& alert,
                           const std::string& kind, TimePoint at) const {
    AlertMessage m;
    m.kind = kind;
    m.service = service.spec.name;
    m.service_id = service.id;
    const bool resolve = kind == "resolve";
    m.status = resolve ? "up" : "down";
    // A trigger reports the change from the status before (none: the first probe was down); a
    // reminder and a resolve follow a down status.
    m.previous_status =
        kind == "trigger" ? alert.previous_status : std::optional<std::string>("down");
    m.since = to_unix_seconds(resolve ? at : alert.created_date);
    m.duration_s = seconds_between(alert.created_date, at);
    // Reasons are made valid UTF-8 where they enter (probes, pushes); an alert or tick stored by
    // an older vigil may not be, and must not cost the notification (the dump would throw).
    m.reason = resolve ? "up again" : valid_utf8(alert.reason);
    m.url = redact_url(service.spec.url, UrlAudience::reader);  // for third parties
    m.team = service.spec.team;
    m.priority = service.spec.priority;
    m.runbook = service.spec.runbook;
    m.alert_id = alert.alert_id;
    m.alert_cycle = alert.alert_cycle;
    m.external_reference_id = alert.external_reference_id;
    return m;
  }

  // Muted, snoozed or inside a maintenance window (of the services file, or of the API as last
  // read by refresh_windows): record, do not send.
  bool silenced(const ServiceSpec& spec, TimePoint now) const {
    return spec.muted_at(now) || in_maintenance(config_.maintenance, spec, now) ||
           in_maintenance(api_windows_, spec, now);
  }

  // Windows created through the API, possibly by another process (`vigil api`): read again
  // before each decision, so one takes effect without a restart.
  void refresh_windows() { api_windows_ = load_maintenance_windows(store_); }

  // The status of `service` before the event at `at`: the last one this Alerter saw, else the
  // newest stored event begun before `at` (the writer may or may not have stored this one yet).
  std::optional<EventKind> status_before(ServiceId service, TimePoint at) {
    if (const auto seen = last_kind_.find(service); seen != last_kind_.end()) return seen->second;
    for (const auto& stored : services_.events(service, 5, std::nullopt))
      if (stored.date_started < at) return stored.kind;
    return std::nullopt;
  }

  // Channels that were really told about this alert (a trigger or reminder not suppressed).
  std::set<std::string> told_channels(std::int64_t alert_id) {
    std::set<std::string> told;
    for (const auto& n : store_.notifications(alert_id))
      if ((n.kind == "trigger" || n.kind == "repeat") && n.status != NotificationStatus::suppressed)
        told.insert(n.channel);
    return told;
  }

  void handle(const StatusEvent& event) {
    const auto view = services_.get_service(event.service);
    if (!view) return;  // purged meanwhile
    const Service& service = view->service;
    const auto before = status_before(service.id, event.at);
    const auto active = store_.active_alert(service.id);
    if (event.kind == EventKind::downtime && !active)
      open(service, event, before);
    else if (event.kind == EventKind::uptime && active)
      close(service, *active, event.at);
    // Only once handled: a retry must see the status before the change again.
    last_kind_[service.id] = event.kind;
  }

  void open(const Service& service, const StatusEvent& event, std::optional<EventKind> before) {
    refresh_windows();
    const bool muted = silenced(service.spec, options_.clock());
    const auto route = route_for(config_, service.spec);
    std::optional<std::string> previous;
    if (before) previous = before == EventKind::uptime ? "up" : "down";
    store_.open_alert(service.id, service.spec.name + " down", event.reason, previous, event.at,
                      [&](const AlertRecord& alert) {
                        std::vector<NewNotification> out;
                        const auto payload =
                            message_for(service, alert, "trigger", event.at).to_json().dump();
                        for (const auto& channel : route)
                          out.push_back(NewNotification{channel, "trigger", payload, muted});
                        return out;
                      });
    log_info("alerting: " + service.spec.name + " down, alert opened" +
             (muted ? " (muted: not notified)" : ""));
  }

  void close(const Service& service, const AlertRecord& active, TimePoint at) {
    refresh_windows();
    const auto told = told_channels(active.alert_id);
    const bool muted = silenced(service.spec, options_.clock());
    const auto route = route_for(config_, service.spec);
    store_.close_alert(active.alert_id, at, [&](const AlertRecord& alert) {
      std::vector<NewNotification> out;
      const auto payload = message_for(service, alert, "resolve", at).to_json().dump();
      for (const auto& channel : route)
        out.push_back(
            NewNotification{channel, "resolve", payload, muted || !told.contains(channel)});
      return out;
    });
    log_info("alerting: " + service.spec.name + " up, alert " + std::to_string(active.alert_id) +
             " closed");
  }

  // Every check_interval: an alert whose mute has ended while the service is still down sends
  // its trigger now; channels with repeat_every remind.
  void check_active_alerts(TimePoint now) {
    // Without channels no alert can be told or reminded; the check would only read every
    // active alert's service and notifications each second (50,000 reads a second with 5 % of
    // 1,000,000 services down).
    if (config_.empty()) return;
    refresh_windows();
    const auto watched = shards();
    for (const auto& alert : store_.active_alerts())
      if (watches(watched, alert.service_id))
        guard(kStageCheck, "checking an alert", [&] { check_alert(alert, now); });
  }

  // A late trigger or the reminders of one active alert.
  void check_alert(const AlertRecord& alert, TimePoint now) {
    const auto view = services_.get_service(alert.service_id);
    if (!view || silenced(view->service.spec, now)) return;
    const Service& service = view->service;
    const auto notifications = store_.notifications(alert.alert_id);
    std::vector<std::string> untold;
    std::vector<std::string> remind;
    for (const auto& channel : route_for(config_, service.spec)) {
      std::optional<TimePoint> last_told;
      for (const auto& n : notifications)
        if (n.channel == channel && (n.kind == "trigger" || n.kind == "repeat") &&
            n.status != NotificationStatus::suppressed)
          last_told = n.created_at;
      const auto repeat = repeat_for(config_, service.spec, channel);
      if (!last_told)
        untold.push_back(channel);
      else if (repeat && now - *last_told >= *repeat)
        remind.push_back(channel);
    }
    if (!untold.empty()) {
      store_.add_notifications(alert.alert_id, now, [&] {
        std::vector<NewNotification> out;
        const auto payload = message_for(service, alert, "trigger", now).to_json().dump();
        for (const auto& channel : untold)
          out.push_back(NewNotification{channel, "trigger", payload, false});
        return out;
      }());
    }
    if (!remind.empty()) {
      store_.next_cycle(alert.alert_id, now, [&](const AlertRecord& next) {
        std::vector<NewNotification> out;
        const auto payload = message_for(service, next, "repeat", now).to_json().dump();
        for (const auto& channel : remind)
          out.push_back(NewNotification{channel, "repeat", payload, false});
        return out;
      });
    }
  }

  // The shards this member watches (AlerterOptions::shards); nothing: every service.
  std::optional<std::vector<int>> shards() const {
    if (!options_.shards) return std::nullopt;
    return options_.shards();
  }
  static bool watches(const std::optional<std::vector<int>>& watched, ServiceId id) {
    return !watched || std::binary_search(watched->begin(), watched->end(), shard_of(id));
  }

  // At start: what the events say and the alerts do not (a downtime begun, or ended, while no
  // Alerter was running) becomes a queued status change, handled first by the thread.
  void reconcile() {
    std::deque<StatusEvent> found;
    std::set<ServiceId> listed;
    const auto watched = shards();
    for (const auto& view : services_.list_services()) {
      listed.insert(view.service.id);
      if (!view.open_event || !watches(watched, view.service.id)) continue;
      const auto active = store_.active_alert(view.service.id);
      if (view.open_event->kind == EventKind::downtime && !active) {
        std::string reason = "down";
        TickQuery newest;
        newest.limit = 1;
        const auto last = services_.ticks(view.service.id, newest);
        if (!last.empty()) reason = reason_of(last.front());
        found.push_back(StatusEvent{view.service.id, EventKind::downtime,
                                    view.open_event->date_started, reason});
      } else if (view.open_event->kind == EventKind::uptime && active) {
        found.push_back(
            StatusEvent{view.service.id, EventKind::uptime, view.open_event->date_started, ""});
      }
    }
    // An alert of a service that is gone (deactivated) is closed.
    for (const auto& alert : store_.active_alerts()) {
      if (listed.contains(alert.service_id) || !watches(watched, alert.service_id)) continue;
      if (const auto view = services_.get_service(alert.service_id))
        close(view->service, alert, options_.clock());
    }
    std::lock_guard lock(mutex_);
    queued_ += found.size();
    queue_.insert(queue_.end(), found.begin(), found.end());
  }

  void start_due(TimePoint now) {
    if (in_flight_.size() >= options_.max_in_flight) return;
    std::vector<std::int64_t> busy;
    for (const auto& [easy, transfer] : in_flight_) busy.push_back(transfer->notification.id);
    for (auto& n : store_.due(now, options_.max_in_flight - in_flight_.size(), busy, shards()))
      start(n);
  }

  void start(const NotificationRecord& n) {
    const auto channel = channels_.find(n.channel);
    if (channel == channels_.end()) {
      count(n.channel, "failed");
      store_.record_failed(n.id, n.attempt, std::nullopt, "channel is no longer configured",
                           options_.clock());
      return;
    }
    OutgoingRequest request;
    try {
      request = channel->second->render(AlertMessage::from_json(nlohmann::json::parse(n.payload)));
    } catch (const nlohmann::json::exception& e) {
      count(n.channel, "failed");
      store_.record_failed(n.id, n.attempt, std::nullopt,
                           std::string("bad stored message: ") + e.what(), options_.clock());
      return;
    }
    auto transfer = std::make_unique<Transfer>();
    transfer->notification = n;
    transfer->channel = channel->second.get();
    transfer->easy.reset(curl_easy_init());
    if (!transfer->easy) return;  // out of memory: tried again next round
    CURL* easy = transfer->easy.get();
    for (const auto& [name, value] : request.headers)
      if (!append_line(transfer->headers, name + ": " + value)) return;
    curl_easy_setopt(easy, CURLOPT_URL, request.url.c_str());
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, static_cast<long>(request.body.size()));
    curl_easy_setopt(easy, CURLOPT_COPYPOSTFIELDS, request.body.c_str());
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, transfer->headers.get());
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.request_timeout.count()));
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_USERAGENT, "vigil/" VIGIL_VERSION);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, collect_body);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, &transfer->response);
    if (curl_multi_add_handle(multi_.get(), easy) != CURLM_OK) return;
    in_flight_.emplace(easy, std::move(transfer));
  }

  void finish_done() {
    int left = 0;
    while (CURLMsg* message = curl_multi_info_read(multi_.get(), &left)) {
      if (message->msg != CURLMSG_DONE) continue;
      CURL* easy = message->easy_handle;
      const CURLcode result = message->data.result;
      curl_multi_remove_handle(multi_.get(), easy);
      const auto found = in_flight_.find(easy);
      if (found == in_flight_.end()) continue;
      const auto transfer = std::move(found->second);
      in_flight_.erase(found);
      // Not recorded: the row stays pending and is sent again (at least once, never lost).
      guard(kStageRecord, "recording a delivery", [&] { record(*transfer, result); });
    }
  }

  void record(const Transfer& transfer, CURLcode result) {
    const auto& n = transfer.notification;
    const int attempt = n.attempt + 1;
    long status = 0;
    curl_easy_getinfo(transfer.easy.get(), CURLINFO_RESPONSE_CODE, &status);
    std::optional<int> code;
    if (status > 0) code = static_cast<int>(status);
    std::string error;
    if (result != CURLE_OK) {
      error = curl_easy_strerror(result);
    } else if (status < 200 || status > 299) {
      error = "HTTP " + std::to_string(status);
    } else if (auto refused = transfer.channel->rejected(transfer.response)) {
      error = *refused;
    }
    const TimePoint now = options_.clock();
    // Each outcome is counted before it is stored, so that whoever sees it stored (the API, a
    // test) also sees it in vigil_notifications_total.
    if (error.empty()) {
      count(n.channel, "sent");
      store_.record_sent(n.id, attempt, *code, now);
      return;
    }
    if (static_cast<std::size_t>(attempt) <= options_.backoff.size()) {
      count(n.channel, "retry");
      store_.record_retry(n.id, attempt, code, error, now + options_.backoff[attempt - 1]);
      log_warn("alerting: " + n.kind + " to channel " + n.channel + " failed (" + error +
               "), attempt " + std::to_string(attempt) + "; trying again");
      return;
    }
    count(n.channel, "failed");
    store_.record_failed(n.id, attempt, code, error, now);
    log_error("alerting: " + n.kind + " to channel " + n.channel + " failed (" + error +
              ") after " + std::to_string(attempt) + " attempts; giving up");
  }

  void count(const std::string& channel, const char* result) {
    notifications_total_.Add({{"channel", channel}, {"result", result}}).Increment();
  }

  std::unique_ptr<AlertStore> store_holder_;
  AlertStore& store_;
  Store& services_;
  AlertingConfig config_;
  AlerterOptions options_;
  prometheus::Family<prometheus::Counter>& notifications_total_;
  prometheus::Family<prometheus::Counter>& errors_total_;
  std::map<std::string, std::shared_ptr<const Channel>> channels_;
  CurlMultiPtr multi_;
  std::map<CURL*, std::unique_ptr<Transfer>> in_flight_;  // runner thread only
  std::vector<MaintenanceWindow> api_windows_;            // alerter thread only
  std::map<ServiceId, EventKind> last_kind_;              // alerter thread only
  std::deque<StatusEvent> retry_;                         // alerter thread only
  bool reconciled_ = false;                               // alerter thread (after start)
  std::atomic<bool> reconcile_requested_{false};          // reconcile_again(), any thread

  std::mutex mutex_;
  std::condition_variable handled_cv_;
  std::deque<StatusEvent> queue_;  // guarded by mutex_
  std::uint64_t queued_ = 0;       // guarded by mutex_
  std::uint64_t handled_ = 0;      // guarded by mutex_
  bool stopping_ = false;          // guarded by mutex_
  bool finished_ = false;          // guarded by mutex_
  std::atomic<std::int64_t> last_progress_ms_{0};
  std::thread thread_;
};

Alerter::Alerter(std::unique_ptr<AlertStore> store, Store& services, AlertingConfig config,
                 prometheus::Registry& registry, AlerterOptions options)
    : loop_(std::make_unique<Loop>(std::move(store), services, std::move(config), registry,
                                   std::move(options))) {}
Alerter::~Alerter() { stop(); }
void Alerter::start() { loop_->start(); }
void Alerter::reconcile_again() { loop_->reconcile_again(); }
void Alerter::on_tick(const TickRecord& record) { loop_->on_tick(record); }
bool Alerter::send_test(const std::string& channel) { return loop_->send_test(channel); }
void Alerter::stop() { loop_->stop(); }
void Alerter::flush() { loop_->flush(); }
TimePoint Alerter::last_progress() const { return loop_->last_progress(); }
AlertStore& Alerter::store() { return loop_->store(); }

}  // namespace vigil

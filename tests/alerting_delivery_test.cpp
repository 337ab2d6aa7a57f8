// Alerting: the Alerter against real receivers (cpp-httplib on 127.0.0.1 standing in
// for a webhook, Slack and PagerDuty), a real database of each backend (a SQLite file, a
// PostgreSQL server), real curl. Status changes are fed as
// the runner feeds them (tick records that open an event); mutes, snoozes and reminders use an
// injected clock.
#include <gtest/gtest.h>
#include <httplib.h>
#include <prometheus/registry.h>
#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "alerting/alerter.h"
#include "alerting/alerting_config.h"
#include "alerting/webhook.h"
#include "config/config.h"
#include "core/logging.h"
#include "core/shards.h"
#include "storage/store.h"
#include "support/eventually.h"
#include "support/receiver.h"
#include "support/store_backends.h"
#include "support/target_server.h"

namespace vigil {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

using test::Receiver;

// A clock the test moves by hand.
class ManualClock {
 public:
  ManualClock() : now_(to_unix_ms(now_ms())) {}
  TimePoint now() const { return from_unix_ms(now_.load()); }
  void advance(Millis by) { now_ += by.count(); }
  std::function<TimePoint()> function() {
    return [this] { return now(); };
  }

 private:
  std::atomic<std::int64_t> now_;
};

using test::eventually;

double counter(prometheus::Registry& registry, const std::string& channel,
               const std::string& result) {
  for (const auto& f : registry.Collect()) {
    if (f.name != "vigil_notifications_total") continue;
    for (const auto& m : f.metric) {
      std::map<std::string, std::string> labels;
      for (const auto& l : m.label) labels[l.name] = l.value;
      if (labels["channel"] == channel && labels["result"] == result) return m.counter.value;
    }
  }
  return 0;
}

double alerting_errors(prometheus::Registry& registry, const std::string& stage) {
  for (const auto& f : registry.Collect()) {
    if (f.name != "vigil_alerting_errors_total") continue;
    for (const auto& m : f.metric)
      for (const auto& l : m.label)
        if (l.name == "stage" && l.value == stage) return m.counter.value;
  }
  return -1;  // no such series
}

TickRecord status_change(ServiceId id, bool up, TimePoint at, std::optional<int> code = 503,
                         std::string error = {}) {
  TickRecord record;
  record.tick.service_id = id;
  record.tick.ts = at;
  record.tick.up = up;
  record.tick.status_code = code;
  record.tick.error = std::move(error);
  record.opens_event = up ? EventKind::uptime : EventKind::downtime;
  return record;
}

EnvLookup env_of(std::map<std::string, std::string> values) {
  return [values = std::move(values)](const std::string& name) -> std::optional<std::string> {
    const auto found = values.find(name);
    if (found == values.end()) return std::nullopt;
    return found->second;
  };
}

class AlertingTest : public ::testing::TestWithParam<test::StoreBackend> {
 protected:
  void SetUp() override {
    if (auto reason = test::unavailable(GetParam())) GTEST_SKIP() << *reason;
    set_log_level(LogLevel::error);
    db_.emplace(GetParam());
    store_ = db_->open();
  }
  // A new AlertStore on the test's database, as the Alerter and the API each open one.
  std::unique_ptr<AlertStore> alert_store() const { return db_->database()->open_alert_store(); }

  ServiceId add_service(const std::string& name, const std::string& team = "", int priority = 3,
                        bool muted = false, std::optional<TimePoint> muted_until = {}) {
    ServiceSpec spec;
    spec.name = name;
    spec.url = "http://127.0.0.1:1/" + name;
    spec.team = team;
    spec.priority = priority;
    spec.runbook = "https://runbooks.example/" + name;
    spec.muted = muted;
    spec.muted_until = muted_until;
    return store_->create_service(spec, now_ms()).id;
  }

  AlertingConfig config(const json& section) {
    return parse_alerting_config(section, "alerting", env_of({}));
  }

  std::unique_ptr<Alerter> alerter(const json& section, AlerterOptions options = {}) {
    auto a = std::make_unique<Alerter>(alert_store(), *store_, config(section), registry_,
                                       std::move(options));
    a->start();
    return a;
  }

  AlerterOptions fast() {
    AlerterOptions options;
    options.backoff = {100ms, 100ms};
    options.request_timeout = 2s;
    options.check_interval = 20ms;
    return options;
  }

  std::optional<test::TestDatabase> db_;
  std::unique_ptr<Store> store_;
  prometheus::Registry registry_;
  Receiver receiver_;
};

INSTANTIATE_TEST_SUITE_P(Backends, AlertingTest, test::kStoreBackends, test::backend_name);

TEST_P(AlertingTest, WebhookGetsTheExactTriggerThenResolveJson) {
  const ServiceId id = add_service("payments", "sre", 2);
  auto a = alerter({{"channels",
                     {{"hook",
                       {{"type", "webhook"},
                        {"url", receiver_.url("/hook")},
                        {"headers", {{"X-Secret", "s3"}}}}}}},
                    {"default", {"hook"}}},
                   fast());
  const TimePoint down_at = from_unix_ms(1'700'000'000'000);
  a->on_tick(status_change(id, true, down_at - 60s, 200));  // up first: no alert
  a->on_tick(status_change(id, false, down_at));
  auto got = receiver_.wait_for("/hook", 1);
  ASSERT_EQ(got.size(), 1u);
  const auto alert = a->store().active_alert(id);
  ASSERT_TRUE(alert);
  EXPECT_EQ(alert->alert_cycle, 1);
  EXPECT_EQ(alert->external_reference_id.size(), 32u);
  const json expected_trigger = {{"kind", "trigger"},
                                 {"service", "payments"},
                                 {"status", "down"},
                                 {"previous_status", "up"},
                                 {"since", 1'700'000'000},
                                 {"duration_s", 0},
                                 {"reason", "HTTP 503"},
                                 {"url", "http://127.0.0.1:1/payments"},
                                 {"team", "sre"},
                                 {"priority", 2},
                                 {"runbook", "https://runbooks.example/payments"},
                                 {"alert_id", alert->alert_id},
                                 {"alert_cycle", 1},
                                 {"idempotency_key", alert->external_reference_id + "-1-trigger"}};
  EXPECT_EQ(json::parse(got[0].body), expected_trigger);
  EXPECT_EQ(got[0].headers.find("Idempotency-Key")->second,
            alert->external_reference_id + "-1-trigger");
  EXPECT_EQ(got[0].headers.find("X-Secret")->second, "s3");
  EXPECT_EQ(got[0].headers.find("Content-Type")->second, "application/json");

  // A second down record while the alert is open changes nothing.
  a->on_tick(status_change(id, false, down_at + 1s));
  a->on_tick(status_change(id, true, down_at + 95s, 200));
  got = receiver_.wait_for("/hook", 2);
  ASSERT_EQ(got.size(), 2u);
  json expected_resolve = expected_trigger;
  expected_resolve["kind"] = "resolve";
  expected_resolve["status"] = "up";
  expected_resolve["previous_status"] = "down";
  expected_resolve["since"] = 1'700'000'095;
  expected_resolve["duration_s"] = 95;
  expected_resolve["reason"] = "up again";
  expected_resolve["idempotency_key"] = alert->external_reference_id + "-1-resolve";
  EXPECT_EQ(json::parse(got[1].body), expected_resolve);

  EXPECT_FALSE(a->store().active_alert(id));
  const auto closed = a->store().alert(alert->alert_id);
  ASSERT_TRUE(closed && closed->closed_date);
  EXPECT_EQ(*closed->closed_date, down_at + 95s);
  ASSERT_TRUE(eventually([&] {
    const auto n = a->store().notifications(alert->alert_id);
    return n.size() == 2 && n[1].status == NotificationStatus::sent;
  }));
  const auto notes = a->store().notifications(alert->alert_id);
  EXPECT_EQ(notes[0].kind, "trigger");
  EXPECT_EQ(notes[0].status, NotificationStatus::sent);
  EXPECT_EQ(notes[0].attempt, 1);
  EXPECT_EQ(notes[0].response_code, 200);
  EXPECT_EQ(notes[1].kind, "resolve");
  EXPECT_EQ(counter(registry_, "hook", "sent"), 2);
}

TEST_P(AlertingTest, AClusterMemberDeliversOnlyForItsShardsAndTakesOverAnotherMembersOutbox) {
  const ServiceId mine = add_service("mine");
  const ServiceId theirs = add_service("theirs");
  ASSERT_NE(shard_of(mine), shard_of(theirs));
  // Another member's alert, recorded with its pending trigger, not delivered yet.
  const auto other = alert_store();
  other->open_alert(
      theirs, "theirs down", "down", std::nullopt, now_ms(), [](const AlertRecord& alert) {
        AlertMessage m;
        m.kind = "trigger";
        m.service = "theirs";
        m.service_id = alert.service_id;
        m.alert_id = alert.alert_id;
        m.external_reference_id = alert.external_reference_id;
        return std::vector<NewNotification>{{"hook", "trigger", m.to_json().dump(), false}};
      });
  std::mutex mutex;
  std::vector<int> watched{shard_of(mine)};
  AlerterOptions options = fast();
  options.shards = [&] {
    std::lock_guard lock(mutex);
    return watched;
  };
  auto a =
      alerter({{"channels", {{"hook", {{"type", "webhook"}, {"url", receiver_.url("/hook")}}}}},
               {"default", {"hook"}}},
              options);
  a->on_tick(status_change(mine, false, now_ms()));
  auto got = receiver_.wait_for("/hook", 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(json::parse(got[0].body)["service"], "mine");
  // Many delivery rounds later, the other member's trigger is still its own to send.
  ASSERT_TRUE(eventually([&] { return counter(registry_, "hook", "sent") == 1; }));
  const auto check_rounds = std::chrono::steady_clock::now() + 300ms;  // 15 check intervals
  ASSERT_TRUE(eventually([&] { return std::chrono::steady_clock::now() > check_rounds; }));
  EXPECT_EQ(receiver_.requests("/hook").size(), 1u);
  // Its shard comes here (that member died): the pending trigger goes out, once.
  {
    std::lock_guard lock(mutex);
    watched = {std::min(shard_of(mine), shard_of(theirs)),
               std::max(shard_of(mine), shard_of(theirs))};
  }
  a->reconcile_again();
  got = receiver_.wait_for("/hook", 2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(json::parse(got[1].body)["service"], "theirs");
  const auto waited = std::chrono::steady_clock::now() + 300ms;
  ASSERT_TRUE(eventually([&] { return std::chrono::steady_clock::now() > waited; }));
  EXPECT_EQ(receiver_.requests("/hook").size(), 2u);
}

TEST_P(AlertingTest, ServerErrorThenSuccessIsRetriedWithBackoff) {
  const ServiceId id = add_service("api");
  receiver_.script("/flaky", {{500, "boom"}, {200, "ok"}});
  auto a =
      alerter({{"channels", {{"hook", {{"type", "webhook"}, {"url", receiver_.url("/flaky")}}}}},
               {"default", {"hook"}}},
              fast());
  a->on_tick(status_change(id, false, now_ms()));
  const auto got = receiver_.wait_for("/flaky", 2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].body, got[1].body);  // the same message, tried again
  EXPECT_EQ(got[0].headers.find("Idempotency-Key")->second,
            got[1].headers.find("Idempotency-Key")->second);
  ASSERT_TRUE(eventually([&] {
    const auto alert = a->store().active_alert(id);
    if (!alert) return false;
    const auto n = a->store().notifications(alert->alert_id);
    return n.size() == 1 && n[0].status == NotificationStatus::sent;
  }));
  const auto n = a->store().notifications(a->store().active_alert(id)->alert_id)[0];
  EXPECT_EQ(n.attempt, 2);
  EXPECT_EQ(n.response_code, 200);
  EXPECT_EQ(counter(registry_, "hook", "retry"), 1);
  EXPECT_EQ(counter(registry_, "hook", "sent"), 1);
}

TEST_P(AlertingTest, AReceiverDownForGoodIsGivenUpAndRecorded) {
  const ServiceId id = add_service("api");
  const std::string dead = "http://127.0.0.1:" + std::to_string(test::closed_port()) + "/x";
  auto a = alerter(
      {{"channels", {{"hook", {{"type", "webhook"}, {"url", dead}}}}}, {"default", {"hook"}}},
      fast());
  a->on_tick(status_change(id, false, now_ms()));
  ASSERT_TRUE(eventually([&] {
    const auto alert = a->store().active_alert(id);
    return alert &&
           a->store().notifications(alert->alert_id).at(0).status == NotificationStatus::failed;
  }));
  const auto n = a->store().notifications(a->store().active_alert(id)->alert_id)[0];
  EXPECT_EQ(n.attempt, 3);  // the first try and one per backoff step
  EXPECT_FALSE(n.response_code);
  EXPECT_NE(n.error.find("onnect"), std::string::npos) << n.error;
  EXPECT_TRUE(n.sent_at);
  EXPECT_EQ(counter(registry_, "hook", "retry"), 2);
  EXPECT_EQ(counter(registry_, "hook", "failed"), 1);
}

TEST_P(AlertingTest, AHangingReceiverTimesOutWithoutHoldingUpOthers) {
  const ServiceId id = add_service("api");
  auto options = fast();
  options.backoff = {};
  options.request_timeout = 700ms;
  auto a = alerter({{"channels",
                     {{"stuck", {{"type", "webhook"}, {"url", receiver_.url("/hang")}}},
                      {"hook", {{"type", "webhook"}, {"url", receiver_.url("/hook")}}}}},
                    {"default", {"stuck", "hook"}}},
                   options);
  const auto start = Clock::now();
  a->on_tick(status_change(id, false, now_ms()));
  ASSERT_EQ(receiver_.wait_for("/hook", 1).size(), 1u);
  EXPECT_LT(Clock::now() - start, 600ms);  // delivered while the other still hangs
  ASSERT_TRUE(eventually([&] { return counter(registry_, "stuck", "failed") == 1; }));
  EXPECT_GE(Clock::now() - start, 650ms);
  const auto notes = a->store().notifications(a->store().active_alert(id)->alert_id);
  ASSERT_EQ(notes.size(), 2u);
  const auto& stuck = notes[0].channel == "stuck" ? notes[0] : notes[1];
  EXPECT_EQ(stuck.status, NotificationStatus::failed);
  EXPECT_NE(stuck.error.find("imeout"), std::string::npos) << stuck.error;
}

TEST_P(AlertingTest, APendingDeliverySurvivesARestart) {
  const ServiceId id = add_service("api");
  {
    // Stopped while the delivery hangs: the notification stays pending.
    auto a =
        alerter({{"channels", {{"hook", {{"type", "webhook"}, {"url", receiver_.url("/hang")}}}}},
                 {"default", {"hook"}}},
                fast());
    a->on_tick(status_change(id, false, now_ms()));
    // The delivery has reached the receiver and hangs there when the Alerter stops.
    ASSERT_EQ(receiver_.wait_for("/hang", 1, 30s).size(), 1u);
    a->stop();
    const auto alert = a->store().active_alert(id);
    ASSERT_TRUE(alert);
    EXPECT_EQ(a->store().notifications(alert->alert_id).at(0).status, NotificationStatus::pending);
  }
  // The next start (the channel now reachable) delivers it.
  auto a =
      alerter({{"channels", {{"hook", {{"type", "webhook"}, {"url", receiver_.url("/hook")}}}}},
               {"default", {"hook"}}},
              fast());
  const auto got = receiver_.wait_for("/hook", 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(json::parse(got[0].body)["kind"], "trigger");
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(receiver_.requests("/hook").size(), 1u);  // once, not once per start
}

TEST_P(AlertingTest, ADowntimeStoredWithoutItsAlertAlertsAtStart) {
  // The writer committed the down tick, then the process died before the alert was written.
  const ServiceId id = add_service("api");
  TickRecord down = status_change(id, false, now_ms() - 30s, std::nullopt, "connection refused");
  down.metric_after.add(false, 1);
  store_->apply({down});
  auto a =
      alerter({{"channels", {{"hook", {{"type", "webhook"}, {"url", receiver_.url("/hook")}}}}},
               {"default", {"hook"}}},
              fast());
  const auto got = receiver_.wait_for("/hook", 1);
  ASSERT_EQ(got.size(), 1u);
  const auto body = json::parse(got[0].body);
  EXPECT_EQ(body["reason"], "connection refused");
  EXPECT_EQ(body["since"], to_unix_seconds(down.tick.ts));
}

// Another connection holds a lock the alert's write needs (SQLite's write lock; PostgreSQL's
// lock on the alerts table) while a down transition arrives: the Alerter's write fails (busy
// past its timeout, or cancelled by the statement timeout), is counted, and is tried again until
// the lock is gone; the alert is then written and delivered, once.
TEST_P(AlertingTest, ADatabaseLockedWhileAServiceGoesDownDelaysTheAlertButNeverDropsIt) {
  const ServiceId id = add_service("locked");
  auto a =
      alerter({{"channels", {{"hook", {{"type", "webhook"}, {"url", receiver_.url("/hook")}}}}},
               {"default", {"hook"}}},
              fast());
  EXPECT_EQ(alerting_errors(registry_, "status_change"), 0);
  sqlite3* other = nullptr;
  if (GetParam() == test::StoreBackend::sqlite) {
    ASSERT_EQ(sqlite3_open(db_->location().c_str(), &other), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  } else {
    db_->exec("BEGIN; LOCK TABLE alerts IN EXCLUSIVE MODE");
  }

  a->on_tick(status_change(id, false, now_ms()));
  // The first attempt gives up after the store's busy timeout or statement timeout (5 s).
  EXPECT_TRUE(eventually([&] { return alerting_errors(registry_, "status_change") >= 1; }, 20s));
  EXPECT_TRUE(receiver_.requests("/hook").empty());

  if (other) {
    ASSERT_EQ(sqlite3_exec(other, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(other);
  } else {
    db_->exec("COMMIT");
  }
  const auto got = receiver_.wait_for("/hook", 1, 20s);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(json::parse(got[0].body)["kind"], "trigger");
  EXPECT_EQ(json::parse(got[0].body)["service"], "locked");
  const auto alert = a->store().active_alert(id);
  ASSERT_TRUE(alert);
  EXPECT_EQ(a->store().notifications(alert->alert_id).size(), 1u);
  EXPECT_GE(alerting_errors(registry_, "status_change"), 1);
}

TEST_P(AlertingTest, RoutesByTeamElseDefault) {
  const ServiceId sre = add_service("db", "sre");
  const ServiceId other = add_service("web", "frontend");
  auto a = alerter({{"channels",
                     {{"a", {{"type", "webhook"}, {"url", receiver_.url("/a")}}},
                      {"b", {{"type", "webhook"}, {"url", receiver_.url("/b")}}}}},
                    {"default", {"a"}},
                    {"teams", {{"sre", {"b"}}}}},
                   fast());
  a->on_tick(status_change(sre, false, now_ms()));
  a->on_tick(status_change(other, false, now_ms()));
  ASSERT_EQ(receiver_.wait_for("/a", 1).size(), 1u);
  ASSERT_EQ(receiver_.wait_for("/b", 1).size(), 1u);
  EXPECT_EQ(json::parse(receiver_.requests("/a")[0].body)["service"], "web");
  EXPECT_EQ(json::parse(receiver_.requests("/b")[0].body)["service"], "db");
}

TEST_P(AlertingTest, AMutedServiceIsRecordedButNotNotified) {
  const ServiceId id = add_service("api", "", 3, true);
  auto a =
      alerter({{"channels", {{"hook", {{"type", "webhook"}, {"url", receiver_.url("/hook")}}}}},
               {"default", {"hook"}}},
              fast());
  a->on_tick(status_change(id, false, now_ms()));
  a->on_tick(status_change(id, true, now_ms()));
  a->flush();
  std::this_thread::sleep_for(200ms);
  EXPECT_TRUE(receiver_.requests("/hook").empty());
  const auto alerts = a->store().alerts({});
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_FALSE(alerts[0].active);
  const auto notes = a->store().notifications(alerts[0].alert_id);
  ASSERT_EQ(notes.size(), 2u);
  EXPECT_EQ(notes[0].status, NotificationStatus::suppressed);
  EXPECT_EQ(notes[1].status, NotificationStatus::suppressed);
}

TEST_P(AlertingTest, WhenASnoozeRunsOutWhileDownOneTriggerGoesOut) {
  ManualClock clock;
  const ServiceId id = add_service("api", "", 3, true, clock.now() + 10min);
  auto options = fast();
  options.clock = clock.function();
  auto a =
      alerter({{"channels", {{"hook", {{"type", "webhook"}, {"url", receiver_.url("/hook")}}}}},
               {"default", {"hook"}}},
              options);
  a->on_tick(status_change(id, false, clock.now()));
  a->flush();
  std::this_thread::sleep_for(150ms);
  EXPECT_TRUE(receiver_.requests("/hook").empty());
  clock.advance(10min);
  const auto got = receiver_.wait_for("/hook", 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(json::parse(got[0].body)["kind"], "trigger");
  EXPECT_EQ(json::parse(got[0].body)["duration_s"], 600);
  std::this_thread::sleep_for(150ms);
  EXPECT_EQ(receiver_.requests("/hook").size(), 1u);  // one, not one per check
  // It was told, so the resolve goes out too.
  a->on_tick(status_change(id, true, clock.now()));
  EXPECT_EQ(receiver_.wait_for("/hook", 2).size(), 2u);
}

// /healthz's alerter signal: the loop handled its queue, by the Alerter's clock.
TEST_P(AlertingTest, LastProgressFollowsTheLoopByItsClock) {
  ManualClock clock;
  auto options = fast();
  options.clock = clock.function();
  auto a = alerter(json::object(), options);
  EXPECT_EQ(a->last_progress(), clock.now());  // from start()
  clock.advance(1min);
  EXPECT_TRUE(eventually([&] { return a->last_progress() == clock.now(); }));
  a->stop();
  clock.advance(1min);
  std::this_thread::sleep_for(50ms);
  EXPECT_LT(a->last_progress(), clock.now());  // a stopped alerter does not progress
}

TEST_P(AlertingTest, RemindersRepeatWhileDownAndCountCycles) {
  ManualClock clock;
  const ServiceId id = add_service("api");
  auto options = fast();
  options.clock = clock.function();
  auto a = alerter(
      {{"channels",
        {{"hook",
          {{"type", "webhook"}, {"url", receiver_.url("/hook")}, {"repeat_every_seconds", 60}}}}},
       {"default", {"hook"}}},
      options);
  a->on_tick(status_change(id, false, clock.now()));
  ASSERT_EQ(receiver_.wait_for("/hook", 1).size(), 1u);
  clock.advance(59s);
  std::this_thread::sleep_for(150ms);
  EXPECT_EQ(receiver_.requests("/hook").size(), 1u);
  clock.advance(1s);
  auto got = receiver_.wait_for("/hook", 2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(json::parse(got[1].body)["kind"], "repeat");
  EXPECT_EQ(json::parse(got[1].body)["alert_cycle"], 2);
  EXPECT_EQ(json::parse(got[1].body)["duration_s"], 60);
  clock.advance(60s);
  got = receiver_.wait_for("/hook", 3);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(json::parse(got[2].body)["alert_cycle"], 3);
  EXPECT_EQ(a->store().active_alert(id)->alert_cycle, 3);
}

TEST_P(AlertingTest, SlackIncomingWebhookMessage) {
  const ServiceId id = add_service("payments");
  auto a = alerter({{"channels", {{"chat", {{"type", "slack"}, {"url", receiver_.url("/slack")}}}}},
                    {"default", {"chat"}}},
                   fast());
  a->on_tick(status_change(id, false, from_unix_ms(1'700'000'000'000)));
  const auto got = receiver_.wait_for("/slack", 1);
  ASSERT_EQ(got.size(), 1u);
  const json expected = {{"text", "payments is DOWN"},
                         {"attachments",
                          {{{"color", "#d50200"},
                            {"title", "payments is DOWN"},
                            {"text",
                             "Down since 2023-11-14 22:13:20 UTC\nReason: HTTP 503\nURL: "
                             "http://127.0.0.1:1/payments\nRunbook: "
                             "<https://runbooks.example/payments>"}}}}};
  EXPECT_EQ(json::parse(got[0].body), expected);
  EXPECT_EQ(got[0].headers.find("Authorization"), got[0].headers.end());
}

TEST_P(AlertingTest, SlackPostMessageUsesTheTokenAndRetriesWhenSlackSaysNotOk) {
  const ServiceId id = add_service("payments");
  receiver_.script("/api/chat.postMessage",
                   {{200, R"({"ok":false,"error":"ratelimited"})"}, {200, R"({"ok":true})"}});
  const auto cfg = parse_alerting_config(
      {{"channels",
        {{"chat",
          {{"type", "slack"},
           {"url", receiver_.url("/api/chat.postMessage")},
           {"token", "${SLACK_API_TOKEN}"}}}}},
       {"default", {"chat"}}},
      "alerting", env_of({{"SLACK_API_TOKEN", "xoxb-1"}, {"SLACK_CHANNEL_ID", "C42"}}));
  Alerter a(alert_store(), *store_, cfg, registry_, fast());
  a.start();
  a.on_tick(status_change(id, false, now_ms()));
  const auto got = receiver_.wait_for("/api/chat.postMessage", 2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].headers.find("Authorization")->second, "Bearer xoxb-1");
  EXPECT_EQ(json::parse(got[0].body)["channel"], "C42");
  ASSERT_TRUE(eventually([&] { return counter(registry_, "chat", "sent") == 1; }));
  EXPECT_EQ(counter(registry_, "chat", "retry"), 1);
  const auto n = a.store().notifications(a.store().active_alert(id)->alert_id)[0];
  EXPECT_EQ(n.attempt, 2);
}

TEST_P(AlertingTest, PagerDutyTriggerAndResolveShareTheDedupKey) {
  const ServiceId id = add_service("payments", "sre", 1);
  const auto cfg = parse_alerting_config(
      {{"channels", {{"pd", {{"type", "pagerduty"}, {"url", receiver_.url("/v2/enqueue")}}}}},
       {"default", {"pd"}}},
      "alerting", env_of({{"PAGERDUTY_ROUTING_KEY", "R0UTING"}}));
  Alerter a(alert_store(), *store_, cfg, registry_, fast());
  a.start();
  a.on_tick(status_change(id, false, from_unix_ms(1'700'000'000'000)));
  ASSERT_EQ(receiver_.wait_for("/v2/enqueue", 1).size(), 1u);
  const auto alert = a.store().active_alert(id);
  ASSERT_TRUE(alert);
  a.on_tick(status_change(id, true, from_unix_ms(1'700'000'060'000), 200));
  const auto got = receiver_.wait_for("/v2/enqueue", 2);
  ASSERT_EQ(got.size(), 2u);
  const json expected_trigger = {
      {"routing_key", "R0UTING"},
      {"dedup_key", alert->external_reference_id},
      {"event_action", "trigger"},
      {"payload",
       {{"summary", "payments is down: HTTP 503"},
        {"source", "http://127.0.0.1:1/payments"},
        {"severity", "critical"},
        {"timestamp", "2023-11-14T22:13:20Z"},
        {"component", "payments"},
        {"group", "sre"},
        {"custom_details",
         {{"alert_id", alert->alert_id}, {"alert_cycle", 1}, {"kind", "trigger"}}}}},
      {"links", {{{"href", "https://runbooks.example/payments"}, {"text", "Runbook"}}}}};
  EXPECT_EQ(json::parse(got[0].body), expected_trigger);
  const json expected_resolve = {{"routing_key", "R0UTING"},
                                 {"dedup_key", alert->external_reference_id},
                                 {"event_action", "resolve"}};
  EXPECT_EQ(json::parse(got[1].body), expected_resolve);
}

TEST_P(AlertingTest, NoChannelShowsAProbeUrlsPasswordOrQueryValues) {
  ServiceSpec spec;
  spec.name = "secret";
  spec.url = "http://probe:hunter2@127.0.0.1:1/health?api_key=k3y-value&region=eu";
  const ServiceId id = store_->create_service(spec, now_ms()).id;
  const auto cfg = parse_alerting_config(
      {{"channels",
        {{"hook", {{"type", "webhook"}, {"url", receiver_.url("/hook")}}},
         {"chat", {{"type", "slack"}, {"url", receiver_.url("/slack")}}},
         {"pd", {{"type", "pagerduty"}, {"url", receiver_.url("/v2/enqueue")}}}}},
       {"default", {"hook", "chat", "pd"}}},
      "alerting", env_of({{"PAGERDUTY_ROUTING_KEY", "R0UTING"}}));
  Alerter a(alert_store(), *store_, cfg, registry_, fast());
  a.start();
  a.on_tick(status_change(id, false, from_unix_ms(1'700'000'000'000)));
  const auto hook = receiver_.wait_for("/hook", 1);
  const auto slack = receiver_.wait_for("/slack", 1);
  const auto pd = receiver_.wait_for("/v2/enqueue", 1);
  ASSERT_EQ(hook.size(), 1u);
  ASSERT_EQ(slack.size(), 1u);
  ASSERT_EQ(pd.size(), 1u);
  for (const auto* got : {&hook[0], &slack[0], &pd[0]}) {
    EXPECT_EQ(got->body.find("hunter2"), std::string::npos) << got->path << ": " << got->body;
    EXPECT_EQ(got->body.find("k3y-value"), std::string::npos) << got->path << ": " << got->body;
  }
  const std::string redacted =
      "http://probe:<redacted>@127.0.0.1:1/health?api_key=<redacted>&region=<redacted>";
  EXPECT_EQ(json::parse(pd[0].body)["payload"]["source"], redacted);
  EXPECT_EQ(json::parse(hook[0].body)["url"], redacted);
  // Slack reads "<...>" as a link: the markers are escaped.
  const std::string text = json::parse(slack[0].body)["attachments"][0]["text"];
  EXPECT_NE(text.find("\nURL: http://probe:&lt;redacted&gt;@127.0.0.1:1/health?api_key=&lt;"
                      "redacted&gt;&amp;region=&lt;redacted&gt;"),
            std::string::npos)
      << text;
}

TEST_P(AlertingTest, TestNotificationGoesToTheNamedChannel) {
  auto a = alerter(
      {{"channels", {{"hook", {{"type", "webhook"}, {"url", receiver_.url("/hook")}}}}}}, fast());
  EXPECT_FALSE(a->send_test("nope"));
  EXPECT_TRUE(a->send_test("hook"));
  const auto got = receiver_.wait_for("/hook", 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(json::parse(got[0].body)["kind"], "test");
}

TEST_P(AlertingTest, AMaintenanceWindowSilencesItsServicesUntilItEnds) {
  ManualClock clock;
  const ServiceId in_window = add_service("db");
  const ServiceId outside = add_service("web");
  auto options = fast();
  options.clock = clock.function();
  const auto start = to_unix_seconds(clock.now()) - 60;
  auto a =
      alerter({{"channels", {{"hook", {{"type", "webhook"}, {"url", receiver_.url("/hook")}}}}},
               {"default", {"hook"}},
               {"maintenance", {{{"services", {"db"}}, {"start", start}, {"end", start + 1860}}}}},
              options);
  a->on_tick(status_change(in_window, false, clock.now()));
  a->on_tick(status_change(outside, false, clock.now()));
  ASSERT_EQ(receiver_.wait_for("/hook", 1).size(), 1u);
  std::this_thread::sleep_for(150ms);
  ASSERT_EQ(receiver_.requests("/hook").size(), 1u);
  EXPECT_EQ(json::parse(receiver_.requests("/hook")[0].body)["service"], "web");
  const auto held = a->store().active_alert(in_window);
  ASSERT_TRUE(held);
  EXPECT_EQ(a->store().notifications(held->alert_id).at(0).status, NotificationStatus::suppressed);
  clock.advance(30min);  // the window ends with db still down: one trigger now
  const auto got = receiver_.wait_for("/hook", 2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(json::parse(got[1].body)["service"], "db");
  std::this_thread::sleep_for(150ms);
  EXPECT_EQ(receiver_.requests("/hook").size(), 2u);
}

TEST_P(AlertingTest, PreviousStatusIsNullForAFirstProbeDownAndReadFromStoredEventsAfterStart) {
  const json section = {
      {"channels", {{"hook", {{"type", "webhook"}, {"url", receiver_.url("/hook")}}}}},
      {"default", {"hook"}}};
  const ServiceId fresh = add_service("fresh");
  const ServiceId known = add_service("known");
  // Before this start the writer stored an uptime event for "known" (its first, up, tick).
  TickRecord up = status_change(known, true, now_ms() - 60s, 200);
  up.metric_after.add(true, 1);
  store_->apply({up});
  auto a = alerter(section, fast());
  a->on_tick(status_change(fresh, false, now_ms()));  // its very first probe is down
  auto got = receiver_.wait_for("/hook", 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(json::parse(got[0].body)["previous_status"].is_null()) << got[0].body;
  EXPECT_FALSE(a->store().active_alert(fresh)->previous_status);
  // The first transition of "known" after this start: the Alerter has not seen it before.
  a->on_tick(status_change(known, false, now_ms()));
  got = receiver_.wait_for("/hook", 2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(json::parse(got[1].body)["service"], "known");
  EXPECT_EQ(json::parse(got[1].body)["previous_status"], "up");
  EXPECT_EQ(a->store().active_alert(known)->previous_status, "up");
  a->on_tick(status_change(fresh, true, now_ms(), 200));
  got = receiver_.wait_for("/hook", 3);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(json::parse(got[2].body)["kind"], "resolve");
  EXPECT_EQ(json::parse(got[2].body)["previous_status"], "down");
  // Up and down again: now it was up before.
  a->on_tick(status_change(fresh, false, now_ms()));
  got = receiver_.wait_for("/hook", 4);
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(json::parse(got[3].body)["previous_status"], "up");
}

TEST_P(AlertingTest, AServiceOwnChannelsAndRepeatBeatItsTeamAndChannel) {
  ManualClock clock;
  auto options = fast();
  options.clock = clock.function();
  ServiceSpec spec;
  spec.name = "checkout";
  spec.url = "http://127.0.0.1:1/checkout";
  spec.team = "sre";
  spec.alert_channels = {"own"};
  spec.repeat_every = 30s;
  const ServiceId own = store_->create_service(spec, now_ms()).id;
  const ServiceId team = add_service("db", "sre");
  auto a = alerter(
      {{"channels",
        {{"own",
          {{"type", "webhook"}, {"url", receiver_.url("/own")}, {"repeat_every_seconds", 3600}}},
         {"team", {{"type", "webhook"}, {"url", receiver_.url("/team")}}},
         {"default", {{"type", "webhook"}, {"url", receiver_.url("/default")}}}}},
       {"teams", {{"sre", {"team"}}}},
       {"default", {"default"}}},
      options);
  a->on_tick(status_change(own, false, clock.now()));
  a->on_tick(status_change(team, false, clock.now()));
  ASSERT_EQ(receiver_.wait_for("/own", 1).size(), 1u);
  ASSERT_EQ(receiver_.wait_for("/team", 1).size(), 1u);
  EXPECT_EQ(json::parse(receiver_.requests("/own")[0].body)["service"], "checkout");
  EXPECT_EQ(json::parse(receiver_.requests("/team")[0].body)["service"], "db");
  // The service's 30 s, not the channel's hour.
  clock.advance(30s);
  const auto got = receiver_.wait_for("/own", 2);
  ASSERT_EQ(got.size(), 2u);
  const json repeat = json::parse(got[1].body);
  EXPECT_EQ(repeat["kind"], "repeat");
  EXPECT_EQ(repeat["alert_cycle"], 2);
  EXPECT_EQ(repeat["previous_status"], "down");
  std::this_thread::sleep_for(150ms);
  EXPECT_EQ(receiver_.requests("/team").size(), 1u);  // the team channel has no repeat
  EXPECT_TRUE(receiver_.requests("/default").empty());
}

TEST_P(AlertingTest, AnApiWindowSilencesWithoutARestartAndItsEndSendsOneTrigger) {
  ManualClock clock;
  const ServiceId id = add_service("db");
  auto options = fast();
  options.clock = clock.function();
  auto a =
      alerter({{"channels", {{"hook", {{"type", "webhook"}, {"url", receiver_.url("/hook")}}}}},
               {"default", {"hook"}}},
              options);
  // Created after the Alerter started, through another connection, as the API does.
  const auto api_store = alert_store();
  AlertStore& api = *api_store;
  const auto start = to_unix_seconds(clock.now()) - 60;
  const auto window = store_maintenance_window(
      api,
      parse_maintenance_window({{"services", {"db"}}, {"start", start}, {"end", start + 660}},
                               "maintenance"),
      clock.now());
  ASSERT_TRUE(window.id);
  a->on_tick(status_change(id, false, clock.now()));
  a->flush();
  std::this_thread::sleep_for(150ms);
  EXPECT_TRUE(receiver_.requests("/hook").empty());
  const auto held = a->store().active_alert(id);
  ASSERT_TRUE(held);
  EXPECT_EQ(a->store().notifications(held->alert_id).at(0).status, NotificationStatus::suppressed);
  clock.advance(10min);  // the window ends with db still down: one trigger
  const auto got = receiver_.wait_for("/hook", 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(json::parse(got[0].body)["kind"], "trigger");
  std::this_thread::sleep_for(150ms);
  EXPECT_EQ(receiver_.requests("/hook").size(), 1u);
  EXPECT_TRUE(api.delete_maintenance_window(*window.id));
  EXPECT_FALSE(api.delete_maintenance_window(*window.id));
  EXPECT_TRUE(api.maintenance_windows().empty());
}

TEST(MaintenanceWindowTest, RecurringWeeklyAndDailyWindowsInALocalTimezone) {
  const auto windows = parse_maintenance(
      json::array({{{"every", "sun 02:00"}, {"duration_minutes", 60}, {"timezone", "+02:00"}},
                   {{"every", "daily 23:30"}, {"duration_minutes", 60}, {"tags", {"batch"}}}}),
      "alerting.maintenance");
  ASSERT_EQ(windows.size(), 2u);
  // 2023-11-12 was a Sunday: 02:00 at +02:00 is 00:00 UTC.
  const TimePoint sunday_utc_midnight = from_unix_ms(1'699'747'200'000);
  EXPECT_FALSE(windows[0].active_at(sunday_utc_midnight - 1s));
  EXPECT_TRUE(windows[0].active_at(sunday_utc_midnight));
  EXPECT_TRUE(windows[0].active_at(sunday_utc_midnight + 59min));
  EXPECT_FALSE(windows[0].active_at(sunday_utc_midnight + 60min));
  EXPECT_TRUE(windows[0].active_at(sunday_utc_midnight + std::chrono::hours(24 * 7)));
  EXPECT_FALSE(windows[0].active_at(sunday_utc_midnight + std::chrono::hours(24)));
  // Daily 23:30 UTC for an hour crosses midnight.
  EXPECT_TRUE(windows[1].active_at(sunday_utc_midnight - 10min));
  EXPECT_TRUE(windows[1].active_at(sunday_utc_midnight + 29min));
  EXPECT_FALSE(windows[1].active_at(sunday_utc_midnight + 30min));

  ServiceSpec batch;
  batch.name = "etl";
  batch.tags = {"nightly", "batch"};
  ServiceSpec web;
  web.name = "web";
  EXPECT_TRUE(windows[1].applies_to(batch));
  EXPECT_FALSE(windows[1].applies_to(web));
  EXPECT_TRUE(windows[0].applies_to(web));  // no services, no tags: global
  EXPECT_TRUE(in_maintenance(windows, batch, sunday_utc_midnight + 20min));
  EXPECT_FALSE(in_maintenance(windows, web, sunday_utc_midnight - 10min));
}

// ---- the "alerting" section ----

void expect_config_error(const json& section, const std::string& needle,
                         std::map<std::string, std::string> env = {}) {
  try {
    parse_alerting_config(section, "services.json: alerting", env_of(std::move(env)));
    ADD_FAILURE() << "accepted " << section.dump();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(AlertingConfigTest, SubstitutesEnvironmentVariablesAndNamesBadFields) {
  const auto cfg =
      parse_alerting_config({{"channels",
                              {{"hook",
                                {{"type", "webhook"},
                                 {"url", "http://127.0.0.1/${HOOK_PATH}"},
                                 {"headers", {{"Authorization", "Bearer ${HOOK_TOKEN}"}}}}}}}},
                            "alerting", env_of({{"HOOK_PATH", "in"}, {"HOOK_TOKEN", "t0k"}}));
  const auto& hook = dynamic_cast<const WebhookChannel&>(*cfg.channels.at("hook").channel);
  EXPECT_EQ(hook.config().url, "http://127.0.0.1/in");
  EXPECT_EQ(hook.config().headers.at(0).second, "Bearer t0k");

  expect_config_error({{"channels", {{"hook", {{"type", "webhook"}, {"url", "${NOPE}"}}}}}},
                      "alerting.channels.hook.url: environment variable NOPE is not set");
  expect_config_error({{"channels", {{"hook", {{"type", "fax"}}}}}}, "channels.hook.type");
  expect_config_error({{"channels", {{"hook", {{"type", "webhook"}}}}}}, "channels.hook.url");
  expect_config_error({{"channels", {{"hook", {{"type", "webhook"}, {"url", "ftp://x"}}}}}},
                      "channels.hook.url");
  expect_config_error({{"channels", {{"pd", {{"type", "pagerduty"}}}}}}, "channels.pd.routing_key");
  expect_config_error({{"channels", {{"s", {{"type", "slack"}}}}}}, "channels.s");
  expect_config_error({{"default", {"ghost"}}}, "alerting.default[0]: unknown channel");
  expect_config_error({{"teams", {{"sre", {"ghost"}}}}}, "alerting.teams.sre[0]");
  expect_config_error({{"chanels", json::object()}}, "unknown key \"chanels\"");
  expect_config_error({{"maintenance", {{{"every", "someday 02:00"}, {"duration_minutes", 5}}}}},
                      "alerting.maintenance[0].every");
  expect_config_error({{"maintenance", {{{"every", "sun 02:00"}}}}},
                      "maintenance[0].duration_minutes");
  expect_config_error(
      {{"maintenance",
        {{{"every", "sun 02:00"}, {"duration_minutes", 5}, {"timezone", "Mars/Olympus"}}}}},
      "maintenance[0].timezone");
  expect_config_error({{"maintenance", {{{"start", 10}, {"end", 5}}}}}, "maintenance[0].end");
  expect_config_error(
      {{"channels",
        {{"hook", {{"type", "webhook"}, {"url", "http://x"}, {"repeat_every_seconds", 0}}}}}},
      "repeat_every_seconds");
  // A secret never appears in a message.
  try {
    parse_alerting_config({{"channels", {{"hook", {{"type", "webhook"}, {"url", "${T}"}}}}}},
                          "alerting", env_of({{"T", "ftp://secret-value"}}));
    ADD_FAILURE();
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()).find("secret-value"), std::string::npos) << e.what();
  }
}

TEST(AlertingConfigTest, EachChannelTypeTakesOnlyItsOwnKeys) {
  expect_config_error(
      {{"channels",
        {{"s", {{"type", "slack"}, {"url", "http://x"}, {"headers", json::object()}}}}}},
      "alerting.channels.s.headers: only a webhook channel has headers");
  expect_config_error(
      {{"channels", {{"hook", {{"type", "webhook"}, {"url", "http://x"}, {"routing_key", "k"}}}}}},
      "alerting.channels.hook.routing_key: only a pagerduty channel has routing_key");
  expect_config_error({{"channels", {{"hook", {{"type", "webhook"}, {"hdrs", json::object()}}}}}},
                      "unknown key \"hdrs\" (known: type, url, headers, token, channel_id, "
                      "routing_key, repeat_every_seconds)");
  expect_config_error({{"channels", {{"hook", {{"type", "fax"}}}}}},
                      "alerting.channels.hook.type: expected webhook, slack or pagerduty, got "
                      "\"fax\"");
}

TEST(AlertingConfigTest, TheServicesFileMayCarryAnAlertingSection) {
  test::TempDir dir;
  const std::string path = dir.file("services.json");
  std::ofstream(path) << R"({"services": [{"name": "a", "url": "http://127.0.0.1/"}],
    "alerting": {"channels": {"hook": {"type": "webhook", "url": "http://127.0.0.1:9/h"}},
                 "default": ["hook"]}})";
  Settings settings;
  EXPECT_EQ(load_services_file(path, settings).size(), 1u);
  const auto cfg = load_alerting_config(path, env_of({}));
  EXPECT_EQ(cfg.default_channels, std::vector<std::string>{"hook"});
}

}  // namespace
}  // namespace vigil

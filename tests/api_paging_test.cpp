// Paging of the four lists (services, events, ticks, alerts) over real HTTP: a real ApiServer on
// 127.0.0.1, a real store of each backend (a SQLite file, a PostgreSQL schema), alerts written
// through a real AlertStore and, while pages are walked, new ticks and events written by a real
// Writer thread. Plus the cursor codec itself.
#include <gtest/gtest.h>
#include <httplib.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "api/paging.h"
#include "api/server.h"
#include "core/logging.h"
#include "storage/alert_store.h"
#include "storage/store.h"
#include "storage/writer.h"
#include "support/store_backends.h"
#include "support/target_server.h"

namespace vigil {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr std::int64_t kT0Ms = 1'700'000'000'000;

// ---- the cursor codec ----

TEST(PagingCodecTest, CursorsRoundTripAndStayURLSafe) {
  const paging::Key keys[] = {{0, 1}, {kT0Ms, 7}, {0, std::numeric_limits<std::int64_t>::max()}};
  for (const auto list :
       {paging::List::services, paging::List::events, paging::List::ticks, paging::List::alerts}) {
    for (const auto& key : keys) {
      const std::string cursor = paging::encode_cursor(list, 42, key);
      for (const char c : cursor) EXPECT_TRUE(std::isalnum(c) || c == '-' || c == '_') << cursor;
      EXPECT_EQ(paging::parse_cursor(cursor, list, 42), key);
    }
  }
  EXPECT_EQ(paging::parse_cursor(std::nullopt, paging::List::ticks, 1), std::nullopt);
}

TEST(PagingCodecTest, EveryEditedCharacterIsRejected) {
  const std::string cursor = paging::encode_cursor(paging::List::ticks, 3, {kT0Ms + 123, 4567});
  const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  int edits = 0;
  for (std::size_t i = 0; i < cursor.size(); ++i) {
    for (const char c : alphabet) {
      if (c == cursor[i]) continue;
      std::string edited = cursor;
      edited[i] = c;
      EXPECT_THROW(paging::parse_cursor(edited, paging::List::ticks, 3), paging::BadParam)
          << "position " << i << " -> " << c;
      ++edits;
    }
  }
  EXPECT_GT(edits, 1000);
  // Cut short, lengthened, padded, or from another list or service.
  for (const std::string& bad : {cursor.substr(0, cursor.size() - 1), cursor + "A", cursor + "=",
                                 std::string(""), std::string("!!"), std::string(500, 'A')})
    EXPECT_THROW(paging::parse_cursor(bad, paging::List::ticks, 3), paging::BadParam) << bad;
  EXPECT_THROW(paging::parse_cursor(cursor, paging::List::events, 3), paging::BadParam);
  EXPECT_THROW(paging::parse_cursor(cursor, paging::List::ticks, 4), paging::BadParam);
}

TEST(PagingCodecTest, LimitIsOneToAThousandDefaultHundred) {
  EXPECT_EQ(paging::parse_limit(std::nullopt), 100);
  EXPECT_EQ(paging::parse_limit("1"), 1);
  EXPECT_EQ(paging::parse_limit("1000"), 1000);
  for (const std::string bad : {"0", "-1", "1001", "x", "", "1.5", " 5", "+5", "5 ", "99999999999"})
    EXPECT_THROW(paging::parse_limit(bad), paging::BadParam) << bad;
}

// ---- the four lists over HTTP ----

struct Page {
  json items;
  json next;
};

struct Walk {
  std::vector<json> items;
  std::vector<std::size_t> page_sizes;
  std::vector<int> page_of;  // page index of each item
};

class PagingApiTest : public test::StoreBackendTest {
 protected:
  void SetUp() override {
    StoreBackendTest::SetUp();
    if (IsSkipped()) return;
    set_log_level(LogLevel::error);
    store_ = database().open();
    alerts_ = database().database()->open_alert_store();
    std::vector<ServiceSpec> specs;
    for (int i = 0; i < kServices; ++i) {
      ServiceSpec spec;
      spec.name = "svc-" + std::to_string(1000 + i);
      spec.url = "http://127.0.0.1:1/";
      spec.team = i % 3 == 0 ? "payments" : "search";
      specs.push_back(spec);
    }
    store_->sync_services(specs, from_unix_ms(kT0Ms));
    for (const auto& service : store_->active_services()) ids_.push_back(service.id);
    ASSERT_EQ(ids_.size(), static_cast<std::size_t>(kServices));
    ApiOptions options;
    options.alerts = alerts_.get();
    server_ = std::make_unique<ApiServer>(
        *store_, registry_, [] { return HealthReport{}; }, options);
    port_ = server_->start("127.0.0.1", 0);
    client_ = std::make_unique<httplib::Client>("127.0.0.1", port_);
    client_->set_keep_alive(true);
    client_->set_read_timeout(5s);
  }

  void TearDown() override {
    client_.reset();
    if (server_) server_->stop();
  }

  // `count` ticks of `id` from `start_ms`, one per `step_ms`; every tick flips up/down so each
  // opens an event; response_ms numbers the ticks (their identity in the JSON).
  std::vector<TickRecord> ticks_of(ServiceId id, int count, std::int64_t start_ms,
                                   std::int64_t step_ms, double first_number) {
    std::vector<TickRecord> out;
    for (int i = 0; i < count; ++i) {
      TickRecord record;
      record.tick.service_id = id;
      record.tick.ts = from_unix_ms(start_ms + step_ms * i);
      record.tick.up = (static_cast<int>(first_number) + i) % 2 == 0;
      record.tick.status_code = record.tick.up ? 200 : 503;
      record.tick.response_ms = first_number + i;
      record.tick.region = "local";
      metric_.add(record.tick.up, record.tick.response_ms);
      record.metric_after = metric_;
      record.opens_event = record.tick.up ? EventKind::uptime : EventKind::downtime;
      out.push_back(record);
    }
    return out;
  }

  std::pair<int, json> get(const std::string& path) {
    auto result = client_->Get(path.c_str());
    if (!result) throw std::runtime_error("request failed: " + path);
    return {result->status, json::parse(result->body)};
  }

  // The error message of a 400, or a description of what came instead.
  std::string error_400(const std::string& path) {
    const auto [status, body] = get(path);
    if (status != 400) return "status " + std::to_string(status) + " for " + path;
    return body["error"].get<std::string>();
  }

  // Follows `next` from `path` (which has a '?') until the last page; every page but the last is
  // full, and the last one has next null. At most 10,000 pages.
  Walk walk(const std::string& path, int limit, const std::function<Page(const json&)>& page_of,
            const std::function<void()>& between_pages = {}) {
    Walk out;
    std::string cursor;
    for (int page = 0; page < 10'000; ++page) {
      std::string url = path + "&limit=" + std::to_string(limit);
      if (!cursor.empty()) url += "&cursor=" + cursor;
      const auto [status, body] = get(url);
      EXPECT_EQ(status, 200) << url << ": " << body.dump();
      if (status != 200) return out;
      const Page current = page_of(body["data"]);
      out.page_sizes.push_back(current.items.size());
      for (const auto& item : current.items) {
        out.items.push_back(item);
        out.page_of.push_back(page);
      }
      if (current.next.is_null()) return out;
      EXPECT_TRUE(current.next.is_string()) << current.next.dump();
      EXPECT_EQ(current.items.size(), static_cast<std::size_t>(limit)) << "a page before the last";
      cursor = current.next.get<std::string>();
      if (between_pages) between_pages();
    }
    ADD_FAILURE() << "more than 10,000 pages";
    return out;
  }

  static Page nested(const json& data, const char* list) {
    return Page{data[list]["data"], data[list]["next"]};
  }

  static constexpr int kServices = 253;
  std::unique_ptr<Store> store_;
  std::unique_ptr<AlertStore> alerts_;
  prometheus::Registry registry_;
  std::vector<ServiceId> ids_;
  Metric metric_;
  std::unique_ptr<ApiServer> server_;
  int port_ = 0;
  std::unique_ptr<httplib::Client> client_;
};

INSTANTIATE_TEST_SUITE_P(Backends, PagingApiTest, test::kStoreBackends, test::backend_name);

TEST_P(PagingApiTest, ServicesWalkEveryServiceOnceInIdOrder) {
  for (const int limit : {1, 7, 11, 253, 1000}) {
    const Walk all =
        walk("/v1/services?", limit, [](const json& d) { return nested(d, "services"); });
    ASSERT_EQ(all.items.size(), ids_.size()) << "limit " << limit;
    for (std::size_t i = 0; i < ids_.size(); ++i) EXPECT_EQ(all.items[i]["id"], ids_[i]);
    // 253 = 11 x 23: the last page is full and still has no next.
    if (limit == 11) {
      EXPECT_EQ(all.page_sizes.size(), 23u);
    }
  }
  // Filters combine with the cursor (pass the same filters with it).
  const Walk payments =
      walk("/v1/services?team=payments", 10, [](const json& d) { return nested(d, "services"); });
  ASSERT_EQ(payments.items.size(), 85u);  // i % 3 == 0 for i < 253
  for (std::size_t i = 0; i < payments.items.size(); ++i)
    EXPECT_EQ(payments.items[i]["id"], ids_[3 * i]);
  // Without limit a page is 100 services.
  const auto [status, body] = get("/v1/services");
  ASSERT_EQ(status, 200);
  EXPECT_EQ(body["data"]["services"]["data"].size(), 100u);
  EXPECT_TRUE(body["data"]["services"]["next"].is_string());
  // The older offset still works, but not together with a cursor.
  const auto [offset_status, offset_body] = get("/v1/services?limit=2&offset=251");
  ASSERT_EQ(offset_status, 200);
  EXPECT_EQ(offset_body["data"]["services"]["data"][0]["id"], ids_[251]);
  EXPECT_TRUE(offset_body["data"]["services"]["next"].is_null());
  const std::string next = body["data"]["services"]["next"];
  EXPECT_NE(error_400("/v1/services?offset=5&cursor=" + next).find("cursor"), std::string::npos);
}

// Services are ordered by id, so the ones created during a walk come at its end; the walk still
// returns each service once, and every one that existed when it started.
TEST_P(PagingApiTest, ServicesCreatedDuringAWalkComeLastAndOnlyOnce) {
  int created = 0;
  const Walk all = walk(
      "/v1/services?", 20, [](const json& d) { return nested(d, "services"); },
      [&] {
        ServiceSpec spec;
        spec.name = "new-" + std::to_string(created++);
        spec.url = "http://127.0.0.1:1/";
        store_->create_service(spec, now_ms());
      });
  ASSERT_GE(created, 12);  // 253 services, 20 a page: a service created after each page
  ASSERT_EQ(all.items.size(), ids_.size() + static_cast<std::size_t>(created));
  std::set<std::int64_t> seen;
  for (std::size_t i = 0; i < all.items.size(); ++i) {
    EXPECT_TRUE(seen.insert(all.items[i]["id"].get<std::int64_t>()).second) << i;
    if (i < ids_.size()) {
      EXPECT_EQ(all.items[i]["id"], ids_[i]);
    } else {
      EXPECT_EQ(all.items[i]["name"].get<std::string>().rfind("new-", 0), 0u) << i;
    }
  }
}

TEST_P(PagingApiTest, EventsAndTicksWalkEveryItemOnceNewestFirst) {
  const ServiceId id = ids_[4];
  // 301 ticks (so 301 events), then a second region's ticks at the same instants as 40 of
  // them: ties on ts that the cursor must split exactly. Another service's ticks interleave.
  store_->apply(ticks_of(id, 301, kT0Ms, 1000, 0));
  auto same_instants = ticks_of(id, 40, kT0Ms + 100'000, 1000, 10'000);
  for (auto& record : same_instants) {
    record.tick.region = "second";
    record.opens_event.reset();
  }
  store_->apply(same_instants);
  store_->apply(ticks_of(ids_[5], 50, kT0Ms, 1000, 20'000));

  const std::string base = "/v1/services/" + std::to_string(id);
  for (const int limit : {1, 7, 100, 1000}) {
    const Walk ticks =
        walk(base + "/ticks?", limit, [](const json& d) { return nested(d, "ticks"); });
    ASSERT_EQ(ticks.items.size(), 341u) << "limit " << limit;
    std::set<double> seen;
    for (std::size_t i = 0; i < ticks.items.size(); ++i) {
      EXPECT_TRUE(seen.insert(ticks.items[i]["response_ms"].get<double>()).second)
          << "repeated at " << i;
      EXPECT_LT(ticks.items[i]["response_ms"].get<double>(), 20'000);  // this service only
      if (i > 0) {
        EXPECT_GE(ticks.items[i - 1]["ts_ms"], ticks.items[i]["ts_ms"]);
      }
    }
    const Walk events =
        walk(base + "/events?", limit, [](const json& d) { return nested(d, "events"); });
    ASSERT_EQ(events.items.size(), 301u) << "limit " << limit;
    for (std::size_t i = 1; i < events.items.size(); ++i)
      EXPECT_GT(events.items[i - 1]["id"], events.items[i]["id"]);
  }
  // from/to stay filters across pages: [t0 + 100 s, t0 + 139 s] holds 40 + 40 ticks.
  const Walk window = walk(base + "/ticks?from=" + std::to_string(kT0Ms / 1000 + 100) +
                               "&to=" + std::to_string(kT0Ms / 1000 + 139),
                           3, [](const json& d) { return nested(d, "ticks"); });
  EXPECT_EQ(window.items.size(), 80u);
  // The older `before` on events still pages by event id.
  const auto [status, body] = get(base + "/events?limit=5");
  ASSERT_EQ(status, 200);
  const auto fifth = body["data"]["events"]["data"][4]["id"].get<std::int64_t>();
  const auto [before_status, before] =
      get(base + "/events?limit=5&before=" + std::to_string(fifth));
  ASSERT_EQ(before_status, 200);
  const auto [cursor_status, by_cursor] =
      get(base + "/events?limit=5&cursor=" + body["data"]["events"]["next"].get<std::string>());
  ASSERT_EQ(cursor_status, 200);
  EXPECT_EQ(before["data"]["events"]["data"], by_cursor["data"]["events"]["data"]);
}

TEST_P(PagingApiTest, AlertsWalkEveryAlertOnceNewestFirst) {
  const auto none = [](const AlertRecord&) { return std::vector<NewNotification>{}; };
  std::vector<std::int64_t> created;
  for (int i = 0; i < 57; ++i) {
    const TimePoint at = from_unix_ms(kT0Ms + i * 1000);
    const auto alert = alerts_->open_alert(ids_[i % 3], "down", "503", std::nullopt, at, none);
    created.push_back(alert.alert_id);
    if (i < 54) alerts_->close_alert(alert.alert_id, at + 500ms, none);
  }
  for (const int limit : {1, 5, 57, 100}) {
    const Walk all = walk("/v1/alerts?", limit, [](const json& d) {
      return Page{d["alerts"], d["next"]};
    });
    ASSERT_EQ(all.items.size(), created.size()) << "limit " << limit;
    for (std::size_t i = 0; i < created.size(); ++i)
      EXPECT_EQ(all.items[i]["alert_id"], created[created.size() - 1 - i]);
  }
  // Filters stay with the cursor.
  const Walk active = walk("/v1/alerts?active=true", 1, [](const json& d) {
    return Page{d["alerts"], d["next"]};
  });
  EXPECT_EQ(active.items.size(), 3u);
  const Walk first_service =
      walk("/v1/alerts?service_id=" + std::to_string(ids_[0]), 4, [](const json& d) {
        return Page{d["alerts"], d["next"]};
      });
  EXPECT_EQ(first_service.items.size(), 19u);
}

// New ticks and events keep arriving through a real Writer while the pages are walked. A walk
// returns what was committed when its first page was read, each item exactly once, newest
// first: every seeded item, and the new items committed by then as one contiguous block at the
// head (the newest); items committed later sort before the cursor and so never show up.
TEST_P(PagingApiTest, WalksLoseAndRepeatNothingWhileTheWriterAddsItems) {
  const ServiceId id = ids_[7];
  store_->apply(ticks_of(id, 400, kT0Ms, 1000, 0));  // events 1..400 of this database
  constexpr double kFirstNew = 100'000;
  Writer writer(*store_, registry_, WriterOptions{.flush_interval = 2ms});
  std::atomic<int> submitted{0};
  std::atomic<bool> stop{false};
  std::thread producer([&] {
    // Newer instants than anything seeded; bounded in count and time.
    for (int i = 0; i < 3000 && !stop; ++i) {
      for (auto& record : ticks_of(id, 1, kT0Ms + 1'000'000 + i * 10, 10, kFirstNew + i))
        writer.submit(record);
      ++submitted;
      std::this_thread::sleep_for(1ms);
    }
  });
  // Let some arrive before the walks start, so their first pages already hold new items.
  for (int i = 0; i < 2000 && submitted < 20; ++i) std::this_thread::sleep_for(1ms);
  writer.flush();

  // `numbers` in walk order: unique; seeded ones (below `first_new`) all there; new ones a
  // contiguous run from `first_new`, all before the first seeded one.
  const auto check = [](const std::vector<double>& numbers, double first_new, const char* what) {
    std::set<double> seen;
    std::size_t seeded = 0, fresh = 0;
    double newest_fresh = first_new - 1;
    for (std::size_t i = 0; i < numbers.size(); ++i) {
      ASSERT_TRUE(seen.insert(numbers[i]).second) << what << " repeated at " << i;
      if (numbers[i] < first_new) {
        ++seeded;
      } else {
        ++fresh;
        ASSERT_EQ(seeded, 0u) << what << ": a new item after a seeded one at " << i;
        newest_fresh = std::max(newest_fresh, numbers[i]);
      }
    }
    EXPECT_EQ(seeded, 400u) << what;
    EXPECT_GE(fresh, 20u) << what;
    EXPECT_EQ(newest_fresh - first_new + 1, static_cast<double>(fresh)) << what << ": a gap";
  };
  const auto pause = [] { std::this_thread::sleep_for(2ms); };
  const std::string base = "/v1/services/" + std::to_string(id);
  const int before_walks = submitted;

  const Walk ticks = walk(
      base + "/ticks?", 9, [](const json& d) { return nested(d, "ticks"); }, pause);
  std::vector<double> numbers;
  for (std::size_t i = 0; i < ticks.items.size(); ++i) {
    numbers.push_back(ticks.items[i]["response_ms"].get<double>());
    if (i > 0) {
      EXPECT_GE(ticks.items[i - 1]["ts_ms"], ticks.items[i]["ts_ms"]);
    }
  }
  check(numbers, kFirstNew, "ticks");

  // Every tick opened an event: ids 1..400 seeded, 401.. new.
  const Walk events = walk(
      base + "/events?", 9, [](const json& d) { return nested(d, "events"); }, pause);
  numbers.clear();
  for (std::size_t i = 0; i < events.items.size(); ++i) {
    numbers.push_back(events.items[i]["id"].get<double>());
    if (i > 0) {
      EXPECT_GT(events.items[i - 1]["id"], events.items[i]["id"]);
    }
  }
  check(numbers, 401, "events");

  stop = true;
  producer.join();
  writer.flush();
  // The writer really wrote while the pages were read.
  EXPECT_GT(submitted.load(), before_walks) << "no tick arrived during the walks";
}

TEST_P(PagingApiTest, BadLimitAndCursorAre400sNamingTheParameter) {
  const ServiceId id = ids_[0];
  store_->apply(ticks_of(id, 3, kT0Ms, 1000, 0));
  const std::string service = "/v1/services/" + std::to_string(id);
  const std::string lists[] = {"/v1/services?", service + "/events?", service + "/ticks?",
                               "/v1/alerts?"};
  for (const auto& list : lists) {
    for (const std::string limit : {"0", "-1", "1001", "x", "", "2.5", "%2B5"}) {
      const std::string message = error_400(list + "limit=" + limit);
      EXPECT_NE(message.find("limit"), std::string::npos) << list << limit << ": " << message;
    }
    for (const std::string cursor : {"", "x", "%21%21%21", "AAAA", "MXxzfDB8MHwxfDAwMDAwMDAw"}) {
      const std::string message = error_400(list + "cursor=" + cursor);
      EXPECT_NE(message.find("cursor"), std::string::npos) << list << cursor << ": " << message;
    }
  }
  // A cursor belongs to its list and its service.
  const std::string tick_cursor =
      get(service + "/ticks?limit=1").second["data"]["ticks"]["next"].get<std::string>();
  const std::string event_cursor =
      get(service + "/events?limit=1").second["data"]["events"]["next"].get<std::string>();
  EXPECT_NE(error_400(service + "/events?cursor=" + tick_cursor).find("another list"),
            std::string::npos);
  EXPECT_NE(error_400("/v1/services?cursor=" + event_cursor).find("cursor"), std::string::npos);
  EXPECT_NE(error_400("/v1/services/" + std::to_string(ids_[1]) + "/ticks?cursor=" + tick_cursor)
                .find("cursor"),
            std::string::npos);
  // The older start parameters do not combine with a cursor.
  EXPECT_NE(error_400(service + "/events?before=9&cursor=" + event_cursor).find("before"),
            std::string::npos);
  // An edited cursor (one character changed) is refused, not read as another position.
  std::string edited = tick_cursor;
  edited[edited.size() / 2] = edited[edited.size() / 2] == 'A' ? 'B' : 'A';
  EXPECT_NE(error_400(service + "/ticks?cursor=" + edited).find("cursor"), std::string::npos);
  // Only ever 400: a good cursor still works next to them.
  EXPECT_EQ(get(service + "/ticks?limit=1&cursor=" + tick_cursor).first, 200);
}

}  // namespace
}  // namespace vigil

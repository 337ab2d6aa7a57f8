#include "api/push_routes.h"

#include <httplib.h>

#include <charconv>
#include <cmath>
#include <optional>
#include <string>

#include "api/params.h"
#include "api/responses.h"
#include "core/text.h"

namespace vigil {
namespace {

using nlohmann::json;

// The longest msg a beat keeps.
constexpr std::size_t kMaxPushMessage = 1024;

BeatReport beat_report(const httplib::Request& req, bool fail) {
  // Query and form fields (httplib parses both into params), or a JSON object body.
  std::optional<std::string> status = optional_param(req, "status");
  std::optional<std::string> message = optional_param(req, "msg");
  std::optional<double> duration;
  if (const auto text = optional_param(req, "duration_ms")) {
    double value = 0;
    const auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
    if (text->empty() || ec != std::errc{} || end != text->data() + text->size())
      throw bad_request("duration_ms must be a number of milliseconds, 0 or more");
    duration = value;
  }
  if (req.get_header_value("Content-Type").starts_with("application/json") && !req.body.empty()) {
    const json body = body_object(req);
    for (const auto& [key, value] : body.items()) {
      if (key == "status" && value.is_string()) {
        status = value.get<std::string>();
      } else if (key == "msg" && value.is_string()) {
        message = value.get<std::string>();
      } else if (key == "duration_ms" && value.is_number()) {
        duration = value.get<double>();
      } else if (key == "status" || key == "msg" || key == "duration_ms") {
        throw bad_request(key + ": wrong type, got " + dump(value));
      } else {
        throw bad_request("body: unknown key \"" + key + "\" (known: status, msg, duration_ms)");
      }
    }
  }
  BeatReport beat;
  beat.at = now_ms();
  beat.up = !fail;
  if (status) {
    if (*status != "up" && *status != "down") throw bad_request("status must be up or down");
    if (fail && *status == "up") throw bad_request("status: /fail always records a failure");
    beat.up = *status == "up";
  }
  if (message) {
    if (message->size() > kMaxPushMessage)
      throw bad_request("msg: at most " + std::to_string(kMaxPushMessage) + " bytes, got " +
                        std::to_string(message->size()));
    // A job's output in a legacy encoding must not cost the beat: invalid bytes become
    // U+FFFD (which may lengthen it, hence the cut on a character boundary).
    beat.message = clean_text(*message, kMaxPushMessage);
  }
  if (duration) {
    if (!std::isfinite(*duration) || *duration < 0 || *duration > 1e10)
      throw bad_request("duration_ms must be a number of milliseconds, 0 or more");
    beat.duration_ms = *duration;
  }
  return beat;
}

}  // namespace

void add_push_routes(Router& router, Store& store, ServiceCommands* commands,
                     PushTokenIndex& push_tokens) {
  const auto push = [&store, commands, &push_tokens](const httplib::Request& req,
                                                     httplib::Response& res,
                                                     const std::smatch& path) {
    const std::string token = path[1].str();
    const bool fail = path[2].matched;
    // The token first: an unknown one is a 404 whatever else the request says, and nothing
    // is written for it.
    const auto id = push_tokens.find(token);
    if (!id) throw ApiError(404, "unknown push token");
    const BeatReport beat = beat_report(req, fail);
    if (commands && commands->watches(*id)) {
      // A 200 means stored: the route waits for the commit of the beat's tick (a waiting
      // request holds only its own thread, never the runner's loop or the writer).
      switch (commands->beat(*id, beat).wait_for(kApiWriteWait)) {
        case CommitOutcome::committed:
          break;
        case CommitOutcome::ignored:  // the service was deleted or changed kind meanwhile
          push_tokens.invalidate(token);
          throw ApiError(404, "unknown push token");
        case CommitOutcome::dropped:
          throw StorageUnavailable(
              "push: the beat's tick was dropped before it was stored (the "
              "write queue is full or vigil is stopping)");
        case CommitOutcome::timed_out:
          throw StorageUnavailable("push: the beat's tick was not committed within " +
                                   std::to_string(kApiWriteWait.count()) +
                                   " ms (storage is failing or slow)");
      }
    } else {
      // Committed before it returns: the beat is in the database, for the runner process that
      // watches the heartbeat.
      switch (store.enqueue_beat(*id, beat)) {
        case Store::BeatQueued::queued:
          break;
        case Store::BeatQueued::unknown_service:
          push_tokens.invalidate(token);
          throw ApiError(404, "unknown push token");
        case Store::BeatQueued::full:
          throw ApiError(503,
                         "too many beats waiting for the runner process: is `vigil runner` "
                         "running on this database?");
      }
    }
    res.status = 200;
    res.set_content("OK", "text/plain");
  };
  // msg is free text, cleaned by beat_report rather than refused when it is not UTF-8.
  router.add("/v1/push/{token}", R"(/v1/push/([^/]+)(/fail)?)", "GET", Gate::open, push, "msg");
  router.add("/v1/push/{token}", R"(/v1/push/([^/]+)(/fail)?)", "POST", Gate::open, push, "msg");
}

}  // namespace vigil

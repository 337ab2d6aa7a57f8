#include "api/system_routes.h"

#include <httplib.h>
#include <prometheus/collectable.h>
#include <prometheus/registry.h>

#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "api/freshness_gauges.h"
#include "api/json_views.h"
#include "api/metrics_exposition.h"
#include "api/openapi.h"
#include "api/responses.h"
#include "api/uptime_gauges.h"
#include "core/logging.h"
#include "core/shards.h"

namespace vigil {
namespace {

using nlohmann::json;

constexpr const char* kPrometheusType = "text/plain; version=0.0.4; charset=utf-8";

// One part in /healthz: {"status","age_seconds","instance"}, the last two when it is running.
json part_json(const PartVerdict& verdict) {
  json part = {{"status", part_state_word(verdict.state)}};
  if (verdict.age) {
    part["age_seconds"] = double(verdict.age->count()) / 1000.0;
    part["instance"] = verdict.instance;
  }
  return part;
}

void healthz(Store& store, const ApiOptions& options, const HealthCheck& health,
             httplib::Response& res) {
  json data = json::object();
  std::vector<std::string> failed;
  std::string storage_failure;
  try {
    const HealthReport report = health ? health() : HealthReport{};
    const auto verdicts =
        judge_parts(report.parts, options.health_clock(), options.health_silent_after);
    for (const auto& verdict : verdicts) data[verdict.part] = part_json(verdict);
    if (const std::string silent = describe_silent(verdicts); !silent.empty())
      failed.push_back(silent);
    storage_failure = report.storage_failure;
  } catch (const std::exception& e) {
    log_error(std::string("api: health check failed: ") + e.what());
    for (const std::string_view part : kHealthParts) data[std::string(part)] = "unknown";
    failed.emplace_back("health check");
  }
  data["silent_after_seconds"] = double(options.health_silent_after.count()) / 1000.0;
  std::optional<std::string> ping_failure;
  try {
    ping_failure = store.ping_failure();
  } catch (const std::exception& e) {
    ping_failure = e.what();
    log_error(std::string("api: storage ping failed: ") + e.what());
  }
  const bool storage_ok = !ping_failure;
  data["storage"] = storage_ok ? "ok" : "failed";
  if (!storage_ok) {
    // Which database cannot be read, and why: an operator's first question.
    data["storage_error"] = *ping_failure;
    failed.push_back("storage (" + *ping_failure + ")");
  }
  if (storage_ok && !storage_failure.empty()) {
    data["storage"] = "failing";
    data["storage_error"] = storage_failure;
    failed.push_back("storage writes failing (" + storage_failure + ")");
  }

  if (failed.empty()) return send_json(res, 200, envelope(200, std::move(data)));
  std::string message = "unhealthy:";
  for (const auto& part : failed) message += " " + part;
  json body = error_envelope(503, message);
  body["data"] = std::move(data);
  send_json(res, 503, body);
}

// The registry's families and the collectables' (api/metrics_exposition.h), streamed to the
// client in pieces: at 100,000 services the text is tens of megabytes, and neither it nor the
// series as prometheus-cpp objects are ever held whole.
void metrics(prometheus::Registry& registry,
             std::vector<std::shared_ptr<prometheus::Collectable>> collectables,
             httplib::Response& res) {
  res.status = 200;
  res.set_chunked_content_provider(
      kPrometheusType,
      [&registry, collectables = std::move(collectables)](std::size_t, httplib::DataSink& sink) {
        std::vector<const prometheus::Collectable*> sources{&registry};
        for (const auto& collectable : collectables) sources.push_back(collectable.get());
        TextExpositionWriter out(
            [&sink](std::string_view piece) { return sink.write(piece.data(), piece.size()); });
        write_metrics_text(sources, out);
        out.finish();
        sink.done();
        return true;
      });
}

// GET /v1/cluster: data.members (storage/cluster.h's MemberView) and data.shards_per_region.
void cluster(const ApiOptions& options, httplib::Response& res) {
  if (!options.cluster_members)
    throw ApiError(503, "this process does not know its cluster's members");
  json members = json::array();
  for (const auto& member : options.cluster_members()) {
    members.push_back({{"name", member.name},
                       {"region", member.region},
                       {"role", member.role},
                       {"address", member.address},
                       {"version", member.version},
                       {"started_at", to_unix_seconds(member.started_at)},
                       {"lease_age_seconds", double(member.lease_age.count()) / 1000.0},
                       {"live", member.live},
                       {"shards", member.shards},
                       {"last_error", member.last_error}});
  }
  send_json(res, 200,
            envelope(200, {{"shards_per_region", kShardCount}, {"members", std::move(members)}}));
}

}  // namespace

void add_system_routes(Router& router, Store& store, prometheus::Registry& registry,
                       const ApiOptions& options, HealthCheck health) {
  router.add("/healthz", "/healthz", "GET", Gate::open,
             [&store, &options, health = std::move(health)](const auto&, auto& res, const auto&) {
               healthz(store, options, health, res);
             });
  // Series /metrics collects besides the registry: the caller's, then the API's own.
  std::vector<std::shared_ptr<prometheus::Collectable>> collectables = options.collectables;
  collectables.push_back(std::make_shared<UptimeGauges>(store));
  collectables.push_back(std::make_shared<FreshnessGauges>(store));
  router.add("/metrics", "/metrics", "GET", Gate::read,
             [&registry, collectables = std::move(collectables)](
                 const auto&, auto& res, const auto&) { metrics(registry, collectables, res); });
  router.add("/v1/cluster", "/v1/cluster", "GET", Gate::read,
             [&options](const auto&, auto& res, const auto&) { cluster(options, res); });
  // The API's own documentation, open like /healthz.
  router.add("/openapi.json", "/openapi.json", "GET", Gate::open,
             [](const auto&, auto& res, const auto&) {
               res.status = 200;
               res.set_content(std::string(openapi_document()), kJsonType);
             });
  router.add("/docs", "/docs", "GET", Gate::open, [](const auto&, auto& res, const auto&) {
    // The document is fixed at build time: render it once.
    static const std::string page = render_docs_html(openapi_document());
    res.status = 200;
    res.set_content(page, kHtmlType);
  });
}

}  // namespace vigil

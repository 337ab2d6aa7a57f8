// The API's JSON views (api/json_views.h) parsed back into a nlohmann tree, as a client reads
// them, so tests can check fields and nulls rather than text. Header-only; api_* tests only.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "api/json_views.h"

namespace vigil::test {

inline nlohmann::json event_json(const Event& event) {
  std::string text;
  append_event_json(text, event);
  return nlohmann::json::parse(text);
}

inline nlohmann::json metric_json(const Metric& metric) {
  std::string text;
  append_metric_json(text, metric);
  return nlohmann::json::parse(text);
}

inline nlohmann::json service_json(const ServiceView& view,
                                   const ServiceJsonOptions& options = {}) {
  std::string text;
  append_service_json(text, view, options);
  return nlohmann::json::parse(text);
}

inline nlohmann::json tick_json(const Tick& tick) {
  std::string text;
  append_tick_json(text, tick);
  return nlohmann::json::parse(text);
}

}  // namespace vigil::test

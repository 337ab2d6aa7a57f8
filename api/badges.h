// Shields-style SVG badges: a grey label and a coloured value, for
//   GET /v1/services/{id}/badges/{status,uptime,response-time}.svg and /v1/badges/{name}/...
// Colours (README, Badges): status up brightgreen, down red, stale orange, unknown grey;
// uptime >= 99.9% brightgreen, >= 99% green, >= 95% yellow, >= 90% orange, else red; p95
// response time < 200 ms brightgreen, < 500 ms green, < 1 s yellow, < 2 s orange, else red; no
// data grey. Any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/model.h"
#include "storage/store.h"

namespace vigil::badges {

inline constexpr const char* kBrightGreen = "#4c1";
inline constexpr const char* kGreen = "#97ca00";
inline constexpr const char* kYellow = "#dfb317";
inline constexpr const char* kOrange = "#fe7d37";
inline constexpr const char* kRed = "#e05d44";
inline constexpr const char* kGrey = "#9f9f9f";

struct Badge {
  std::string label;
  std::string value;
  std::string color;  // one of the constants above
};

// The window of an uptime or response-time badge: 24h (the default, when `name` is empty), 7d
// or 30d; empty for anything else (the API answers 400).
std::optional<Millis> window_of(std::string_view name);

const char* uptime_color(std::optional<double> percent);
const char* response_time_color(std::optional<double> p95_ms);

// "stale" when is_stale at `now` (storage/store.h).
Badge status_badge(const ServiceView& view, TimePoint now);
// From what the probes said over the window (Store::summarize).
Badge uptime_badge(const RollupSummary& window, std::string_view window_name);
Badge response_time_badge(const RollupSummary& window, std::string_view window_name);

// The SVG document (label and value escaped), about 1 KB.
std::string render_svg(const Badge& badge);

}  // namespace vigil::badges

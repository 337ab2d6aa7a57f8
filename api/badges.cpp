#include "api/badges.h"

#include <cmath>

#include "api/html.h"
#include "core/text.h"

namespace vigil::badges {
namespace {

// Approximate advance widths of Verdana 11px (the shields.io font), enough to size the boxes.
double text_width(std::string_view text) {
  double width = 0;
  for (unsigned char c : text) {
    if ((c & 0xC0) == 0x80) continue;  // UTF-8 continuation byte: counted with its lead byte
    if (c == ' ' || c == '.' || c == ',' || c == ':' || c == 'i' || c == 'l' || c == 'j' ||
        c == '|' || c == '!' || c == '\'')
      width += 3.9;
    else if (c == 'm' || c == 'w' || c == 'M' || c == 'W' || c == '%')
      width += 11.0;
    else if (c >= 'A' && c <= 'Z')
      width += 7.8;
    else
      width += 6.9;
  }
  return std::ceil(width);
}

}  // namespace

std::optional<Millis> window_of(std::string_view name) {
  if (name.empty() || name == "24h") return Millis(86'400'000);
  if (name == "7d") return Millis(7LL * 86'400'000);
  if (name == "30d") return Millis(30LL * 86'400'000);
  return std::nullopt;
}

const char* uptime_color(std::optional<double> percent) {
  if (!percent) return kGrey;
  if (*percent >= 99.9) return kBrightGreen;
  if (*percent >= 99.0) return kGreen;
  if (*percent >= 95.0) return kYellow;
  if (*percent >= 90.0) return kOrange;
  return kRed;
}

const char* response_time_color(std::optional<double> p95_ms) {
  if (!p95_ms) return kGrey;
  if (*p95_ms < 200) return kBrightGreen;
  if (*p95_ms < 500) return kGreen;
  if (*p95_ms < 1000) return kYellow;
  if (*p95_ms < 2000) return kOrange;
  return kRed;
}

Badge status_badge(const ServiceView& view, TimePoint now) {
  if (is_stale(view, now)) return Badge{"status", "stale", kOrange};
  if (!view.open_event) return Badge{"status", "unknown", kGrey};
  if (view.open_event->kind == EventKind::downtime) return Badge{"status", "down", kRed};
  return Badge{"status", "up", kBrightGreen};
}

Badge uptime_badge(const RollupSummary& window, std::string_view window_name) {
  const auto percent = window.uptime_percent();
  std::string value = "no data";
  if (percent) {
    // 99.95% shows two decimals; 100% and whole numbers none.
    value = *percent >= 100.0 ? std::string("100%") : fixed(*percent, 2) + "%";
  }
  return Badge{"uptime " + std::string(window_name.empty() ? "24h" : window_name), value,
               uptime_color(percent)};
}

Badge response_time_badge(const RollupSummary& window, std::string_view window_name) {
  const auto p95 = window.percentile(0.95);
  std::string value = "no data";
  if (p95) value = *p95 < 10 ? fixed(*p95, 1) + " ms" : fixed(*p95, 0) + " ms";
  return Badge{"p95 " + std::string(window_name.empty() ? "24h" : window_name), value,
               response_time_color(p95)};
}

std::string render_svg(const Badge& badge) {
  const std::string label = html::escape(badge.label);
  const std::string value = html::escape(badge.value);
  const int lw = int(text_width(badge.label)) + 10;
  const int vw = int(text_width(badge.value)) + 10;
  const int w = lw + vw;
  const std::string sw = std::to_string(w), slw = std::to_string(lw), svw = std::to_string(vw);
  std::string out;
  out.reserve(1200);
  out += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + sw +
         "\" height=\"20\" role=\"img\" aria-label=\"" + label + ": " + value + "\"><title>" +
         label + ": " + value +
         "</title><linearGradient id=\"s\" x2=\"0\" y2=\"100%\"><stop offset=\"0\" "
         "stop-color=\"#bbb\" stop-opacity=\".1\"/><stop offset=\"1\" stop-opacity=\".1\"/>"
         "</linearGradient><clipPath id=\"r\"><rect width=\"" +
         sw +
         "\" height=\"20\" rx=\"3\" fill=\"#fff\"/></clipPath><g clip-path=\"url(#r)\">"
         "<rect width=\"" +
         slw + "\" height=\"20\" fill=\"#555\"/><rect x=\"" + slw + "\" width=\"" + svw +
         "\" height=\"20\" fill=\"" + badge.color + "\"/><rect width=\"" + sw +
         "\" height=\"20\" fill=\"url(#s)\"/></g><g fill=\"#fff\" text-anchor=\"middle\" "
         "font-family=\"Verdana,Geneva,DejaVu Sans,sans-serif\" font-size=\"11\">"
         "<text x=\"" +
         fixed(lw / 2.0, 1) + "\" y=\"14\">" + label + "</text><text x=\"" +
         fixed(lw + vw / 2.0, 1) + "\" y=\"14\" class=\"value\">" + value + "</text></g></svg>\n";
  return out;
}

}  // namespace vigil::badges

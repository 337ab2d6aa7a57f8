#include "api/status_page.h"

#include <algorithm>
#include <cmath>

#include "api/html.h"
#include "core/text.h"
#include "core/url_redaction.h"

namespace vigil {
namespace {

using html::append_escaped;

constexpr const char* kStyle =
    "body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:72em;padding:1em;"
    "color:#1f2328;background:#fff}a{color:#0b5cad}h1{margin:.2em 0}"
    ".overall{padding:.8em 1em;border-radius:6px;color:#fff;font-size:1.2em;margin:.6em 0}"
    ".ok{background:#2e9e4f}.bad{background:#c0392b}.unk{background:#7a7a7a}"
    ".warn{background:#a85d00}"
    ".meta{color:#555;font-size:.9em}details{margin:.8em 0}summary{font-weight:600;"
    "font-size:1.1em;cursor:pointer}.svc{border:1px solid #e3e3e3;border-radius:6px;"
    "padding:.5em .8em;margin:.4em 0}.head{display:flex;flex-wrap:wrap;gap:.4em 1em;"
    "align-items:baseline}.name{font-weight:600}.state{font-weight:600}"
    ".s-up{color:#2e7d32}.s-down{color:#c0392b}.s-unknown{color:#666}.s-stale{color:#a85d00}"
    ".muted{color:#8a5a00}.checked{color:#666;font-size:.9em}"
    ".upt{color:#444;font-variant-numeric:tabular-nums}.upt b{font-weight:500;color:#777}"
    ".row2{display:flex;flex-wrap:wrap;gap:.6em;align-items:center;margin-top:.3em}"
    ".bar{display:flex;gap:1px;height:22px}.bar i{display:block;width:4px;border-radius:1px}"
    ".bar.big{height:30px}.bar.big i{width:7px}.bar.hours i{width:4px}"
    "i.c0{background:#2e9e4f}i.c1{background:#9ccc65}i.c2{background:#f4c20d}"
    "i.c3{background:#ef6c00}i.c4{background:#c0392b}i.cn{background:#ddd}"
    "svg.spark{width:200px;height:30px}svg.chart{width:100%;max-width:900px;height:auto}"
    "table{border-collapse:collapse;width:100%;font-size:.92em}td,th{text-align:left;"
    "padding:.25em .5em;border-top:1px solid #eee}.pager a,.pager span{margin-right:.6em}"
    ".legend span{margin-right:1em}.sw{display:inline-block;width:10px;height:10px;"
    "margin-right:.3em}";

// Reloads every 30 s; the page is complete without it.
constexpr const char* kRefreshScript =
    "<script>setTimeout(function(){location.reload()},30000)</script>";

const char* state_word(ServiceState state) {
  switch (state) {
    case ServiceState::up:
      return "up";
    case ServiceState::down:
      return "down";
    case ServiceState::stale:
      return "stale";
    case ServiceState::unknown:
      break;
  }
  return "unknown";
}

// Colour class of a cell by its uptime (see README: Status page).
const char* cell_class(const BarCell& cell) {
  const auto percent = cell.uptime_percent();
  if (!percent) return "cn";
  if (*percent >= 99.9) return "c0";
  if (*percent >= 99.0) return "c1";
  if (*percent >= 95.0) return "c2";
  if (*percent >= 90.0) return "c3";
  return "c4";
}

std::string percent_text(const std::optional<double>& percent) {
  return percent ? fixed(*percent, 2) + "%" : std::string("no data");
}

std::string ms_text(double ms) { return ms < 10 ? fixed(ms, 1) + " ms" : fixed(ms, 0) + " ms"; }

void head(std::string& out, const std::string& title, const std::string& heading) {
  out +=
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/>"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/><title>";
  append_escaped(out, heading.empty() ? title : heading + " - " + title);
  out += "</title><style>";
  out += kStyle;
  out += "</style></head><body>";
}

void tail(std::string& out) {
  out += kRefreshScript;
  out += "</body></html>\n";
}

// A bar of cells with tooltips: "<date>: 99.95% up, 3 min down".
void bar(std::string& out, const std::vector<BarCell>& cells, const char* css, bool hourly) {
  out += "<div class=\"";
  out += css;
  out += "\" role=\"img\" aria-label=\"";
  out += hourly ? "hourly uptime" : "daily uptime";
  out += "\">";
  for (const BarCell& cell : cells) {
    out += "<i class=\"";
    out += cell_class(cell);
    out += "\" title=\"";
    out += hourly ? html::utc_minute(cell.start) : html::utc_date(cell.start);
    out += ": ";
    out += cell.probes ? percent_text(cell.uptime_percent()) + " up" : std::string("no data");
    out += ", ";
    out += fixed(std::round(cell.downtime_minutes), 0);
    out += " min down\"></i>";
  }
  out += "</div>";
}

// SVG polyline points of `values` scaled into width x height (missing values break nothing:
// they are skipped, the line joins its neighbours).
template <typename Get>
std::string polyline_points(const std::vector<LatencyPoint>& points, double width, double height,
                            double max_ms, Get get) {
  std::string out;
  const double step = points.size() > 1 ? width / double(points.size() - 1) : 0;
  int drawn = 0;
  double last_x = 0, last_y = 0;
  for (std::size_t i = 0; i < points.size(); ++i) {
    const std::optional<double> value = get(points[i]);
    if (!value) continue;
    if (!out.empty()) out += ' ';
    last_x = double(i) * step;
    last_y = height - height * (*value / max_ms);
    out += fixed(last_x, 1) + "," + fixed(last_y, 1);
    ++drawn;
  }
  // A lone point would draw nothing: make it a short dash.
  if (drawn == 1)
    out += " " + fixed(last_x + (last_x + 3 > width ? -3 : 3), 1) + "," + fixed(last_y, 1);
  return out;
}

double max_of(const std::vector<LatencyPoint>& points) {
  double max_ms = 0;
  for (const auto& p : points) {
    if (p.p95_ms) max_ms = std::max(max_ms, *p.p95_ms);
    if (p.mean_ms) max_ms = std::max(max_ms, *p.mean_ms);
  }
  return max_ms > 0 ? max_ms * 1.1 : 1;
}

void sparkline(std::string& out, const std::vector<LatencyPoint>& points) {
  const double max_ms = max_of(points);
  std::optional<double> last;
  for (const auto& p : points)
    if (p.p95_ms) last = p.p95_ms;
  out +=
      "<svg class=\"spark\" viewBox=\"0 0 200 30\" role=\"img\" "
      "xmlns=\"http://www.w3.org/2000/svg\"><title>p95 response time per 15 min, 24 h";
  if (last) out += "; latest " + ms_text(*last);
  out += "</title><polyline fill=\"none\" stroke=\"#0b5cad\" stroke-width=\"1.2\" points=\"";
  out += polyline_points(points, 200, 28, max_ms, [](const LatencyPoint& p) { return p.p95_ms; });
  out += "\"/></svg>";
}

void state_span(std::string& out, const ServiceRow& row, TimePoint now) {
  out += "<span class=\"state s-";
  out += state_word(row.state);
  out += "\">";
  out += state_word(row.state);
  // A stale service's open event says how it was, not how long it has been so.
  if (row.state_for && row.state != ServiceState::stale)
    out += " for " + html::human_duration(*row.state_for);
  out += "</span>";
  if (row.view.service.spec.muted_at(now)) out += " <span class=\"muted\">muted</span>";
  if (const auto& last = row.view.last_tick_at) {
    out += " <span class=\"checked\" title=\"" + html::utc_minute(*last) + "\">last checked " +
           html::human_duration(std::chrono::duration_cast<Millis>(now - *last)) + " ago</span>";
  } else {
    out += " <span class=\"checked\">never checked</span>";
  }
}

void uptime_spans(std::string& out, const ServiceRow& row) {
  out += "<span class=\"upt\">";
  for (std::size_t w = 0; w < kUptimeWindowNames.size(); ++w) {
    out += "<b>";
    out += kUptimeWindowNames[w];
    out += "</b> <span class=\"u-";
    out += kUptimeWindowNames[w];
    out += "\">";
    out += percent_text(row.uptime_percent[w]);
    out += "</span> ";
  }
  out += "</span>";
}

void service_row(std::string& out, const ServiceRow& row, TimePoint now) {
  const std::string id = std::to_string(row.view.service.id);
  out += "<div class=\"svc\" id=\"svc-" + id + "\" data-service-id=\"" + id + "\" data-state=\"";
  out += state_word(row.state);
  out += "\"><div class=\"head\"><a class=\"name\" href=\"/services/" + id + "\">";
  append_escaped(out, row.view.service.spec.name);
  out += "</a> ";
  state_span(out, row, now);
  out += " ";
  uptime_spans(out, row);
  out += "</div><div class=\"row2\">";
  bar(out, row.days, "bar", false);
  sparkline(out, row.sparkline);
  out += "</div></div>\n";
}

void overall(std::string& out, int total, int down, int unknown, int stale, TimePoint now) {
  const char* css = down > 0    ? "bad"
                    : stale > 0 ? "warn"
                                : (total == 0 || unknown == total ? "unk" : "ok");
  out += "<div class=\"overall ";
  out += css;
  out += "\" id=\"overall\">";
  if (total == 0)
    out += "No services are monitored";
  else if (down == 0 && stale == 0)
    out += "All systems operational";
  if (down > 0) out += std::to_string(down) + (down == 1 ? " service down" : " services down");
  if (down > 0 && stale > 0) out += ", ";
  // Stale: vigil cannot say whether they are up, so the headline does not claim it.
  if (stale > 0)
    out += std::to_string(stale) + (stale == 1 ? " service" : " services") +
           " not checked recently (stale)";
  if (unknown > 0) out += " (" + std::to_string(unknown) + " not checked yet)";
  out += "</div><p class=\"meta\">Last update: " + html::utc_minute(now) +
         ". Uptime is probes up / probes.</p>";
}

// Instead of the headline while a part of monitoring is silent: its states are not current.
void monitoring_down(std::string& out, const std::string& silent, TimePoint now) {
  out +=
      "<div class=\"overall bad\" id=\"overall\" data-monitoring=\"down\">Monitoring is "
      "down (";
  append_escaped(out, silent);
  out += "): the states below may be out of date</div><p class=\"meta\">Last update: " +
         html::utc_minute(now) + ".</p>";
}

// A chart of mean and p95 response time, with the phase means stacked under the mean when
// probes recorded phases.
void latency_chart(std::string& out, const std::vector<LatencyPoint>& points, const char* id,
                   const char* caption) {
  constexpr double kW = 900, kH = 180;
  const double max_ms = max_of(points);
  out += "<figure><svg class=\"chart\" id=\"";
  out += id;
  out += "\" viewBox=\"0 0 900 200\" role=\"img\" xmlns=\"http://www.w3.org/2000/svg\"><title>";
  out += caption;
  out += "</title><rect x=\"0\" y=\"0\" width=\"900\" height=\"180\" fill=\"#fafafa\"/>";
  // Stacked phases: each band is the sum of the phases up to it.
  static constexpr const char* kPhaseColors[] = {"#d1c4e9", "#b3e5fc", "#c8e6c9", "#ffe0b2",
                                                 "#f8bbd0"};
  const double step = points.size() > 1 ? kW / double(points.size() - 1) : 0;
  bool any_phases = false;
  for (const auto& p : points) any_phases = any_phases || p.phases.has_value();
  if (any_phases) {
    for (int band = 4; band >= 0; --band) {
      std::string poly;
      for (std::size_t i = 0; i < points.size(); ++i) {
        if (!points[i].phases) continue;
        const PhaseTimings& ph = *points[i].phases;
        const double parts[] = {ph.resolve_ms, ph.connect_ms, ph.tls_ms, ph.processing_ms,
                                ph.transfer_ms};
        double top = 0;
        for (int k = 0; k <= band; ++k) top += parts[k];
        poly += fixed(double(i) * step, 1) + "," + fixed(kH - kH * top / max_ms, 1) + " ";
      }
      if (poly.empty()) continue;
      // Close the area along the bottom edge.
      out += "<polygon fill=\"";
      out += kPhaseColors[band];
      out +=
          "\" points=\"0," + fixed(kH, 1) + " " + poly + fixed(kW, 1) + "," + fixed(kH, 1) + "\"/>";
    }
  }
  out += "<polyline fill=\"none\" stroke=\"#2e7d32\" stroke-width=\"1.5\" points=\"" +
         polyline_points(points, kW, kH, max_ms, [](const LatencyPoint& p) { return p.mean_ms; }) +
         "\"/>";
  out += "<polyline fill=\"none\" stroke=\"#c0392b\" stroke-width=\"1.5\" points=\"" +
         polyline_points(points, kW, kH, max_ms, [](const LatencyPoint& p) { return p.p95_ms; }) +
         "\"/>";
  out += "<text x=\"4\" y=\"14\" font-size=\"12\" fill=\"#555\">" + ms_text(max_ms / 1.1) +
         "</text><text x=\"4\" y=\"196\" font-size=\"12\" fill=\"#555\">";
  if (!points.empty()) out += html::utc_minute(points.front().start);
  out +=
      "</text><text x=\"896\" y=\"196\" font-size=\"12\" fill=\"#555\" "
      "text-anchor=\"end\">";
  if (!points.empty()) out += html::utc_minute(points.back().start);
  out +=
      "</text></svg><figcaption class=\"legend\"><span><i class=\"sw\" "
      "style=\"background:#2e7d32\"></i>mean</span><span><i class=\"sw\" "
      "style=\"background:#c0392b\"></i>p95</span>";
  if (any_phases) {
    static constexpr const char* kPhaseNames[] = {"resolve", "connect", "tls", "processing",
                                                  "transfer"};
    for (int band = 0; band < 5; ++band) {
      out += "<span><i class=\"sw\" style=\"background:";
      out += kPhaseColors[band];
      out += "\"></i>";
      out += kPhaseNames[band];
      out += "</span>";
    }
  }
  out += "</figcaption></figure>";
}

}  // namespace

std::string render_status_page(const StatusPageData& data) {
  std::string out;
  std::size_t rows = 0;
  for (const auto& group : data.groups) rows += group.rows.size();
  out.reserve(4096 + rows * 7000);
  head(out, data.title, "");
  out += "<h1>";
  append_escaped(out, data.title);
  out += "</h1>";
  if (!data.monitoring_down.empty())
    monitoring_down(out, data.monitoring_down, data.now);
  else
    overall(out, data.total, data.down, data.unknown, data.stale, data.now);
  for (const auto& group : data.groups) {
    int down = 0, stale = 0;
    for (const auto& row : group.rows) {
      down += row.state == ServiceState::down;
      stale += row.state == ServiceState::stale;
    }
    // Groups with a service down or stale are open; the others stay collapsed when the page is
    // long.
    const bool open = down > 0 || stale > 0 || rows <= 20;
    out += open ? "<details class=\"group\" open=\"open\"><summary>"
                : "<details class=\"group\"><summary>";
    append_escaped(out, group.name.empty() ? std::string("Other services") : group.name);
    if (group.continued) out += " (continued)";
    out += " <span class=\"meta\">" + std::to_string(group.rows.size()) + " services";
    if (down > 0) out += ", " + std::to_string(down) + " down";
    if (stale > 0) out += ", " + std::to_string(stale) + " stale";
    out += "</span></summary>\n";
    for (const auto& row : group.rows) service_row(out, row, data.now);
    out += "</details>\n";
  }
  if (data.pages > 1) {
    out += "<nav class=\"pager\">Page ";
    for (int p = 1; p <= data.pages; ++p) {
      if (p == data.page)
        out += "<span>" + std::to_string(p) + "</span>";
      else
        out += "<a href=\"/?page=" + std::to_string(p) + "\">" + std::to_string(p) + "</a>";
    }
    out += "</nav>";
  }
  out += "<p class=\"meta\"><a href=\"/docs\">API documentation</a></p>";
  tail(out);
  return out;
}

std::string render_service_page(const ServicePageData& data) {
  const ServiceRow& row = data.row;
  const ServiceSpec& spec = row.view.service.spec;
  std::string out;
  out.reserve(64 * 1024);
  head(out, data.title, spec.name);
  out += "<p><a href=\"/\">&#8592; ";
  append_escaped(out, data.title);
  out += "</a></p><h1 id=\"service-name\">";
  append_escaped(out, spec.name);
  out += "</h1><div class=\"svc\" id=\"svc-" + std::to_string(row.view.service.id) +
         "\" data-service-id=\"" + std::to_string(row.view.service.id) + "\" data-state=\"";
  out += state_word(row.state);
  out += "\"><div class=\"head\">";
  state_span(out, row, data.now);
  out += " ";
  uptime_spans(out, row);
  out += "</div><p class=\"meta\">";
  out += to_string(spec.kind);
  if (!spec.url.empty()) {
    out += " <code>";
    append_escaped(out, redact_url(spec.url, UrlAudience::reader));  // a public page
    out += "</code>";
  }
  if (!spec.team.empty()) {
    out += " &#183; team ";
    append_escaped(out, spec.team);
  }
  for (const auto& tag : spec.tags) {
    out += " &#183; #";
    append_escaped(out, tag);
  }
  out += "</p></div><h2>Last 7 days, by hour</h2>";
  bar(out, data.hours, "bar hours", true);
  out += "<h2>Last 90 days, by day</h2>";
  bar(out, row.days, "bar big", false);
  out += "<h2>Response time</h2>";
  latency_chart(out, data.day_chart, "chart-24h", "Response time per 15 min, last 24 hours");
  latency_chart(out, data.week_chart, "chart-7d", "Response time per hour, last 7 days");

  out +=
      "<h2>Recent events</h2><table id=\"events\"><thead><tr><th>State</th><th>Started</th>"
      "<th>Ended</th><th>Duration</th></tr></thead><tbody>";
  for (const Event& event : data.events) {
    const TimePoint end = event.date_ended.value_or(data.now);
    out += "<tr><td class=\"s-";
    out += event.kind == EventKind::downtime ? "down\">down" : "up\">up";
    out += "</td><td>" + html::utc_minute(event.date_started) + "</td><td>";
    out += event.date_ended ? html::utc_minute(*event.date_ended) : std::string("ongoing");
    out += "</td><td>" +
           html::human_duration(std::chrono::duration_cast<Millis>(end - event.date_started)) +
           "</td></tr>";
  }
  if (data.events.empty()) out += "<tr><td colspan=\"4\">No events yet.</td></tr>";
  out +=
      "</tbody></table><h2>Recent alerts</h2><table id=\"alerts\"><thead><tr><th>Alert</th>"
      "<th>Reason</th><th>Opened</th><th>Closed</th></tr></thead><tbody>";
  for (const AlertRecord& alert : data.alerts) {
    out += "<tr><td>";
    append_escaped(out, alert.alert_name);
    out += "</td><td>";
    append_escaped(out, alert.reason);
    out += "</td><td>" + html::utc_minute(alert.created_date) + "</td><td>";
    out += alert.closed_date ? html::utc_minute(*alert.closed_date) : std::string("active");
    out += "</td></tr>";
  }
  if (data.alerts.empty()) out += "<tr><td colspan=\"4\">No alerts.</td></tr>";
  out += "</tbody></table>";
  tail(out);
  return out;
}

std::string render_not_found_page(const std::string& title, const std::string& message) {
  std::string out;
  head(out, title, "Not found");
  out += "<h1>Not found</h1><p>";
  append_escaped(out, message);
  out += "</p><p><a href=\"/\">&#8592; ";
  append_escaped(out, title);
  out += "</a></p></body></html>\n";
  return out;
}

}  // namespace vigil

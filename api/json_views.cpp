// Each shape is written once, as text (append_*_json): routes stream it, which for 10,000
// services is several times faster than building, dumping and freeing a nlohmann tree.
#include "api/json_views.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <utility>

#include "core/text.h"

namespace vigil {

using nlohmann::json;

namespace {

void append_int(std::string& out, std::int64_t value) {
  char buffer[24];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  (void)ec;  // 24 bytes always hold an int64
  out.append(buffer, end);
}

// Shortest text that reads back as the same double. Whole values keep a ".0" so a field's JSON
// type does not flip between integer and float with its value (uptime_percent 100.0 vs 99.5).
// JSON has no NaN or infinity: those become null.
void append_double(std::string& out, double value) {
  if (!std::isfinite(value)) {
    out += "null";
    return;
  }
  char buffer[32];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  (void)ec;  // 32 bytes hold any shortest double
  const std::string_view text(buffer, static_cast<std::size_t>(end - buffer));
  out += text;
  if (text.find_first_of(".e") == std::string_view::npos) out += ".0";
}

// Whether byte `c` goes into a JSON string as it is: printable ASCII other than '"' and '\\'.
constexpr bool is_plain(unsigned char c) { return c >= 0x20 && c < 0x80 && c != '"' && c != '\\'; }

// A JSON string. Names, URLs and curl error texts are not guaranteed UTF-8: an invalid byte
// becomes U+FFFD instead of making the whole response unparsable.
void append_string(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  std::size_t i = 0;
  while (i < s.size()) {
    // Runs of plain bytes (nearly all text) are appended whole, not byte by byte.
    std::size_t plain = i;
    while (plain < s.size() && is_plain(static_cast<unsigned char>(s[plain]))) ++plain;
    if (plain > i) {
      out.append(s.data() + i, plain - i);
      i = plain;
      if (i == s.size()) break;
    }
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      i += append_utf8_character(out, s, i);
      continue;
    }
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:  // the other control characters
        out += "\\u00";
        out += kHex[c >> 4];
        out += kHex[c & 0xF];
    }
    ++i;
  }
  out += '"';
}

void append_seconds(std::string& out, TimePoint t) { append_int(out, to_unix_seconds(t)); }

// `"key":` — keys are literals, so they need no escaping.
// One append where it fits the buffer (every key vigil writes does): a service has about 25.
void key(std::string& out, std::string_view name, bool first = false) {
  char text[64];
  if (name.size() + 4 > sizeof text) {
    if (!first) out += ',';
    out += '"';
    out += name;
    out += "\":";
    return;
  }
  std::size_t n = 0;
  if (!first) text[n++] = ',';
  text[n++] = '"';
  std::memcpy(text + n, name.data(), name.size());
  n += name.size();
  text[n++] = '"';
  text[n++] = ':';
  out.append(text, n);
}

const char* status_word(const ServiceView& view, TimePoint now) {
  if (is_stale(view, now)) return "stale";
  if (!view.open_event) return "unknown";
  return view.open_event->kind == EventKind::uptime ? "up" : "down";
}

}  // namespace

// Keys are written in sorted order, as nlohmann (and the seed) print them.

void append_event_json(std::string& out, const Event& event) {
  key(out += '{', "created_at", true);
  append_seconds(out, event.created_at);
  key(out, "date_ended");
  if (event.date_ended)
    append_seconds(out, *event.date_ended);
  else
    out += "null";
  key(out, "date_started");
  append_seconds(out, event.date_started);
  key(out, "event");
  append_string(out, to_string(event.kind));
  key(out, "id");
  append_int(out, event.id);
  key(out, "updated_at");
  append_seconds(out, event.updated_at);
  out += '}';
}

void append_metric_json(std::string& out, const Metric& metric) {
  key(out += '{', "average_response_time_ms", true);
  append_double(out, metric.average_response_time_ms);
  key(out, "down_count");
  append_int(out, metric.down_count);
  key(out, "tick_count");
  append_int(out, metric.tick_count);
  key(out, "up_count");
  append_int(out, metric.up_count);
  key(out, "uptime_percent");
  append_double(out, metric.uptime_percent);
  out += '}';
}

void append_service_json(std::string& out, const ServiceView& view,
                         const ServiceJsonOptions& options) {
  const bool with_push_token = options.with_push_token;
  const TimePoint now = options.now ? *options.now : now_ms();
  const Service& service = view.service;
  const ServiceSpec& spec = service.spec;
  const bool heartbeat = spec.kind == ServiceKind::heartbeat;
  // A snooze that ran out reads as not muted: computed here, on every read.
  const bool muted = spec.muted_at(now);
  const auto append_optional_string = [&](const std::string& text) {
    if (text.empty())
      out += "null";
    else
      append_string(out, text);
  };
  // The open event is both the current status and the latest event: a probed service always
  // has exactly one open event and it is the newest.
  const auto append_open_event = [&] {
    if (view.open_event)
      append_event_json(out, *view.open_event);
    else
      out += "null";
  };
  key(out += '{', "active", true);  // addition beyond the seed shape
  out += service.active ? "true" : "false";
  key(out, "alerts");  // the channels its alerts go to; [] routes by team or default
  out += '[';
  for (std::size_t i = 0; i < spec.alert_channels.size(); ++i) {
    if (i > 0) out += ',';
    append_string(out, spec.alert_channels[i]);
  }
  out += ']';
  key(out, "created_at");
  append_seconds(out, service.created_at);
  key(out, "current_status");
  append_open_event();
  if (heartbeat) {
    key(out, "grace_seconds");
    append_double(out, static_cast<double>(spec.grace.count()) / 1000.0);
  }
  key(out, "id");
  append_int(out, service.id);
  key(out, "interval_seconds");  // addition beyond the seed shape
  append_double(out, static_cast<double>(service.spec.interval.count()) / 1000.0);
  key(out, "kind");
  append_string(out, to_string(spec.kind));
  key(out, "last_tick_at");
  if (view.last_tick_at)
    append_seconds(out, *view.last_tick_at);
  else
    out += "null";
  key(out, "latest_event");
  key(out += '{', "data", true);
  append_open_event();
  out += '}';
  key(out, "metric");
  key(out += '{', "data", true);
  append_metric_json(out, view.metric);
  out += '}';
  key(out, "muted");
  out += muted ? "true" : "false";
  key(out, "muted_until");  // set only while a snooze runs
  if (muted && spec.muted_until)
    append_seconds(out, *spec.muted_until);
  else
    out += "null";
  key(out, "name");
  append_string(out, service.spec.name);
  key(out, "priority");
  out += "\"p";
  out += static_cast<char>('0' + spec.priority);
  out += '"';
  if (heartbeat && with_push_token) {
    key(out, "push_token");
    append_string(out, service.push_token);
  }
  key(out, "repeat_every_seconds");  // null means each channel's own
  if (spec.repeat_every)
    append_double(out, static_cast<double>(spec.repeat_every->count()) / 1000.0);
  else
    out += "null";
  key(out, "runbook");
  append_optional_string(spec.runbook);
  key(out, "source");
  append_string(out, to_string(service.source));
  key(out, "status");  // addition beyond the seed shape: "up", "down", "unknown" or "stale"
  append_string(out, status_word(view, now));
  key(out, "tags");
  out += '[';
  for (std::size_t i = 0; i < spec.tags.size(); ++i) {
    if (i > 0) out += ',';
    append_string(out, spec.tags[i]);
  }
  out += ']';
  key(out, "team");
  append_optional_string(spec.team);
  if (heartbeat) {
    key(out, "threshold");
    append_int(out, spec.threshold);
  }
  key(out, "updated_at");
  append_seconds(out, service.updated_at);
  key(out, "url");  // null for a heartbeat: it is not probed
  append_optional_string(redact_url(service.spec.url, options.audience));
  out += '}';
}

void append_tick_json(std::string& out, const Tick& tick) {
  key(out += '{', "error", true);
  if (tick.error.empty())
    out += "null";
  else
    append_string(out, tick.error);
  key(out, "message");  // heartbeats: the msg pushed with the report
  if (tick.message.empty())
    out += "null";
  else
    append_string(out, tick.message);
  key(out, "phases_ms");  // HTTP and TCP probes; null otherwise
  if (tick.phases) {
    const PhaseTimings& p = *tick.phases;
    key(out += '{', "connect", true);
    append_double(out, p.connect_ms);
    key(out, "processing");
    append_double(out, p.processing_ms);
    key(out, "resolve");
    append_double(out, p.resolve_ms);
    key(out, "tls");
    append_double(out, p.tls_ms);
    key(out, "transfer");
    append_double(out, p.transfer_ms);
    out += '}';
  } else {
    out += "null";
  }
  key(out, "region");
  append_string(out, tick.region);
  key(out, "response_ms");
  append_double(out, tick.response_ms);
  key(out, "status_code");
  if (tick.status_code)
    append_int(out, *tick.status_code);
  else
    out += "null";
  key(out, "ts");
  append_seconds(out, tick.ts);
  key(out, "ts_ms");
  append_int(out, to_unix_ms(tick.ts));
  key(out, "up");
  out += tick.up ? "true" : "false";
  out += '}';
}

void append_envelope_begin(std::string& out) { key(out += '{', "data", true); }

void append_envelope_end(std::string& out, int status) {
  key(out, "status");
  append_int(out, status);
  key(out, "status_desc");
  append_string(out, status_desc(status));
  out += '}';
}

std::string envelope_text(int status, std::string_view data_json) {
  std::string out;
  out.reserve(data_json.size() + 64);
  append_envelope_begin(out);
  out += data_json;
  append_envelope_end(out, status);
  return out;
}

json envelope(int status, json data) {
  json out = json::object();
  out["status"] = status;
  out["status_desc"] = status_desc(status);
  out["data"] = std::move(data);
  return out;
}

json error_envelope(int status, const std::string& message) {
  json out = envelope(status, json::object());
  out["error"] = message;
  return out;
}

const char* status_desc(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 411:
      return "Length Required";
    case 413:
      return "Payload Too Large";
    case 414:
      return "URI Too Long";
    case 415:
      return "Unsupported Media Type";
    case 416:
      return "Range Not Satisfiable";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Unknown";
  }
}

}  // namespace vigil

#include "api/html.h"

#include <algorithm>
#include <cstdint>
#include <ctime>

#include "core/text.h"

namespace vigil::html {

void append_escaped(std::string& out, std::string_view text) {
  for (std::size_t i = 0; i < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      switch (c) {
        case '&':
          out += "&amp;";
          break;
        case '<':
          out += "&lt;";
          break;
        case '>':
          out += "&gt;";
          break;
        case '"':
          out += "&quot;";
          break;
        case '\'':
          out += "&#39;";
          break;
        default:
          // Control characters (C0 but tab and newline, and DEL) become U+FFFD: XML (SVG) does
          // not allow the C0 ones at all.
          if ((c < 0x20 && c != '\t' && c != '\n') || c == 0x7F)
            out += "\xEF\xBF\xBD";
          else
            out += static_cast<char>(c);
      }
      ++i;
      continue;
    }
    i += append_utf8_character(out, text, i);
  }
}

std::string escape(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 16);
  append_escaped(out, text);
  return out;
}

std::string human_duration(Millis duration) {
  const std::int64_t s = std::max<std::int64_t>(0, duration.count() / 1000);
  const std::int64_t d = s / 86400, h = s % 86400 / 3600, m = s % 3600 / 60;
  if (d > 0) return std::to_string(d) + "d " + std::to_string(h) + "h";
  if (h > 0) return std::to_string(h) + "h " + std::to_string(m) + "m";
  if (m > 0) return std::to_string(m) + "m";
  return std::to_string(s) + "s";
}

namespace {
std::string format_utc(TimePoint t, const char* format) {
  const std::time_t seconds = static_cast<std::time_t>(to_unix_seconds(t));
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buffer[64];
  const std::size_t n = std::strftime(buffer, sizeof buffer, format, &tm);
  return std::string(buffer, n);
}
}  // namespace

std::string utc_minute(TimePoint t) { return format_utc(t, "%Y-%m-%d %H:%M UTC"); }
std::string utc_date(TimePoint t) { return format_utc(t, "%Y-%m-%d"); }

}  // namespace vigil::html

// Text for HTML and SVG that vigil renders itself (status page, badges, /docs): every string that
// did not come from vigil's own source (service names, tags, error texts, URLs) goes through
// escape() before it reaches a page. Any thread.
#pragma once

#include <string>
#include <string_view>

#include "core/model.h"

namespace vigil::html {

// `text` with & < > " ' replaced by entities and invalid UTF-8 and control characters (other
// than tab and newline) replaced by U+FFFD, so it is safe in element text and quoted attributes.
std::string escape(std::string_view text);
void append_escaped(std::string& out, std::string_view text);

// A duration in words for people: "45s", "4m", "3h 12m", "2d 5h".
std::string human_duration(Millis duration);

// "2026-11-23 02:20 UTC" and "2026-11-23" (UTC).
std::string utc_minute(TimePoint t);
std::string utc_date(TimePoint t);

}  // namespace vigil::html

// The one function that decides how much of a URL a view may show. Probe URLs carry secrets
// (`http://user:password@host/…?api_key=…`), and every surface that shows one (the JSON API, the
// status page, alert messages, `vigil beat`'s errors) goes through redact_url, so they agree.
// Pure functions: any thread.
#pragma once

#include <string>
#include <string_view>

namespace vigil {

// Who is looking. A writer (a request authenticated with API_TOKEN, or a loopback client while it
// is unset) may see query values; anyone else (read-only clients, the status page, Slack,
// PagerDuty, webhooks, logs) may not.
enum class UrlAudience { reader, writer };

// The text that stands in for a hidden part.
inline constexpr std::string_view kRedacted = "<redacted>";

// `url` as `audience` may see it:
// - userinfo, for every audience: "user:password@" becomes "user:<redacted>@"; a userinfo
//   without a ':' (often a bare token, "token@") becomes "<redacted>@";
// - query, for readers only: each "name=value" becomes "name=<redacted>" (names kept, empty
//   values and bare names left as they are); the fragment is kept.
// Text that is not a URL with an authority ("scheme://") only has its query treated. Applying
// it twice gives the same text as once.
std::string redact_url(std::string_view url, UrlAudience audience);

}  // namespace vigil

#include "core/url_redaction.h"

namespace vigil {
namespace {

// Appends `query` (without its '?') with every non-empty value replaced.
void append_redacted_query(std::string& out, std::string_view query) {
  while (true) {
    const std::size_t end = query.find('&');
    const std::string_view part = query.substr(0, end);
    const std::size_t equals = part.find('=');
    if (equals == std::string_view::npos || equals + 1 == part.size()) {
      out += part;
    } else {
      out += part.substr(0, equals + 1);
      out += kRedacted;
    }
    if (end == std::string_view::npos) return;
    out += '&';
    query.remove_prefix(end + 1);
  }
}

}  // namespace

std::string redact_url(std::string_view url, UrlAudience audience) {
  std::string out;
  out.reserve(url.size() + 16);
  // The authority runs from "://" to the first '/', '?' or '#' (RFC 3986); its userinfo ends
  // at its last '@' (an '@' inside a password must be percent-encoded, so the last one is it).
  std::size_t rest = 0;
  if (const std::size_t scheme_end = url.find("://"); scheme_end != std::string_view::npos) {
    const std::size_t authority = scheme_end + 3;
    const std::size_t authority_end = url.find_first_of("/?#", authority);
    const std::string_view host_part = url.substr(authority, authority_end - authority);
    out += url.substr(0, authority);
    if (const std::size_t at = host_part.rfind('@'); at != std::string_view::npos) {
      const std::string_view userinfo = host_part.substr(0, at);
      const std::size_t colon = userinfo.find(':');
      if (colon != std::string_view::npos) out += userinfo.substr(0, colon + 1);
      out += kRedacted;
      out += host_part.substr(at);
    } else {
      out += host_part;
    }
    rest = authority_end == std::string_view::npos ? url.size() : authority_end;
  }
  const std::string_view tail = url.substr(rest);
  // A '?' inside the fragment starts no query.
  const std::size_t fragment = tail.find('#');
  const std::size_t query = tail.substr(0, fragment).find('?');
  if (audience == UrlAudience::writer || query == std::string_view::npos) {
    out += tail;
    return out;
  }
  out += tail.substr(0, query + 1);
  append_redacted_query(
      out, tail.substr(query + 1, fragment == std::string_view::npos ? std::string_view::npos
                                                                     : fragment - query - 1));
  if (fragment != std::string_view::npos) out += tail.substr(fragment);
  return out;
}

}  // namespace vigil

#include "config/database_url.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <vector>

#include "core/url_redaction.h"

namespace vigil {
namespace {

constexpr std::string_view kUriSchemes[] = {"postgresql://", "postgres://"};

// libpq 15's connection options (PQconndefaults), for a clear error at start instead of libpq's
// at the first connection.
constexpr std::string_view kOptions[] = {"service",
                                         "user",
                                         "password",
                                         "passfile",
                                         "channel_binding",
                                         "connect_timeout",
                                         "dbname",
                                         "host",
                                         "hostaddr",
                                         "port",
                                         "client_encoding",
                                         "options",
                                         "application_name",
                                         "fallback_application_name",
                                         "keepalives",
                                         "keepalives_idle",
                                         "keepalives_interval",
                                         "keepalives_count",
                                         "tcp_user_timeout",
                                         "sslmode",
                                         "requiressl",
                                         "sslcompression",
                                         "sslcert",
                                         "sslkey",
                                         "sslpassword",
                                         "sslrootcert",
                                         "sslcrl",
                                         "sslcrldir",
                                         "sslsni",
                                         "requirepeer",
                                         "ssl_min_protocol_version",
                                         "ssl_max_protocol_version",
                                         "gssencmode",
                                         "krbsrvname",
                                         "gsslib",
                                         "replication",
                                         "target_session_attrs"};

bool known_option(std::string_view key) {
  return std::find(std::begin(kOptions), std::end(kOptions), key) != std::end(kOptions);
}

bool secret_option(std::string_view key) { return key == "password" || key == "sslpassword"; }

std::size_t uri_prefix_length(std::string_view text) {
  for (auto scheme : kUriSchemes)
    if (text.starts_with(scheme)) return scheme.size();
  return 0;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decoding as libpq does it for URI parts; nothing when an escape is malformed.
std::optional<std::string> percent_decoded(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out += text[i];
      continue;
    }
    if (i + 2 >= text.size()) return std::nullopt;
    const int high = hex_value(text[i + 1]);
    const int low = hex_value(text[i + 2]);
    if (high < 0 || low < 0) return std::nullopt;
    out += char(high * 16 + low);
    i += 2;
  }
  return out;
}

// Where a URI's userinfo ends (the '@'), if it has one. libpq takes the first '@' before the
// first '/'; the last one is taken here, and past a '/' too, so that a password holding an
// unescaped '@', '/' or '?' is still hidden whole (over-redacting an odd URI is the safe error).
std::optional<std::size_t> userinfo_end(std::string_view text, std::size_t prefix) {
  const auto slash = text.find('/', prefix);
  const auto before_slash = text.substr(0, slash).rfind('@');
  if (before_slash != std::string_view::npos && before_slash >= prefix) return before_slash;
  const auto anywhere = text.rfind('@');
  if (anywhere != std::string_view::npos && anywhere >= prefix) return anywhere;
  return std::nullopt;
}

// One key=value pair of a libpq key=value string: the key, and where its raw value is.
struct Pair {
  std::string_view key;
  std::size_t value_begin = 0;
  std::size_t value_end = 0;
};

struct Split {
  std::vector<Pair> pairs;
  std::optional<std::string> problem;
};

bool is_space(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

// Splits as libpq's conninfo_parse does: spaces around '=' allowed, a value unquoted (up to a
// space) or in single quotes, a backslash escaping the next character in both.
Split split_pairs(std::string_view text) {
  Split split;
  std::size_t i = 0;
  const auto skip_spaces = [&] {
    while (i < text.size() && is_space(text[i])) ++i;
  };
  for (int number = 1;; ++number) {
    skip_spaces();
    if (i >= text.size()) break;
    const std::size_t key_begin = i;
    while (i < text.size() && text[i] != '=' && !is_space(text[i])) ++i;
    const auto key = text.substr(key_begin, i - key_begin);
    skip_spaces();
    if (i >= text.size() || text[i] != '=') {
      // The word is not quoted back: it may be a password written without its key.
      split.problem =
          "expected key=value pairs (for example \"host=db.example dbname=vigil\"); "
          "item " +
          std::to_string(number) + " has no '='";
      return split;
    }
    ++i;
    skip_spaces();
    Pair pair{key, i, i};
    if (i < text.size() && text[i] == '\'') {
      ++i;
      bool closed = false;
      while (i < text.size()) {
        if (text[i] == '\\' && i + 1 < text.size()) {
          i += 2;
        } else if (text[i] == '\'') {
          closed = true;
          ++i;
          break;
        } else {
          ++i;
        }
      }
      if (!closed) {
        split.problem = "the quoted value of \"" + std::string(key) + "\" has no closing quote";
        return split;
      }
    } else {
      while (i < text.size() && !is_space(text[i])) i += (text[i] == '\\' ? 2 : 1);
      i = std::min(i, text.size());
    }
    pair.value_end = i;
    split.pairs.push_back(pair);
  }
  if (split.pairs.empty()) split.problem = "is empty";
  return split;
}

std::optional<std::string> port_problem(std::string_view port) {
  unsigned value = 0;
  const auto [end, error] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || error != std::errc() || end != port.data() + port.size() || value < 1 ||
      value > 65535)
    return "has an invalid port (expected a number from 1 to 65535)";
  return std::nullopt;
}

std::optional<std::string> uri_problem(std::string_view text, std::size_t prefix) {
  for (unsigned char c : text)
    if (std::isspace(c) || std::iscntrl(c))
      return "must not contain spaces or control characters (percent-encode them)";
  if (!percent_decoded(text))
    return "has an invalid percent-escape ('%' must be followed by two hex digits)";
  const auto at = userinfo_end(text, prefix);
  const std::size_t host_begin = at ? *at + 1 : prefix;
  const auto host_end = std::min(text.find_first_of("/?", host_begin), text.size());
  // host[:port][,host[:port]]..., an IPv6 address in brackets; no host means libpq's default.
  std::string_view hosts = text.substr(host_begin, host_end - host_begin);
  while (!hosts.empty()) {
    const auto comma = hosts.find(',');
    std::string_view host = hosts.substr(0, comma);
    hosts = comma == std::string_view::npos ? std::string_view() : hosts.substr(comma + 1);
    std::size_t port_colon = std::string_view::npos;
    if (host.starts_with("[")) {
      const auto close = host.find(']');
      if (close == std::string_view::npos) return "has an unterminated IPv6 address";
      if (close + 1 < host.size()) {
        if (host[close + 1] != ':') return "has garbage after an IPv6 address";
        port_colon = close + 1;
      }
    } else {
      port_colon = host.find(':');
    }
    if (port_colon != std::string_view::npos)
      if (auto problem = port_problem(host.substr(port_colon + 1))) return problem;
  }
  const auto question = text.find('?', host_end);
  if (question == std::string_view::npos) return std::nullopt;
  std::string_view query = text.substr(question + 1);
  for (int number = 1; !query.empty(); ++number) {
    const auto amp = query.find('&');
    const auto item = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    const auto eq = item.find('=');
    if (eq == std::string_view::npos)
      return "query option " + std::to_string(number) + " has no '=' (expected name=value)";
    const auto key = percent_decoded(item.substr(0, eq)).value_or("");
    if (!known_option(key) && key != "ssl")
      return "unknown connection option \"" + key + "\" in the query";
  }
  return std::nullopt;
}

std::string redact_uri(std::string_view text, std::size_t prefix) {
  std::string out(text.substr(0, prefix));
  std::size_t rest = prefix;
  if (const auto at = userinfo_end(text, prefix)) {
    const auto userinfo = text.substr(prefix, *at - prefix);
    const auto colon = userinfo.find(':');
    if (colon == std::string_view::npos) {
      out += userinfo;
    } else {
      out += userinfo.substr(0, colon + 1);
      out += kRedacted;
    }
    out += '@';
    rest = *at + 1;
  }
  const auto question = text.find('?', rest);
  out += text.substr(rest,
                     question == std::string_view::npos ? text.size() - rest : question + 1 - rest);
  if (question == std::string_view::npos) return out;
  std::string_view query = text.substr(question + 1);
  bool first = true;
  while (true) {
    const auto amp = query.find('&');
    const auto item = query.substr(0, amp);
    if (!first) out += '&';
    first = false;
    const auto eq = item.find('=');
    const auto key = percent_decoded(item.substr(0, eq));
    // A key that does not decode may be a password option spelled oddly: hidden too.
    if (eq != std::string_view::npos && (!key || secret_option(*key))) {
      out += item.substr(0, eq + 1);
      out += kRedacted;
    } else {
      out += item;
    }
    if (amp == std::string_view::npos) break;
    query = query.substr(amp + 1);
  }
  return out;
}

}  // namespace

std::optional<std::string> connection_string_problem(std::string_view text) {
  if (const auto prefix = uri_prefix_length(text)) return uri_problem(text, prefix);
  if (const auto scheme = text.find("://"); scheme != std::string_view::npos) {
    const auto name = text.substr(0, scheme);
    const bool word = !name.empty() && std::all_of(name.begin(), name.end(), [](unsigned char c) {
      return std::isalnum(c) || c == '+' || c == '-' || c == '.';
    });
    // A scheme is no secret; anything else before "://" might be.
    return (word ? "unsupported scheme \"" + std::string(name) + "\"" : std::string("a URI")) +
           ": expected postgresql://user:password@host:port/database, postgres://..., or libpq "
           "key=value pairs (host=... dbname=...)";
  }
  const Split split = split_pairs(text);
  if (split.problem) return split.problem;
  for (const auto& pair : split.pairs)
    if (!known_option(pair.key))
      return "unknown connection option \"" + std::string(pair.key) + "\"";
  return std::nullopt;
}

std::string redact_connection_string(std::string_view text) {
  if (const auto prefix = uri_prefix_length(text)) return redact_uri(text, prefix);
  // Another scheme's URI (refused by connection_string_problem) keeps its userinfo secret too.
  if (const auto scheme = text.find("://"); scheme != std::string_view::npos)
    return redact_uri(text, scheme + 3);
  const Split split = split_pairs(text);
  if (split.problem)
    return text.find_first_not_of(" \t\r\n") == std::string_view::npos ? std::string(text)
                                                                       : std::string(kRedacted);
  std::string out;
  std::size_t copied = 0;
  for (const auto& pair : split.pairs) {
    if (!secret_option(pair.key)) continue;
    out += text.substr(copied, pair.value_begin - copied);
    out += kRedacted;
    copied = pair.value_end;
  }
  out += text.substr(copied);
  return out;
}

}  // namespace vigil

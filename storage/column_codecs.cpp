#include "storage/column_codecs.h"

#include <sys/random.h>

#include <cerrno>
#include <charconv>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/config_error.h"
#include "core/probe_options.h"
#include "storage/store.h"

namespace vigil::column_codecs {
namespace {

// Most services have no headers, tags or channels: "[]" skips the JSON parser (GET
// /v1/services decodes three per service).
bool is_empty_array(const std::string& text) { return text == "[]"; }

int parse_code(std::string_view text) {
  int value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size())
    throw StorageError("malformed expected_status code '" + std::string(text) + "'");
  return value;
}

}  // namespace

std::string encode_headers(const std::vector<std::pair<std::string, std::string>>& headers) {
  auto array = nlohmann::json::array();
  for (const auto& [name, value] : headers) array.push_back({name, value});
  return array.dump();
}

std::vector<std::pair<std::string, std::string>> decode_headers(const std::string& text) {
  std::vector<std::pair<std::string, std::string>> headers;
  if (is_empty_array(text)) return headers;
  for (const auto& pair : nlohmann::json::parse(text))
    headers.emplace_back(pair.at(0).get<std::string>(), pair.at(1).get<std::string>());
  return headers;
}

std::vector<StatusRange> decode_status(std::string_view text) {
  std::vector<StatusRange> ranges;
  while (!text.empty()) {
    const auto comma = text.find(',');
    const auto item = text.substr(0, comma);
    const auto dash = item.find('-');
    if (dash == std::string_view::npos) {
      const int code = parse_code(item);
      ranges.push_back({code, code});
    } else {
      ranges.push_back({parse_code(item.substr(0, dash)), parse_code(item.substr(dash + 1))});
    }
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return ranges;
}

std::string encode_tags(const std::vector<std::string>& tags) {
  return nlohmann::json(tags).dump();
}

std::vector<std::string> decode_tags(const std::string& text) {
  if (is_empty_array(text)) return {};
  return nlohmann::json::parse(text).get<std::vector<std::string>>();
}

ServiceKind decode_service_kind(const std::string& text) {
  if (text == "http") return ServiceKind::http;
  if (text == "heartbeat") return ServiceKind::heartbeat;
  throw StorageError("unknown service kind '" + text + "' in services");
}

ProbeOptions read_probe_options(const std::string& text) {
  try {
    return decode_probe_options(text);
  } catch (const ConfigError& e) {
    throw StorageError(std::string("bad services.probe_options: ") + e.what());
  }
}

EventKind decode_event_kind(const std::string& text) {
  if (text == "uptime") return EventKind::uptime;
  if (text == "downtime") return EventKind::downtime;
  throw StorageError("unknown event kind '" + text + "' in service_events");
}

std::string new_push_token() {
  unsigned char bytes[24];
  std::size_t filled = 0;
  while (filled < sizeof bytes || (bytes[0] >> 2) == 62) {  // 62: '-' in the alphabet
    if (filled == sizeof bytes) filled = 0;                 // draw again
    const ssize_t n = ::getrandom(bytes + filled, sizeof bytes - filled, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw StorageError("storage: cannot read random bytes for a push token");
    }
    filled += static_cast<std::size_t>(n);
  }
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string token;
  for (std::size_t i = 0; i < sizeof bytes; i += 3) {
    const unsigned v = unsigned(bytes[i]) << 16 | unsigned(bytes[i + 1]) << 8 | bytes[i + 2];
    for (int shift = 18; shift >= 0; shift -= 6) token += kAlphabet[(v >> shift) & 63];
  }
  return token;
}

std::string without_nul(std::string text) {
  constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD
  for (auto at = text.find('\0'); at != std::string::npos;
       at = text.find('\0', at + kReplacement.size()))
    text.replace(at, 1, kReplacement);
  return text;
}

Service read_service(const StoredRow& row, int first) {
  Service service;
  service.id = row.integer(first + 0);
  service.spec.name = row.text(first + 1);
  service.spec.url = row.text(first + 2);
  service.spec.interval = Millis(row.integer(first + 3));
  service.spec.timeout = Millis(row.integer(first + 4));
  service.spec.method = row.text(first + 5);
  service.spec.headers = decode_headers(row.text(first + 6));
  service.spec.expected_status = decode_status(row.text(first + 7));
  service.active = row.boolean(first + 8);
  service.created_at = from_unix_ms(row.integer(first + 9));
  service.updated_at = from_unix_ms(row.integer(first + 10));
  // Kind, heartbeat deadline, metadata, source, push token.
  const int m = first + 11;
  service.spec.kind = decode_service_kind(row.text(m + 0));
  service.spec.grace = Millis(row.integer(m + 1));
  service.spec.threshold = static_cast<int>(row.integer(m + 2));
  service.spec.team = row.text(m + 3);
  service.spec.priority = static_cast<int>(row.integer(m + 4));
  service.spec.runbook = row.text(m + 5);
  service.spec.tags = decode_tags(row.text(m + 6));
  service.spec.muted = row.boolean(m + 7);
  if (!row.is_null(m + 8)) service.spec.muted_until = from_unix_ms(row.integer(m + 8));
  service.source = row.text(m + 9) == "api" ? ServiceSource::api : ServiceSource::file;
  if (!row.is_null(m + 10)) service.push_token = row.text(m + 10);
  service.spec.probe = read_probe_options(row.text(first + 22));
  // Alert routing of the service.
  service.spec.alert_channels = decode_tags(row.text(first + 23));
  if (!row.is_null(first + 24)) service.spec.repeat_every = Millis(row.integer(first + 24));
  return service;
}

}  // namespace vigil::column_codecs

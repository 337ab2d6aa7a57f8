#include "storage/sqlite/sqlite_codecs.h"

#include <charconv>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/config_error.h"
#include "storage/sqlite/rollup_sql.h"
#include "storage/store.h"

namespace vigil::sqlite {
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

std::optional<EventKind> parse_kind(const std::string& text) {
  if (text == "uptime") return EventKind::uptime;
  if (text == "downtime") return EventKind::downtime;
  return std::nullopt;
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

EventKind require_kind(const std::string& text) {
  if (auto kind = parse_kind(text)) return *kind;
  throw StorageError("unknown event kind '" + text + "' in service_events");
}

ProbeOptions read_probe_options(const std::string& text) {
  try {
    return decode_probe_options(text);
  } catch (const ConfigError& e) {
    throw StorageError(std::string("bad services.probe_options: ") + e.what());
  }
}

using rollup_sql::from_us;
using rollup_sql::to_us;

void bind_phases(SQLite::Statement& statement, int first, const std::optional<PhaseTimings>& p) {
  if (!p) {
    for (int i = 0; i < 5; ++i) statement.bind(first + i);
    return;
  }
  statement.bind(first + 0, to_us(p->resolve_ms));
  statement.bind(first + 1, to_us(p->connect_ms));
  statement.bind(first + 2, to_us(p->tls_ms));
  statement.bind(first + 3, to_us(p->processing_ms));
  statement.bind(first + 4, to_us(p->transfer_ms));
}

std::optional<PhaseTimings> read_phases(const SQLite::Statement& row, int first) {
  if (row.isColumnNull(first)) return std::nullopt;
  PhaseTimings p;
  p.resolve_ms = from_us(row.getColumn(first + 0).getInt64());
  p.connect_ms = from_us(row.getColumn(first + 1).getInt64());
  p.tls_ms = from_us(row.getColumn(first + 2).getInt64());
  p.processing_ms = from_us(row.getColumn(first + 3).getInt64());
  p.transfer_ms = from_us(row.getColumn(first + 4).getInt64());
  return p;
}

}  // namespace vigil::sqlite

#include "api/paging.h"

#include <cstdio>
#include <vector>

#include "api/params.h"

namespace vigil::paging {
namespace {

constexpr char kVersion = '1';
// Longer than any cursor encode_cursor writes (about 100 characters); anything longer is
// rejected before it is decoded.
constexpr std::size_t kMaxCursorChars = 160;
constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

const char* list_code(List list) {
  switch (list) {
    case List::services:
      return "s";
    case List::events:
      return "e";
    case List::ticks:
      return "t";
    case List::alerts:
      return "a";
  }
  return "?";
}

// FNV-1a, 32 bits: enough to notice an edited or truncated cursor.
std::uint32_t checksum(std::string_view text) {
  std::uint32_t hash = 2166136261u;
  for (const char c : text) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 16777619u;
  }
  return hash;
}

std::string base64url(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() * 4 + 2) / 3);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const unsigned v = unsigned(static_cast<unsigned char>(bytes[i])) << 16 |
                       unsigned(static_cast<unsigned char>(bytes[i + 1])) << 8 |
                       static_cast<unsigned char>(bytes[i + 2]);
    for (int shift = 18; shift >= 0; shift -= 6) out += kAlphabet[(v >> shift) & 63];
  }
  const std::size_t rest = bytes.size() - i;
  if (rest > 0) {
    unsigned v = unsigned(static_cast<unsigned char>(bytes[i])) << 16;
    if (rest == 2) v |= unsigned(static_cast<unsigned char>(bytes[i + 1])) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    if (rest == 2) out += kAlphabet[(v >> 6) & 63];
  }
  return out;
}

// Empty when `text` has a character outside the alphabet or an impossible length. Non-zero
// trailing bits are accepted here; the caller's re-encoding check rejects them.
std::optional<std::string> from_base64url(std::string_view text) {
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  unsigned buffer = 0;
  int bits = 0;
  for (const char c : text) {
    int value = -1;
    if (c >= 'A' && c <= 'Z') value = c - 'A';
    if (c >= 'a' && c <= 'z') value = c - 'a' + 26;
    if (c >= '0' && c <= '9') value = c - '0' + 52;
    if (c == '-') value = 62;
    if (c == '_') value = 63;
    if (value < 0) return std::nullopt;
    buffer = (buffer << 6) | unsigned(value);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((buffer >> bits) & 0xFF);
    }
  }
  return out;
}

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (true) {
    const std::size_t end = text.find(separator, start);
    parts.push_back(text.substr(start, end - start));
    if (end == std::string_view::npos) return parts;
    start = end + 1;
  }
}

std::string payload(List list, std::int64_t scope, const Key& key) {
  return std::string(1, kVersion) + '|' + list_code(list) + '|' + std::to_string(scope) + '|' +
         std::to_string(key.ts_ms) + '|' + std::to_string(key.id);
}

std::string hex32(std::uint32_t value) {
  char text[9];
  std::snprintf(text, sizeof text, "%08x", value);
  return text;
}

}  // namespace

int parse_limit(const std::optional<std::string>& text) {
  if (!text) return kDefaultLimit;
  const auto limit = parse_int64(*text);
  if (!limit || *limit < 1 || *limit > kMaxLimit)
    throw BadParam("limit must be an integer from 1 to " + std::to_string(kMaxLimit));
  return static_cast<int>(*limit);
}

std::string encode_cursor(List list, std::int64_t scope, const Key& last) {
  const std::string text = payload(list, scope, last);
  return base64url(text + '|' + hex32(checksum(text)));
}

std::optional<Key> parse_cursor(const std::optional<std::string>& text, List list,
                                std::int64_t scope) {
  if (!text) return std::nullopt;
  const auto malformed = [] {
    return BadParam("cursor is not valid: pass the `next` of the previous page unchanged");
  };
  if (text->empty() || text->size() > kMaxCursorChars) throw malformed();
  const auto decoded = from_base64url(*text);
  if (!decoded) throw malformed();
  const auto parts = split(*decoded, '|');
  if (parts.size() != 6 || parts[0] != std::string_view(&kVersion, 1)) throw malformed();
  const auto cursor_scope = parse_int64(parts[2]);
  const auto ts_ms = parse_int64(parts[3]);
  const auto id = parse_int64(parts[4]);
  // A tick's seq starts at 0 (it orders ticks of one ms); every other id at 1.
  const std::int64_t lowest_id = parts[1] == list_code(List::ticks) ? 0 : 1;
  if (!cursor_scope || !ts_ms || !id || *cursor_scope < 0 || *ts_ms < 0 || *id < lowest_id)
    throw malformed();
  // Canonical form only: one spelling per cursor, so an edit anywhere (a digit, a padding bit,
  // a leading zero) is caught by the re-encoding or the checksum.
  const std::string_view body =
      std::string_view(*decoded).substr(0, decoded->size() - parts[5].size() - 1);
  if (parts[5] != hex32(checksum(body))) throw malformed();
  const Key key{*ts_ms, *id};
  if (parts[1] != list_code(list) || *cursor_scope != scope)
    throw BadParam("cursor belongs to another list: pass it to the request that returned it");
  if (encode_cursor(list, scope, key) != *text) throw malformed();
  return key;
}

}  // namespace vigil::paging

#include "core/text.h"

#include <cstdio>

namespace vigil {

bool is_valid_utf8(std::string_view text) {
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t length = utf8_sequence_length(text, i);
    if (length == 0) return false;
    i += length;
  }
  return true;
}

std::string valid_utf8(std::string_view text) {
  std::size_t i = 0;
  // Nearly all text is valid: copy it whole.
  while (i < text.size()) {
    const std::size_t length = utf8_sequence_length(text, i);
    if (length == 0) break;
    i += length;
  }
  std::string out(text.substr(0, i));
  if (i == text.size()) return out;
  out.reserve(text.size() + 16);
  while (i < text.size()) {
    i += append_utf8_character(out, text, i);
  }
  return out;
}

std::string_view utf8_prefix(std::string_view text, std::size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  std::size_t cut = max_bytes;
  // The sequence the cut may fall into starts at most 3 bytes before it, at the first byte
  // that is not a continuation byte.
  for (std::size_t back = 1; back <= 3 && back <= cut; ++back) {
    const auto c = static_cast<unsigned char>(text[cut - back]);
    if ((c & 0xC0) == 0x80) continue;
    if (utf8_sequence_length(text, cut - back) > back) cut -= back;
    break;
  }
  return text.substr(0, cut);
}

std::string clean_text(std::string_view text, std::size_t max_bytes) {
  const std::string valid = valid_utf8(text);
  return std::string(utf8_prefix(valid, max_bytes));
}

std::string shortened(std::string_view text, std::size_t max_bytes) {
  if (text.size() <= max_bytes) return std::string(text);
  const std::size_t keep = max_bytes >= 3 ? max_bytes - 3 : 0;
  return std::string(utf8_prefix(text, keep)) + "...";
}

std::string fixed(double value, int decimals) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  return text;
}

}  // namespace vigil

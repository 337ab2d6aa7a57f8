// Text from outside (a target's body, headers and error texts, a client's push message) is bytes,
// not UTF-8: a Latin-1 header, a byte cut out of a multibyte character, a `%FF` in a query. JSON
// (nlohmann's dump throws on it), HTML and the alert channels need valid UTF-8, so every such
// text goes through here once, where it enters vigil, and nothing downstream has to care.
//
// "Valid" is Unicode's well-formed UTF-8 (Table 3-7): no overlong forms, no surrogates
// (U+D800..U+DFFF), nothing above U+10FFFF, no sequence cut short. All functions are pure and
// safe from any thread.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace vigil {

// The length (1 to 4) of the well-formed UTF-8 sequence that starts at text[i], or 0 when none
// starts there (a continuation byte, a byte never used in UTF-8, an overlong form, a surrogate,
// a value past U+10FFFF, or a sequence that the end of `text` cuts short). Needs i < text.size().
// Inline: the JSON and HTML writers call it for every non-ASCII character they write.
inline std::size_t utf8_sequence_length(std::string_view text, std::size_t i) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  const auto in = [](unsigned char b, unsigned char lo, unsigned char hi) {
    return b >= lo && b <= hi;
  };
  const unsigned char b0 = byte(i);
  if (b0 < 0x80) return 1;
  const std::size_t left = text.size() - i;
  if (in(b0, 0xC2, 0xDF)) return left >= 2 && in(byte(i + 1), 0x80, 0xBF) ? 2 : 0;
  if (in(b0, 0xE0, 0xEF)) {
    if (left < 3) return 0;
    const unsigned char lo = b0 == 0xE0 ? 0xA0 : 0x80;  // no overlong forms
    const unsigned char hi = b0 == 0xED ? 0x9F : 0xBF;  // no surrogates
    return in(byte(i + 1), lo, hi) && in(byte(i + 2), 0x80, 0xBF) ? 3 : 0;
  }
  if (in(b0, 0xF0, 0xF4)) {
    if (left < 4) return 0;
    const unsigned char lo = b0 == 0xF0 ? 0x90 : 0x80;  // no overlong forms
    const unsigned char hi = b0 == 0xF4 ? 0x8F : 0xBF;  // nothing above U+10FFFF
    return in(byte(i + 1), lo, hi) && in(byte(i + 2), 0x80, 0xBF) && in(byte(i + 3), 0x80, 0xBF)
               ? 4
               : 0;
  }
  return 0;  // 0x80..0xC1 (continuation bytes, overlong leads) and 0xF5..0xFF
}

// U+FFFD REPLACEMENT CHARACTER, encoded.
inline constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";

// Appends the character that starts at text[i] to `out` -- the well-formed sequence, or U+FFFD
// for a byte that starts none -- and returns how many bytes of `text` it stood for (1 to 4).
// Needs i < text.size(). The writers that escape as they go (JSON, HTML) call it per character.
inline std::size_t append_utf8_character(std::string& out, std::string_view text, std::size_t i) {
  const std::size_t length = utf8_sequence_length(text, i);
  if (length == 0) {
    out += kReplacementCharacter;
    return 1;
  }
  out.append(text.substr(i, length));
  return length;
}

// Whether all of `text` is well-formed UTF-8.
bool is_valid_utf8(std::string_view text);

// `text` with every byte that is not part of a well-formed sequence replaced by U+FFFD (one per
// byte, so "\xE2\x82" -- a euro sign cut short -- gives two). Valid text comes back unchanged.
// The result can be up to three times as long as `text`.
std::string valid_utf8(std::string_view text);

// The longest prefix of `text` of at most `max_bytes` bytes that does not end inside a
// well-formed sequence: at most 3 bytes shorter than max_bytes, `text` itself when it fits.
// Valid text gives a valid prefix.
std::string_view utf8_prefix(std::string_view text, std::size_t max_bytes);

// Outside text as vigil keeps it: valid_utf8(text), then cut to at most `max_bytes` bytes on a
// character boundary (utf8_prefix).
std::string clean_text(std::string_view text, std::size_t max_bytes = std::string::npos);

// For messages that quote a value: `text` when it has at most `max_bytes` bytes, else its
// prefix cut on a character boundary and "..." appended, at most `max_bytes` bytes in all
// (max_bytes >= 3). Valid text gives valid text.
std::string shortened(std::string_view text, std::size_t max_bytes);

// `value` with `decimals` digits after the point ("99.95"), as printf's %.*f.
std::string fixed(double value, int decimals);

}  // namespace vigil

// core/text.h: the one place that makes outside text valid UTF-8 and cuts it on a character
// boundary.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/text.h"

namespace vigil {
namespace {

const std::string kFFFD = "\xEF\xBF\xBD";

// What nlohmann (the Alerter's and the API's JSON) thinks of `text`: it throws on invalid UTF-8.
bool json_accepts(const std::string& text) {
  try {
    (void)nlohmann::json(text).dump();
    return true;
  } catch (const nlohmann::json::exception&) {
    return false;
  }
}

struct Case {
  std::string in;
  std::string out;
  const char* what;
};

TEST(ConfigText, ValidTextIsKeptAndEveryInvalidByteBecomesOneReplacementCharacter) {
  for (const Case& c : std::vector<Case>{
           {"", "", "empty"},
           {"plain ascii\t\n", "plain ascii\t\n", "ASCII"},
           {"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xE4\xB8\xAD",
            "caf\xC3\xA9 \xE2\x82\xAC "
            "\xF0\x9F\x98\x80 \xE4\xB8\xAD",
            "2, 3 and 4 byte characters"},
           {"a\xFF"
            "b",
            "a" + kFFFD + "b", "a byte never used in UTF-8"},
           {"caf\xE9", "caf" + kFFFD, "Latin-1"},
           {"\x80x", kFFFD + "x", "a lone continuation byte"},
           {"x\xE2\x82", "x" + kFFFD + kFFFD, "a euro sign cut short at the end"},
           {"\xE2\x82x", kFFFD + kFFFD + "x", "a euro sign cut short before ASCII"},
           {"\xF0\x9F\x98", kFFFD + kFFFD + kFFFD, "an emoji cut short"},
           {"\xC0\xAF", kFFFD + kFFFD, "overlong '/' (2 bytes)"},
           {"\xE0\x80\xAF", kFFFD + kFFFD + kFFFD, "overlong '/' (3 bytes)"},
           {"\xF0\x80\x80\xAF", kFFFD + kFFFD + kFFFD + kFFFD, "overlong '/' (4 bytes)"},
           {"\xC1\xBF", kFFFD + kFFFD, "overlong U+007F"},
           {"\xED\xA0\x80", kFFFD + kFFFD + kFFFD, "high surrogate U+D800"},
           {"\xED\xBF\xBF", kFFFD + kFFFD + kFFFD, "low surrogate U+DFFF"},
           {"\xED\x9F\xBF", "\xED\x9F\xBF", "U+D7FF, just below the surrogates"},
           {"\xF4\x8F\xBF\xBF", "\xF4\x8F\xBF\xBF", "U+10FFFF, the last code point"},
           {"\xF4\x90\x80\x80", kFFFD + kFFFD + kFFFD + kFFFD, "past U+10FFFF"},
           {"\xF5\x80\x80\x80", kFFFD + kFFFD + kFFFD + kFFFD, "lead byte 0xF5"},
           {std::string("a\0b", 3), std::string("a\0b", 3), "NUL is valid UTF-8"},
       }) {
    EXPECT_EQ(valid_utf8(c.in), c.out) << c.what;
    EXPECT_EQ(is_valid_utf8(c.in), c.in == c.out) << c.what;
    EXPECT_TRUE(is_valid_utf8(valid_utf8(c.in))) << c.what;
    EXPECT_TRUE(json_accepts(valid_utf8(c.in))) << c.what;
  }
}

TEST(ConfigText, SequenceLengths) {
  EXPECT_EQ(utf8_sequence_length("a", 0), 1u);
  EXPECT_EQ(utf8_sequence_length("\xC3\xA9", 0), 2u);
  EXPECT_EQ(utf8_sequence_length("\xE2\x82\xAC", 0), 3u);
  EXPECT_EQ(utf8_sequence_length("\xF0\x9F\x98\x80", 0), 4u);
  EXPECT_EQ(utf8_sequence_length("\xC3\xA9", 1), 0u);  // inside a character
  EXPECT_EQ(utf8_sequence_length("\xE2\x82", 0), 0u);  // cut short
}

TEST(ConfigText, APrefixNeverEndsInsideACharacter) {
  const std::string e_acute = "\xC3\xA9";
  const std::string text = "ab" + e_acute + "\xE4\xB8\xAD" + "\xF0\x9F\x98\x80";  // 2+2+3+4
  const std::vector<std::string> expected{
      // 0..3 (3 would end inside the e acute)
      "", "a", "ab", "ab",
      // 4..6 (5 and 6 inside the CJK character)
      "ab" + e_acute, "ab" + e_acute, "ab" + e_acute,
      // 7..10 (8 to 10 inside the emoji)
      "ab" + e_acute + "\xE4\xB8\xAD", "ab" + e_acute + "\xE4\xB8\xAD",
      "ab" + e_acute + "\xE4\xB8\xAD", "ab" + e_acute + "\xE4\xB8\xAD",
      // 11: all of it
      text};
  for (std::size_t max = 0; max < expected.size(); ++max) {
    const std::string_view prefix = utf8_prefix(text, max);
    EXPECT_EQ(prefix, expected[max]) << "max " << max;
    EXPECT_LE(prefix.size(), max);
    EXPECT_TRUE(is_valid_utf8(prefix)) << "max " << max;
  }
  EXPECT_EQ(utf8_prefix(text, 1000), text);
  // Invalid bytes are not sequences: a cut next to them is where it was asked for.
  EXPECT_EQ(utf8_prefix("ab\xFF\xFF\xFF", 4), "ab\xFF\xFF");
  EXPECT_EQ(utf8_prefix("ab\x80\x80\x80\x80", 4), "ab\x80\x80");
}

TEST(ConfigText, CleanTextIsValidAndCutOnACharacterBoundary) {
  EXPECT_EQ(clean_text("caf\xE9", 100), "caf" + kFFFD);
  EXPECT_EQ(clean_text("caf\xE9", 5), "caf");  // the replacement would not fit whole
  EXPECT_EQ(clean_text("caf\xE9", 6), "caf" + kFFFD);
  EXPECT_EQ(clean_text("\xFF\xFF"), kFFFD + kFFFD);
}

TEST(ConfigText, ShortenedQuotesEndWithAnEllipsisAndStayValid) {
  EXPECT_EQ(shortened("short", 80), "short");
  EXPECT_EQ(shortened(std::string(80, 'x'), 80), std::string(80, 'x'));
  EXPECT_EQ(shortened(std::string(81, 'x'), 80), std::string(77, 'x') + "...");
  // "é" repeated: 77 bytes would end inside the 39th, so 38 are kept.
  std::string repeated;
  for (int i = 0; i < 60; ++i) repeated += "\xC3\xA9";
  const std::string cut = shortened(repeated, 80);
  EXPECT_LE(cut.size(), 80u);
  EXPECT_TRUE(is_valid_utf8(cut));
  EXPECT_EQ(cut, repeated.substr(0, 76) + "...");
  std::string cjk;
  for (int i = 0; i < 40; ++i) cjk += "\xE4\xB8\xAD";
  EXPECT_TRUE(is_valid_utf8(shortened(cjk, 80)));
  EXPECT_TRUE(json_accepts(shortened(cjk, 80)));
  EXPECT_EQ(shortened(cjk, 80).size(), 75u + 3u);  // 25 characters fit in 77 bytes
}

}  // namespace
}  // namespace vigil

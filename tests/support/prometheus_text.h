// Reading the Prometheus text exposition format in tests: parse a /metrics text into families
// and series to compare two renderings series by series, and run `promtool check metrics`.
#pragma once

#include <bit>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace vigil::test {

struct ParsedFamily {
  std::string help;
  std::string type;
  // Sample name and labels (by name, unescaped) -> the value's bits (NaN equals NaN, -0 is not 0).
  std::map<std::pair<std::string, std::map<std::string, std::string>>, std::uint64_t> series;
  friend bool operator==(const ParsedFamily&, const ParsedFamily&) = default;
};

struct ParsedExposition {
  std::map<std::string, ParsedFamily> families;
  std::vector<std::string> errors;  // malformed lines, a family declared twice, a series twice
  std::size_t sample_count = 0;
};

// Samples belong to the family of the last TYPE line, as in the format.
inline ParsedExposition parse_exposition(const std::string& text) {
  ParsedExposition parsed;
  std::string family;
  std::istringstream lines(text);
  std::string line;
  std::size_t number = 0;
  const auto fail = [&](const std::string& why) {
    parsed.errors.push_back("line " + std::to_string(number) + ": " + why + ": " + line);
  };
  while (std::getline(lines, line)) {
    ++number;
    if (line.empty()) continue;
    if (line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) {
      const bool help = line[2] == 'H';
      const std::string rest = line.substr(7);
      const auto space = rest.find(' ');
      const std::string name = rest.substr(0, space);
      const std::string value = space == std::string::npos ? "" : rest.substr(space + 1);
      ParsedFamily& f = parsed.families[name];
      std::string& field = help ? f.help : f.type;
      if (!field.empty()) fail("declared twice");
      field = value;
      if (!help) family = name;
      continue;
    }
    if (line[0] == '#') continue;
    std::size_t at = line.find_first_of("{ ");
    if (at == std::string::npos) {
      fail("no value");
      continue;
    }
    const std::string name = line.substr(0, at);
    std::map<std::string, std::string> labels;
    if (line[at] == '{') {
      ++at;
      while (at < line.size() && line[at] != '}') {
        const auto eq = line.find('=', at);
        if (eq == std::string::npos || eq + 1 >= line.size() || line[eq + 1] != '"') {
          fail("bad label");
          break;
        }
        const std::string label = line.substr(at, eq - at);
        std::string value;
        at = eq + 2;
        while (at < line.size() && line[at] != '"') {
          if (line[at] == '\\' && at + 1 < line.size()) {
            const char escaped = line[++at];
            value += escaped == 'n' ? '\n' : escaped;
          } else {
            value += line[at];
          }
          ++at;
        }
        if (at >= line.size()) {
          fail("unterminated label value");
          break;
        }
        ++at;  // the closing quote
        if (!labels.emplace(label, value).second) fail("label twice");
        if (at < line.size() && line[at] == ',') ++at;
      }
      ++at;  // '}'
    }
    if (at >= line.size() || line[at] != ' ') {
      fail("no value");
      continue;
    }
    const std::string value_text = line.substr(at + 1);
    char* end = nullptr;
    const double value = std::strtod(value_text.c_str(), &end);
    if (value_text.empty() || *end != '\0') {
      fail("bad value");
      continue;
    }
    if (family.empty() || name.rfind(family, 0) != 0) {
      fail("sample outside its family");
      continue;
    }
    auto& series = parsed.families[family].series;
    if (!series.emplace(std::pair{name, labels}, std::bit_cast<std::uint64_t>(value)).second)
      fail("series twice");
    ++parsed.sample_count;
  }
  return parsed;
}

// `promtool check metrics` on `text` (through a file in `dir`); nullopt when it accepts it, else
// what it said. Callers skip when /usr/bin/promtool is missing.
inline std::optional<std::string> promtool_complaints(const std::string& text,
                                                      const std::string& dir) {
  const std::string input = dir + "/promtool-input.txt";
  const std::string output = dir + "/promtool-output.txt";
  std::ofstream(input) << text;
  const std::string command =
      "/usr/bin/promtool check metrics < " + input + " > " + output + " 2>&1";
  const int rc = std::system(command.c_str());
  if (rc == 0) return std::nullopt;
  std::ifstream in(output);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace vigil::test

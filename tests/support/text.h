// Small text checks the tests share. Header-only.
#pragma once

#include <string_view>

namespace vigil::test {

// Whether `part` occurs in `text`.
inline bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

}  // namespace vigil::test

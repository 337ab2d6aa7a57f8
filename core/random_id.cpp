#include "core/random_id.h"

#include <random>

namespace vigil {

std::string random_id() {
  std::random_device random;
  static const char* const digits = "0123456789abcdef";
  std::string text;
  for (int i = 0; i < 8; ++i) {
    const auto word = random();
    for (int shift = 0; shift < 16; shift += 4) text += digits[(word >> shift) & 0xf];
  }
  return text;
}

}  // namespace vigil

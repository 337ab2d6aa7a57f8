#include "core/process_identity.h"

#include <unistd.h>

#include <algorithm>
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

std::string host_name() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') return "localhost";
  std::string name(host);
  std::replace(name.begin(), name.end(), ' ', '_');
  return name;
}

}  // namespace vigil

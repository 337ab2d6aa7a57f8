// Builders of the domain values the storage and API tests share. Header-only.
#pragma once

#include <cstdint>
#include <string>

#include "core/model.h"

namespace vigil::test {

// The wall time `ms` milliseconds after the Unix epoch.
inline TimePoint at(std::int64_t ms) { return from_unix_ms(ms); }

// An http service named `name`, probing http://<name>.test/ with the defaults otherwise.
inline ServiceSpec probed(const std::string& name) {
  ServiceSpec spec;
  spec.name = name;
  spec.url = "http://" + name + ".test/";
  return spec;
}

}  // namespace vigil::test

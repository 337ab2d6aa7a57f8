// The sum of a probe's phases, which must equal its response_ms (core/model.h, PhaseTimings).
// Header-only.
#pragma once

#include "core/model.h"

namespace vigil::test {

inline double phase_sum(const PhaseTimings& p) {
  return p.resolve_ms + p.connect_ms + p.tls_ms + p.processing_ms + p.transfer_ms;
}

}  // namespace vigil::test

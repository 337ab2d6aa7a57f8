// GET /metrics: every source's families as one text exposition. A family name appears once, with
// its HELP and TYPE and the samples of every source that has it (the runner's per-service
// vigil_service_uptime_ratio and the windowed one of api/uptime_gauges.h make one family).
// Sources that are TextCollectables (the per-service series) are written straight as text; the
// others (the registry) through prometheus-cpp's TextSerializer. A family's HELP and TYPE are the
// first prometheus-cpp source's, else the first text source's.
#pragma once

#include <prometheus/collectable.h>

#include <span>

#include "runner/text_exposition.h"

namespace vigil {

// Writes the families of `sources`, in the order they first appear; the caller calls
// out.finish().
void write_metrics_text(std::span<const prometheus::Collectable* const> sources,
                        TextExpositionWriter& out);

}  // namespace vigil

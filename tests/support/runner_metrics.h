// Everything /metrics would show of a Runner: the registry's families and the runner's
// per-service series, which live outside the registry (Runner::service_series()).
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include <vector>

#include "runner/runner.h"

namespace vigil::test {

inline std::vector<prometheus::MetricFamily> collect(prometheus::Registry& registry,
                                                     const Runner& runner) {
  auto families = registry.Collect();
  for (auto& family : runner.service_series()->Collect()) families.push_back(std::move(family));
  return families;
}

}  // namespace vigil::test

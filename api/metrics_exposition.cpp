#include "api/metrics_exposition.h"

#include <prometheus/metric_family.h>

#include <iterator>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace vigil {

void write_metrics_text(std::span<const prometheus::Collectable* const> sources,
                        TextExpositionWriter& out) {
  // One entry per family name: the prometheus-cpp sources' samples merged into one family, then
  // the text sources that write samples of that name.
  struct Entry {
    std::optional<prometheus::MetricFamily> merged;
    std::vector<std::pair<const TextCollectable*, std::size_t>> streamed;
  };
  std::vector<Entry> entries;
  std::unordered_map<std::string, std::size_t> index;
  const auto entry_for = [&](std::string name) -> Entry& {
    const auto [it, added] = index.emplace(std::move(name), entries.size());
    if (added) entries.emplace_back();
    return entries[it->second];
  };
  for (const prometheus::Collectable* source : sources) {
    if (const auto* text = dynamic_cast<const TextCollectable*>(source)) {
      const auto families = text->text_families();
      for (std::size_t i = 0; i < families.size(); ++i)
        entry_for(std::string(families[i].name)).streamed.emplace_back(text, i);
      continue;
    }
    for (auto& family : source->Collect()) {
      Entry& entry = entry_for(family.name);
      if (!entry.merged) {
        entry.merged = std::move(family);
      } else {
        auto& into = entry.merged->metric;
        into.insert(into.end(), std::make_move_iterator(family.metric.begin()),
                    std::make_move_iterator(family.metric.end()));
      }
    }
  }
  for (const Entry& entry : entries) {
    if (entry.merged) out.family(*entry.merged);
    for (const auto& [text, i] : entry.streamed) {
      if (!out.ok()) return;
      out.open(text->text_families()[i]);
      text->write_samples(i, out);
    }
  }
}

}  // namespace vigil

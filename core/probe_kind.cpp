#include "core/probe_kind.h"

#include <utility>

namespace vigil {
namespace {

// One row per kind.
constexpr ProbeKindInfo kProbeKinds[] = {
    {.kind = ProbeKind::http, .schemes = {"http", "https"}, .http = true},
    {.kind = ProbeKind::tcp, .schemes = {"tcp"}, .address_only = true, .conversation = true},
};

// "a, b or c" of the schemes of the kinds `include` accepts.
template <typename Filter>
std::string schemes_text(Filter include) {
  std::string text;
  std::string last;
  for (const auto& info : kProbeKinds) {
    if (!include(info)) continue;
    for (const std::string_view scheme : info.schemes) {
      if (scheme.empty()) continue;
      if (!last.empty()) text += (text.empty() ? "" : ", ") + last;
      last = std::string(scheme) + "://";
    }
  }
  return text.empty() ? last : text + " or " + last;
}

// The kind whose scheme starts `url`, and that scheme with "://"; null and empty when none does.
std::pair<const ProbeKindInfo*, std::string_view> match(std::string_view url) {
  for (const auto& info : kProbeKinds)
    for (const std::string_view scheme : info.schemes)
      if (!scheme.empty() && url.starts_with(scheme) &&
          url.substr(scheme.size()).starts_with("://"))
        return {&info, url.substr(0, scheme.size() + 3)};
  return {nullptr, {}};
}

}  // namespace

std::span<const ProbeKindInfo> probe_kinds() { return kProbeKinds; }

std::string_view probe_scheme_of(std::string_view url) { return match(url).second; }

const ProbeKindInfo* probe_kind_for(std::string_view url) { return match(url).first; }

std::string probe_schemes_text() {
  return schemes_text([](const ProbeKindInfo&) { return true; });
}

std::string conversation_schemes_text() {
  return schemes_text([](const ProbeKindInfo& info) { return info.conversation; });
}

}  // namespace vigil

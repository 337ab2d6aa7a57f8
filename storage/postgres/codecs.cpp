#include "storage/postgres/codecs.h"

#include "core/config_error.h"
#include "core/probe_options.h"
#include "storage/store.h"

namespace vigil::postgres_codecs {
EventKind decode_event_kind(const std::string& text) {
  if (text == "uptime") return EventKind::uptime;
  if (text == "downtime") return EventKind::downtime;
  throw StorageError("unknown event kind '" + text + "' in service_events");
}

ProbeOptions read_probe_options(const std::string& text) {
  try {
    return decode_probe_options(text);
  } catch (const ConfigError& e) {
    throw StorageError(std::string("bad services.probe_options: ") + e.what());
  }
}

}  // namespace vigil::postgres_codecs

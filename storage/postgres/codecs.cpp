#include "storage/postgres/codecs.h"

#include <sys/random.h>

#include <cerrno>

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

std::string new_push_token() {
  unsigned char bytes[24];
  std::size_t filled = 0;
  while (filled < sizeof bytes || (bytes[0] >> 2) == 62) {  // 62: '-' in the alphabet
    if (filled == sizeof bytes) filled = 0;                 // draw again
    const ssize_t n = ::getrandom(bytes + filled, sizeof bytes - filled, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw StorageError("storage: cannot read random bytes for a push token");
    }
    filled += static_cast<std::size_t>(n);
  }
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string token;
  for (std::size_t i = 0; i < sizeof bytes; i += 3) {
    const unsigned v = unsigned(bytes[i]) << 16 | unsigned(bytes[i + 1]) << 8 | bytes[i + 2];
    for (int shift = 18; shift >= 0; shift -= 6) token += kAlphabet[(v >> shift) & 63];
  }
  return token;
}

}  // namespace vigil::postgres_codecs

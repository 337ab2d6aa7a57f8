// The one paging contract of the list endpoints (services, events, ticks, alerts): `limit`
// (1..kMaxLimit, default kDefaultLimit) and an opaque `cursor`; each page answers `next`, the
// cursor of the following page, or null on the last one.
//
// Keyset (seek) paging: a cursor holds the sort key of the last item a page returned, and the
// next page starts strictly after it. So a page costs an index seek however deep it is, and
// items written meanwhile never shift a page or repeat an item: new ticks, events and alerts
// sort first (newest first), so a walk never meets them; new services (by id) sort last.
//
// A cursor is base64url (no padding) of "1|<list>|<scope>|<key>|<key2>|<check>": format version,
// which list it belongs to, the service id for per-service lists (0 otherwise), the sort key and
// a checksum of the rest. The checksum catches a cursor that was cut or edited by accident; it
// is not a secret (a cursor only positions a page within data the caller may read anyway).
// Clients must treat cursors as opaque: the format may change with the version number.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace vigil::paging {

inline constexpr int kDefaultLimit = 100;
inline constexpr int kMaxLimit = 1000;

// A paging parameter the client got wrong; what() names the parameter (the API answers 400).
class BadParam : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// Which list a cursor belongs to: a cursor of one list is rejected by the others.
enum class List { services, events, ticks, alerts };

// The sort key of the last item of a page. `id` is the service, event or alert id, or for a
// tick its seq (0 or more: it orders ticks of the same ts); `ts_ms` is used by ticks only.
struct Key {
  std::int64_t ts_ms = 0;
  std::int64_t id = 0;
  friend bool operator==(const Key&, const Key&) = default;
};

// `limit` from the query: kDefaultLimit when absent; BadParam unless a whole decimal number
// from 1 to kMaxLimit (larger values are rejected, not clamped: a client never gets a shorter
// page than it asked for without being told).
int parse_limit(const std::optional<std::string>& text);

// `cursor` from the query: empty when absent; BadParam when it is not a cursor this build wrote
// for `list` and `scope` (malformed, edited, from another list or another service).
std::optional<Key> parse_cursor(const std::optional<std::string>& text, List list,
                                std::int64_t scope = 0);

// The cursor that continues `list` (of service `scope`, or 0) after `last`.
std::string encode_cursor(List list, std::int64_t scope, const Key& last);

}  // namespace vigil::paging

// Time zones for recurring maintenance windows: a fixed offset ("UTC", "+02:00") or an IANA name
// ("Europe/Berlin") read from the system's TZif files, daylight saving time included. GCC 12 has
// no <chrono> time zone database, so this is a small reader of RFC 8536 files: the version 2+
// 64-bit transition table, and past its end the footer's POSIX TZ rule ("CET-1CEST,M3.5.0,
// M10.5.0/3"), which is all a "slim" file has for the present. A version 1 file (no footer)
// keeps its last offset past the table.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace vigil {

// Why a time zone name or file cannot be used.
class TimeZoneError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class TimeZone {
 public:
  // "UTC", "Z", "+HH:MM" / "-HH:MM", or an IANA name looked up under $TZDIR (default
  // /usr/share/zoneinfo). Throws TimeZoneError saying why (not found, not a TZif file, a name
  // with "..").
  static std::shared_ptr<const TimeZone> load(const std::string& name);
  // A zone that is always `offset_seconds` east of UTC.
  static std::shared_ptr<const TimeZone> fixed(std::int64_t offset_seconds, std::string name);
  // Parses the bytes of a TZif file. Throws TimeZoneError.
  static std::shared_ptr<const TimeZone> from_tzif(std::string name, std::string_view data);

  // As given to load(): what the API shows.
  const std::string& name() const { return name_; }
  // Seconds east of UTC in effect at `unix_seconds`.
  std::int64_t offset_at(std::int64_t unix_seconds) const;
  // The instant (unix seconds) of the local wall time `local_seconds` (seconds since 1970-01-01
  // 00:00 on the local calendar). A wall time that occurs twice (clocks set back) is its first
  // occurrence; one that is skipped (clocks set forward) is read with the offset before the
  // change, so 02:30 in a 02:00->03:00 gap is 03:30 afterwards.
  std::int64_t to_utc(std::int64_t local_seconds) const;

  struct Rule;  // the footer's POSIX TZ rule, defined in timezone.cpp

 private:
  TimeZone() = default;
  std::string name_;
  std::vector<std::int64_t> transitions_;  // ascending unix seconds
  std::vector<std::int64_t> offsets_;      // offset after each transition
  std::int64_t initial_offset_ = 0;        // before the first transition
  std::shared_ptr<const Rule> rule_;       // after the last transition, when the file has one
};

}  // namespace vigil

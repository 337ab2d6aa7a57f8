#include "alerting/timezone.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>

namespace vigil {
namespace {

constexpr std::int64_t kDay = 86'400;
constexpr std::size_t kMaxFileBytes = 1 << 20;  // real TZif files are a few KiB

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
}
std::int64_t floor_mod(std::int64_t a, std::int64_t b) { return a - floor_div(a, b) * b; }

// Days since 1970-01-01 of a proleptic Gregorian date, and back (H. Hinnant's algorithms).
std::int64_t days_from_civil(std::int64_t y, int m, int d) {
  y -= m <= 2;
  const std::int64_t era = floor_div(y, 400);
  const std::int64_t yoe = y - era * 400;
  const std::int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const std::int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146'097 + doe - 719'468;
}
std::int64_t year_of_day(std::int64_t days) {
  const std::int64_t z = days + 719'468;
  const std::int64_t era = floor_div(z, 146'097);
  const std::int64_t doe = z - era * 146'097;
  const std::int64_t yoe = (doe - doe / 1460 + doe / 36'524 - doe / 146'096) / 365;
  const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const std::int64_t mp = (5 * doy + 2) / 153;
  const std::int64_t m = mp < 10 ? mp + 3 : mp - 9;
  return yoe + era * 400 + (m <= 2);
}
bool is_leap(std::int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }
int month_days(std::int64_t y, int m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : kDays[m - 1];
}

// Reads the pieces of a POSIX TZ string; every method throws TimeZoneError on bad input.
class TzStringReader {
 public:
  explicit TzStringReader(std::string_view text) : text_(text) {}
  bool done() const { return pos_ == text_.size(); }
  bool accept(char c) {
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  bool at_name() const {
    return pos_ < text_.size() && (text_[pos_] == '<' || std::isalpha(uc(text_[pos_])));
  }
  void name() {
    if (accept('<')) {
      const auto close = text_.find('>', pos_);
      if (close == std::string_view::npos) fail("unterminated <name>");
      pos_ = close + 1;
      return;
    }
    const std::size_t from = pos_;
    while (pos_ < text_.size() && std::isalpha(uc(text_[pos_]))) ++pos_;
    if (pos_ - from < 3) fail("zone abbreviation too short");
  }
  // [+-]hh[:mm[:ss]] in seconds; hours up to `max_hours`.
  std::int64_t duration(int max_hours) {
    std::int64_t sign = 1;
    if (accept('-'))
      sign = -1;
    else
      accept('+');
    const std::int64_t hours = number(0, max_hours);
    std::int64_t seconds = hours * 3600;
    if (accept(':')) {
      seconds += number(0, 59) * 60;
      if (accept(':')) seconds += number(0, 59);
    }
    return sign * seconds;
  }
  std::int64_t number(std::int64_t lo, std::int64_t hi) {
    const std::size_t from = pos_;
    std::int64_t value = 0;
    while (pos_ < text_.size() && std::isdigit(uc(text_[pos_])) && pos_ - from < 4)
      value = value * 10 + (text_[pos_++] - '0');
    if (pos_ == from || value < lo || value > hi) fail("number out of range");
    return value;
  }
  char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  [[noreturn]] void fail(const std::string& why) const {
    throw TimeZoneError("bad TZ rule \"" + std::string(text_) + "\": " + why);
  }

 private:
  static unsigned char uc(char c) { return static_cast<unsigned char>(c); }
  std::string_view text_;
  std::size_t pos_ = 0;
};

std::uint32_t be32(std::string_view data, std::size_t at) {
  return (std::uint32_t(std::uint8_t(data[at])) << 24) |
         (std::uint32_t(std::uint8_t(data[at + 1])) << 16) |
         (std::uint32_t(std::uint8_t(data[at + 2])) << 8) |
         std::uint32_t(std::uint8_t(data[at + 3]));
}
std::int64_t be64(std::string_view data, std::size_t at) {
  return static_cast<std::int64_t>((std::uint64_t(be32(data, at)) << 32) | be32(data, at + 4));
}

// "UTC", "Z" or "+HH:MM" / "-HH:MM": the offset in seconds.
std::optional<std::int64_t> fixed_offset(const std::string& text) {
  if (text == "UTC" || text == "Z") return 0;
  const auto digit = [&](std::size_t i) {
    return std::isdigit(static_cast<unsigned char>(text[i]));
  };
  if (text.size() != 6 || (text[0] != '+' && text[0] != '-') || text[3] != ':' || !digit(1) ||
      !digit(2) || !digit(4) || !digit(5))
    return std::nullopt;
  const int hours = (text[1] - '0') * 10 + (text[2] - '0');
  const int minutes = (text[4] - '0') * 10 + (text[5] - '0');
  if (hours > 14 || minutes >= 60) return std::nullopt;
  const std::int64_t seconds = (hours * 60 + minutes) * 60;
  return text[0] == '-' ? -seconds : seconds;
}

bool valid_zone_name(const std::string& name) {
  if (name.empty() || name.size() > 255 || name.front() == '/' || name.back() == '/') return false;
  for (const char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '/' && c != '_' && c != '-' &&
        c != '+' && c != '.')
      return false;
  std::size_t start = 0;
  while (start <= name.size()) {
    const auto end = std::min(name.find('/', start), name.size());
    const auto part = name.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") return false;
    start = end + 1;
  }
  return true;
}

}  // namespace

// The footer rule: standard offset, and with DST the DST offset and the two changes per year.
struct TimeZone::Rule {
  struct Change {
    char form = 'M';  // 'M' month.week.day, 'J' julian day 1..365 without Feb 29, 'N' 0..365
    int month = 0, week = 0, weekday = 0, day = 0;
    std::int64_t time = 7200;  // local seconds after midnight (may be negative or past 24 h)

    // Local seconds (since 1970-01-01 local) of this change in year `y`.
    std::int64_t local_in(std::int64_t y) const {
      std::int64_t day_number;
      if (form == 'M') {
        const std::int64_t first = days_from_civil(y, month, 1);
        day_number = first + floor_mod(weekday - floor_mod(first + 4, 7), 7) + 7 * (week - 1);
        while (day_number >= first + month_days(y, month)) day_number -= 7;
      } else if (form == 'J') {
        day_number = days_from_civil(y, 1, 1) + day - 1 + (is_leap(y) && day >= 60 ? 1 : 0);
      } else {
        day_number = days_from_civil(y, 1, 1) + day;
      }
      return day_number * kDay + time;
    }
  };

  std::int64_t std_offset = 0;
  std::int64_t dst_offset = 0;
  bool has_dst = false;
  Change start, end;

  static Rule parse(std::string_view text) {
    TzStringReader in(text);
    Rule rule;
    in.name();
    rule.std_offset = -in.duration(24);  // POSIX counts west of UTC as positive
    if (in.done()) return rule;
    in.name();
    rule.dst_offset = rule.std_offset + 3600;
    if (in.peek() != ',') rule.dst_offset = -in.duration(24);
    // Without rules POSIX leaves the dates to the implementation: keep standard time.
    if (in.done()) return rule;
    if (!in.accept(',')) in.fail("expected ,");
    rule.start = change(in);
    if (!in.accept(',')) in.fail("expected ,");
    rule.end = change(in);
    if (!in.done()) in.fail("unexpected text at the end");
    rule.has_dst = true;
    return rule;
  }

  static Change change(TzStringReader& in) {
    Change c;
    if (in.accept('M')) {
      c.form = 'M';
      c.month = static_cast<int>(in.number(1, 12));
      if (!in.accept('.')) in.fail("expected Mm.w.d");
      c.week = static_cast<int>(in.number(1, 5));
      if (!in.accept('.')) in.fail("expected Mm.w.d");
      c.weekday = static_cast<int>(in.number(0, 6));
    } else if (in.accept('J')) {
      c.form = 'J';
      c.day = static_cast<int>(in.number(1, 365));
    } else {
      c.form = 'N';
      c.day = static_cast<int>(in.number(0, 365));
    }
    if (in.accept('/')) c.time = in.duration(167);
    return c;
  }

  std::int64_t offset_at(std::int64_t t) const {
    if (!has_dst) return std_offset;
    const std::int64_t y = year_of_day(floor_div(t + std_offset, kDay));
    const std::int64_t begins = start.local_in(y) - std_offset;
    const std::int64_t ends = end.local_in(y) - dst_offset;
    const bool dst = begins < ends ? (t >= begins && t < ends) : !(t >= ends && t < begins);
    return dst ? dst_offset : std_offset;
  }
};

std::shared_ptr<const TimeZone> TimeZone::fixed(std::int64_t offset_seconds, std::string name) {
  auto zone = std::shared_ptr<TimeZone>(new TimeZone());
  zone->name_ = std::move(name);
  zone->initial_offset_ = offset_seconds;
  return zone;
}

std::shared_ptr<const TimeZone> TimeZone::from_tzif(std::string name, std::string_view data) {
  constexpr std::size_t kHeader = 44;
  const auto bad = [&](const std::string& why) {
    return TimeZoneError("time zone \"" + name + "\": not a valid TZif file (" + why + ")");
  };
  if (data.size() < kHeader || data.substr(0, 4) != "TZif") throw bad("no TZif header");
  struct Counts {
    std::uint32_t isut, isstd, leap, time, type, chars;
  };
  const auto counts_at = [&](std::size_t at) {
    if (data.size() < at + kHeader || data.substr(at, 4) != "TZif") throw bad("truncated header");
    return Counts{be32(data, at + 20), be32(data, at + 24), be32(data, at + 28),
                  be32(data, at + 32), be32(data, at + 36), be32(data, at + 40)};
  };
  const auto block_size = [](const Counts& c, std::size_t time_size) {
    return std::size_t(c.time) * time_size + c.time + std::size_t(c.type) * 6 + c.chars +
           std::size_t(c.leap) * (time_size + 4) + c.isstd + c.isut;
  };
  const char version = data[4];
  Counts counts = counts_at(0);
  std::size_t at = kHeader;
  std::size_t time_size = 4;
  if (version >= '2') {  // skip the 32-bit block: the 64-bit one follows with its own header
    at += block_size(counts, 4);
    counts = counts_at(at);
    at += kHeader;
    time_size = 8;
  }
  if (counts.type == 0 || counts.type > 256 || counts.time > 100'000)
    throw bad("implausible counts");
  if (data.size() < at + block_size(counts, time_size)) throw bad("truncated data");

  auto zone = std::shared_ptr<TimeZone>(new TimeZone());
  zone->name_ = std::move(name);
  std::vector<std::int64_t> type_offsets(counts.type);
  const std::size_t types_at = at + std::size_t(counts.time) * (time_size + 1);
  for (std::size_t i = 0; i < counts.type; ++i)
    type_offsets[i] = static_cast<std::int32_t>(be32(data, types_at + i * 6));
  for (std::size_t i = 0; i < counts.time; ++i) {
    const std::int64_t when =
        time_size == 8 ? be64(data, at + i * 8) : static_cast<std::int32_t>(be32(data, at + i * 4));
    const auto type = std::uint8_t(data[at + counts.time * time_size + i]);
    if (type >= counts.type) throw bad("transition to an unknown type");
    if (!zone->transitions_.empty() && when <= zone->transitions_.back())
      throw bad("transitions out of order");
    zone->transitions_.push_back(when);
    zone->offsets_.push_back(type_offsets[type]);
  }
  zone->initial_offset_ = type_offsets[0];  // RFC 8536: type 0 before the first transition
  if (time_size == 8) {
    const std::size_t footer = at + block_size(counts, 8);
    if (data.size() > footer + 1 && data[footer] == '\n') {
      const auto close = data.find('\n', footer + 1);
      if (close == std::string_view::npos) throw bad("unterminated footer");
      const auto text = data.substr(footer + 1, close - footer - 1);
      if (!text.empty()) zone->rule_ = std::make_shared<Rule>(Rule::parse(text));
    }
  }
  return zone;
}

std::shared_ptr<const TimeZone> TimeZone::load(const std::string& name) {
  if (const auto offset = fixed_offset(name)) return fixed(*offset, name);
  // Windows are parsed again whenever they are read from the database: read each file once.
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<const TimeZone>> cache;
  std::lock_guard lock(mutex);
  if (const auto found = cache.find(name); found != cache.end()) return found->second;
  if (!valid_zone_name(name))
    throw TimeZoneError("\"" + name + "\" is not a time zone name (like \"Europe/Berlin\")");
  const char* dir = std::getenv("TZDIR");
  const std::filesystem::path path =
      std::filesystem::path(dir && *dir ? dir : "/usr/share/zoneinfo") / name;
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error))
    throw TimeZoneError("unknown time zone \"" + name + "\" (no file " + path.string() +
                        "; is tzdata installed?)");
  std::ifstream in(path, std::ios::binary);
  std::string data(kMaxFileBytes + 1, '\0');
  in.read(data.data(), static_cast<std::streamsize>(data.size()));
  data.resize(static_cast<std::size_t>(in.gcount()));
  if (data.size() > kMaxFileBytes) throw TimeZoneError("time zone \"" + name + "\": file too big");
  auto zone = from_tzif(name, data);
  cache.emplace(name, zone);
  return zone;
}

std::int64_t TimeZone::offset_at(std::int64_t t) const {
  if (transitions_.empty()) return rule_ ? rule_->offset_at(t) : initial_offset_;
  if (t < transitions_.front()) return initial_offset_;
  if (t >= transitions_.back() && rule_) return rule_->offset_at(t);
  const auto after = std::upper_bound(transitions_.begin(), transitions_.end(), t);
  return offsets_[static_cast<std::size_t>(after - transitions_.begin()) - 1];
}

std::int64_t TimeZone::to_utc(std::int64_t local) const {
  // The offsets in effect a day either side; zones change offset at most once in two days.
  const std::int64_t before = offset_at(local - kDay);
  const std::int64_t after = offset_at(local + kDay);
  std::optional<std::int64_t> earliest;
  for (const std::int64_t offset : {before, after}) {
    const std::int64_t candidate = local - offset;
    if (offset_at(candidate) == offset && (!earliest || candidate < *earliest))
      earliest = candidate;
  }
  return earliest ? *earliest : local - before;  // in a gap: as if the clock had not moved yet
}

}  // namespace vigil

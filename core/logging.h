// Logging: one line per call to stderr, "2026-11-22T10:00:00.123Z INFO message". Lines below the
// configured level are dropped before they are formatted by the caller (check enabled() first
// for costly messages). Safe from any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace vigil {

enum class LogLevel { debug = 0, info = 1, warn = 2, error = 3 };

// "debug", "info", "warn"/"warning", "error" (any case); empty when the name is unknown.
std::optional<LogLevel> parse_log_level(std::string_view name);

void set_log_level(LogLevel level);
bool log_enabled(LogLevel level);
void log_line(LogLevel level, std::string_view message);

inline void log_debug(std::string_view m) { log_line(LogLevel::debug, m); }
inline void log_info(std::string_view m) { log_line(LogLevel::info, m); }
inline void log_warn(std::string_view m) { log_line(LogLevel::warn, m); }
inline void log_error(std::string_view m) { log_line(LogLevel::error, m); }

}  // namespace vigil

// DATABASE_URL: the PostgreSQL database vigil is told to use, checked at start, and shown in
// logs and errors without its password. A connection string is a libpq one:
//   postgresql://user:password@host:port/database?option=value   (or postgres://)
//   host=db.example port=5432 dbname=vigil user=vigil password='...'
// Pure functions: any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace vigil {

// What is wrong with `text` as a connection string, or nothing when libpq can be given it: a
// postgresql:// or postgres:// URI (ports numeric, 1-65535), or key=value pairs (values unquoted
// or in single quotes with backslash escapes) whose keys are libpq's options. The message never
// quotes the text itself (it may hold a password); it may name a scheme or an option key.
std::optional<std::string> connection_string_problem(std::string_view text);

// `text` with every secret replaced by "<redacted>" (core/url_redaction.h's kRedacted):
// - a URI's password in its userinfo ("user:secret@" becomes "user:<redacted>@"; the user name
//   stays, it is not a secret) and the values of its `password` and `sslpassword` query options;
// - the values of the `password` and `sslpassword` keys of key=value pairs.
// A text that is neither form, or that cannot be split into pairs, is redacted whole: when in
// doubt, hide. Applying it twice gives the same text as once.
std::string redact_connection_string(std::string_view text);

}  // namespace vigil

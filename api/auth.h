// Who may use the API: writes need the API_TOKEN bearer token, or, without one, a loopback
// client; reads are open unless API_READ_TOKEN is set (then either token reads). Tokens are
// compared in constant time and never logged.
#pragma once

#include <string>
#include <string_view>

namespace vigil {

struct AccessTokens {
  std::string write;  // API_TOKEN; empty: writes only from loopback clients
  std::string read;   // API_READ_TOKEN; empty: reads open to all
};

enum class Access {
  allowed,
  unauthenticated,  // 401: a token is required and none was sent
  forbidden,        // 403: wrong token, or a remote client while API_TOKEN is unset
};

struct Credentials {
  std::string_view authorization;  // the Authorization header, "" when absent
  std::string_view remote_address;
};

Access write_access(const AccessTokens& tokens, const Credentials& credentials);
Access read_access(const AccessTokens& tokens, const Credentials& credentials);
// Whether the caller may see secrets such as a heartbeat's push token: a writer, or a holder
// of API_READ_TOKEN.
bool may_see_secrets(const AccessTokens& tokens, const Credentials& credentials);

// Equality whose time depends only on the length of `given`, not on where the first differing
// byte is nor on the length of `expected`.
bool constant_time_equals(std::string_view given, std::string_view expected);

// 127.0.0.0/8, ::1, and IPv4-mapped 127.x (::ffff:127.0.0.1).
bool is_loopback_address(std::string_view address);

}  // namespace vigil

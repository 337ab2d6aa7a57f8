#include "api/auth.h"

#include <arpa/inet.h>

#include <cstdint>
#include <string>

namespace vigil {
namespace {

// The token of "Bearer <token>" (scheme case-insensitive); empty for anything else.
std::string_view bearer_token(std::string_view header) {
  constexpr std::string_view kScheme = "bearer ";
  if (header.size() <= kScheme.size()) return {};
  for (std::size_t i = 0; i < kScheme.size(); ++i)
    if ((header[i] | 0x20) != kScheme[i]) return {};
  header.remove_prefix(kScheme.size());
  while (!header.empty() && header.front() == ' ') header.remove_prefix(1);
  while (!header.empty() && header.back() == ' ') header.remove_suffix(1);
  return header;
}

}  // namespace

bool constant_time_equals(std::string_view given, std::string_view expected) {
  if (expected.empty()) return given.empty();
  // One pass over `given`, every byte compared: no early exit, and `expected` is indexed modulo
  // its length so its own length does not change the work done.
  unsigned difference = given.size() == expected.size() ? 0u : 1u;
  for (std::size_t i = 0; i < given.size(); ++i)
    difference |= static_cast<unsigned char>(given[i]) ^
                  static_cast<unsigned char>(expected[i % expected.size()]);
  return difference == 0;
}

bool is_loopback_address(std::string_view address) {
  const std::string text(address);
  in_addr v4{};
  if (::inet_pton(AF_INET, text.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (::inet_pton(AF_INET6, text.c_str(), &v6) != 1) return false;
  static const in6_addr loopback = IN6ADDR_LOOPBACK_INIT;
  if (IN6_ARE_ADDR_EQUAL(&v6, &loopback)) return true;
  return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
}

Access write_access(const AccessTokens& tokens, const Credentials& credentials) {
  if (tokens.write.empty())
    return is_loopback_address(credentials.remote_address) ? Access::allowed : Access::forbidden;
  const auto token = bearer_token(credentials.authorization);
  if (token.empty()) return Access::unauthenticated;
  return constant_time_equals(token, tokens.write) ? Access::allowed : Access::forbidden;
}

Access read_access(const AccessTokens& tokens, const Credentials& credentials) {
  if (tokens.read.empty()) return Access::allowed;
  const auto token = bearer_token(credentials.authorization);
  if (token.empty()) return Access::unauthenticated;
  // Both comparisons always run: which token matched must not show in the timing.
  const bool read = constant_time_equals(token, tokens.read);
  const bool write = !tokens.write.empty() && constant_time_equals(token, tokens.write);
  return read || write ? Access::allowed : Access::forbidden;
}

bool may_see_secrets(const AccessTokens& tokens, const Credentials& credentials) {
  if (write_access(tokens, credentials) == Access::allowed) return true;
  if (tokens.read.empty()) return false;
  return constant_time_equals(bearer_token(credentials.authorization), tokens.read);
}

}  // namespace vigil

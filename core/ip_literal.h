// IP address literals, as vigil accepts them where a setting names a local address.
#pragma once

#include <string_view>

namespace vigil {

// Whether `text` is an IPv4 address in dotted-quad form ("127.0.0.2") or an IPv6 address
// ("::1", "fe80::1"; no brackets, no zone, no port). Host names are not literals.
bool is_ip_literal(std::string_view text);

}  // namespace vigil

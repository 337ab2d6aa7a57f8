#include "core/ip_literal.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <string>

namespace vigil {

bool is_ip_literal(std::string_view text) {
  const std::string address(text);  // inet_pton needs a terminated string
  in_addr v4{};
  in6_addr v6{};
  return ::inet_pton(AF_INET, address.c_str(), &v4) == 1 ||
         ::inet_pton(AF_INET6, address.c_str(), &v6) == 1;
}

}  // namespace vigil

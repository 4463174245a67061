// Socket addresses as configured ("127.0.0.1:9143", "[::1]:9143"): parsed
// once, with the reason when they are not usable. Pure; thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "util/result.h"

namespace mailshard {

struct SocketAddress {
  std::string ip;  // numeric, without brackets
  int port = 0;    // 1..65535
  bool ipv6 = false;
};

// "IP:PORT" or "[IPv6]:PORT" with a numeric address (a proxy such as nginx
// needs an IP, and a name would hide a DNS lookup in every login).
// Error (kInvalidInput): "'store2:143' is not IP:PORT (the address must be numeric, e.g. 192.0.2.10:143)".
Result<SocketAddress> parse_socket_address(std::string_view text);

}  // namespace mailshard

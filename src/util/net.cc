#include "util/net.h"

#include <arpa/inet.h>

#include <charconv>

#include <fmt/format.h>

#include "util/strings.h"

namespace mailshard {

Result<SocketAddress> parse_socket_address(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return Error::invalid(fmt::format("'{}' is not IP:PORT ({})", printable(std::string(text)), why));
  };
  SocketAddress a;
  std::string_view host, port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return bad("write an IPv6 address as [ADDRESS]:PORT");
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    a.ipv6 = true;
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad("the port is missing");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  a.ip = std::string(host);
  unsigned char buf[16];
  if (inet_pton(a.ipv6 ? AF_INET6 : AF_INET, a.ip.c_str(), buf) != 1)
    return bad("the address must be numeric, e.g. 192.0.2.10:143");
  int p = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (ec != std::errc() || end != port.data() + port.size() || p < 1 || p > 65535 || port.empty())
    return bad("the port must be a number from 1 to 65535");
  a.port = p;
  return a;
}

}  // namespace mailshard

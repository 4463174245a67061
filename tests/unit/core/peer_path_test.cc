#include "core/peer_path.h"

#include <gtest/gtest.h>

namespace mailshard {
namespace {

ServerConfig agent_server(const std::string& name, const std::string& peer_command = "") {
  ServerConfig s;
  s.name = name;
  s.mail_root = "/srv/mail";
  s.transport = TransportKind::kAgent;
  s.agent_command = "ssh -T " + name + " mailshard agent --stdio --root /srv/mail";
  s.peer_command = peer_command;
  return s;
}

TEST(PeerPath, AutoGoesDirectOnlyWhenTheSourceHasAPeerCommand) {
  ServerConfig from = agent_server("store1", "ssh -T store1.internal mailshard agent --stdio --root /srv/mail");
  ServerConfig to = agent_server("store2");
  auto p = direct_peer(from, to);
  ASSERT_TRUE(p.ok()) << p.error().message();
  ASSERT_TRUE(p->has_value());
  EXPECT_EQ((*p)->name, "store1");
  EXPECT_EQ((*p)->argv, (std::vector<std::string>{"ssh", "-T", "store1.internal", "mailshard", "agent", "--stdio",
                                                  "--root", "/srv/mail"}));
  from.peer_command.clear();
  p = direct_peer(from, to);
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p->has_value());
  // A local source (or destination) never goes direct on its own.
  ServerConfig local = to;
  local.transport = TransportKind::kLocal;
  from.peer_command = "x agent --stdio --root /srv/mail";
  p = direct_peer(from, local);
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p->has_value());
}

TEST(PeerPath, ViaControllerWinsAndDirectThatCannotBeIsRefused) {
  ServerConfig from = agent_server("store1", "ssh -T store1 mailshard agent --stdio --root /srv/mail");
  ServerConfig to = agent_server("store2");
  to.peer_transport = PeerTransport::kViaController;
  auto p = direct_peer(from, to);
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p->has_value());

  to.peer_transport = PeerTransport::kDirect;
  from.peer_command.clear();
  p = direct_peer(from, to);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().code(), ErrorCode::kInvalidInput);
  EXPECT_EQ(p.error().message(),
            "server store2 has peer_transport = \"direct\", but the source store1 has no peer_command (how store2's "
            "agent reaches store1)");
  from.transport = TransportKind::kLocal;
  p = direct_peer(from, to);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().message().find("needs both servers behind agents"), std::string::npos) << p.error().message();
}

}  // namespace
}  // namespace mailshard

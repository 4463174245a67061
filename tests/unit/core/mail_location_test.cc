// mail_location: Dovecot's syntax parsed, its variables expanded for a user,
// and the trees of a user's mail it names.
#include "core/mail_location.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace mailshard {
namespace {

using ::testing::HasSubstr;

const LocationUser kAlice{"alice@example.org", "example.org/alice"};

std::string expand(std::string_view v, const LocationUser& u = kAlice) {
  auto r = expand_location_value(v, u);
  return r.ok() ? *r : "error: " + r.error().message();
}

TEST(MailLocation, TheSupportedFormsParse) {
  auto d = parse_mail_location("maildir:~/Maildir");
  ASSERT_TRUE(d.ok()) << d.error().message();
  EXPECT_EQ(d->format, MailFormat::kDovecot);
  EXPECT_EQ(d->maildir, "Maildir");
  EXPECT_TRUE(d->options.empty());
  auto c = parse_mail_location("courier:~/Maildir/");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->format, MailFormat::kCourier);
  EXPECT_EQ(c->maildir, "Maildir");
  auto home = parse_mail_location("maildir:~");
  ASSERT_TRUE(home.ok());
  EXPECT_EQ(home->maildir, "");
}

TEST(MailLocation, DboxWithAltStorageParses) {
  auto m = parse_mail_location("mdbox:~/mdbox:ALT=/srv/mail1/alt/%d/%n");
  ASSERT_TRUE(m.ok()) << m.error().message();
  EXPECT_EQ(m->format, MailFormat::kMdbox);
  EXPECT_EQ(m->maildir, "mdbox");
  EXPECT_EQ(*m->option("ALT"), "/srv/mail1/alt/%d/%n");
  auto s = parse_mail_location("sdbox:~/sdbox:INDEX=/srv/mail1/index/%u:ALT=/srv/mail1/alt/%u");
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_EQ(s->format, MailFormat::kSdbox);
  EXPECT_TRUE(is_dbox(s->format));
  EXPECT_FALSE(is_dbox(MailFormat::kDovecot));
  EXPECT_EQ(mail_format_name(MailFormat::kMdbox), "Dovecot mdbox");
  EXPECT_EQ(mail_format_name(MailFormat::kSdbox), "Dovecot sdbox");
  // An alt tree is one user's like INDEX= and CONTROL=, with a value.
  EXPECT_EQ(parse_mail_location("mdbox:~/mdbox:ALT=/srv/alt/%d").error().message(),
            "'mdbox:~/mdbox:ALT=/srv/alt/%d': ALT: names no user (~, %u, %n or %h): a directory shared by several "
            "users is not one user's to move");
  EXPECT_EQ(parse_mail_location("mdbox:~/mdbox:ALT=").error().message(),
            "'mdbox:~/mdbox:ALT=': ALT: needs a value (KEY=VALUE)");
  EXPECT_EQ(parse_mail_location("mdbox:~/mdbox:ALT=/srv/alt/%z").error().message(),
            "'mdbox:~/mdbox:ALT=/srv/alt/%z': ALT: unknown variable %z");
  EXPECT_EQ(parse_mail_location("sdbox:/var/mail/%u").error().message(),
            "'sdbox:/var/mail/%u': the path must be inside the home (~/...)");
}

TEST(MailLocation, TheAltTreeIsATreeOfItsOwn) {
  auto loc = parse_mail_location("mdbox:~/mdbox:ALT=/srv/mail1/alt/%d/%n");
  ASSERT_TRUE(loc.ok());
  const LocationUser abs{"alice@example.org", "/srv/mail1/example.org/alice"};
  auto trees = location_trees(*loc, abs);
  ASSERT_TRUE(trees.ok()) << trees.error().message();
  ASSERT_EQ(trees->size(), 2u);
  EXPECT_EQ((*trees)[1].kind, TreeKind::kAlt);
  EXPECT_EQ((*trees)[1].name, "alt");
  EXPECT_EQ((*trees)[1].path, "/srv/mail1/alt/example.org/alice");
  EXPECT_EQ(tree_kind_name(TreeKind::kAlt), "alt");
  EXPECT_EQ((*trees)[1].base, "/srv/mail1/alt") << "what must be there before a move makes the tree";
  EXPECT_EQ((*trees)[0].base, "");
  EXPECT_EQ(location_trees(*parse_mail_location("mdbox:~/mdbox:ALT=/alt-%d/%n"), abs)->at(1).base, "/");
  EXPECT_EQ(location_trees(*parse_mail_location("mdbox:~/mdbox:ALT=%h-alt"), abs)->at(1).base, "");
  // Confined to the mail root like the other trees.
  EXPECT_EQ(*tree_in_root((*trees)[1].path, "/srv/mail1"), "alt/example.org/alice");
  EXPECT_EQ(tree_in_root((*trees)[1].path, "/srv/mail2").error().message(),
            "'/srv/mail1/alt/example.org/alice' is not inside the mail root '/srv/mail2'");
  // Inside the home: copied with it.
  auto inside = location_trees(*parse_mail_location("mdbox:~/mdbox:ALT=~/alt"), abs);
  ASSERT_TRUE(inside.ok());
  EXPECT_EQ(inside->size(), 1u);
  // A ".." in an alt path is refused when parsed.
  EXPECT_EQ(parse_mail_location("sdbox:~/sdbox:ALT=%h/../%n").error().message(),
            "'sdbox:~/sdbox:ALT=%h/../%n': ALT: '/home/user/../user' has a '..' in it");
  // An alt tree inside another tree is refused for the user.
  auto loc2 = parse_mail_location("sdbox:~/sdbox:INDEX=/srv/mail1/index/%u:ALT=/srv/mail1/index/%u/alt");
  ASSERT_TRUE(loc2.ok()) << loc2.error().message();
  auto holds = location_trees(*loc2, abs);
  ASSERT_FALSE(holds.ok());
  EXPECT_EQ(holds.error().message(), "user alice@example.org: ALT: '/srv/mail1/index/alice@example.org/alt' and the "
                                     "index tree '/srv/mail1/index/alice@example.org' overlap");
  // With INDEX= too: three trees, in the options' order.
  auto three = location_trees(*parse_mail_location("mdbox:~/mdbox:INDEX=/srv/mail1/index/%u:ALT=/srv/mail1/alt/%u"),
                              abs);
  ASSERT_TRUE(three.ok()) << three.error().message();
  ASSERT_EQ(three->size(), 3u);
  EXPECT_EQ((*three)[1].name, "index");
  EXPECT_EQ((*three)[2].name, "alt");
}

TEST(MailLocation, OptionsAreKeptAsWritten) {
  auto l = parse_mail_location("maildir:~/Maildir:INDEX=/var/index/%d/%n:CONTROL=/var/control/%{domain}/%{username}"
                               ":LAYOUT=fs:UTF-8:VOLATILEDIR=/tmp/volatile/%u");
  ASSERT_TRUE(l.ok()) << l.error().message();
  ASSERT_EQ(l->options.size(), 5u);
  EXPECT_EQ(*l->option("INDEX"), "/var/index/%d/%n");
  EXPECT_EQ(*l->option("CONTROL"), "/var/control/%{domain}/%{username}");
  EXPECT_EQ(*l->option("UTF-8"), "");
  EXPECT_EQ(l->option("ALT"), nullptr);
  EXPECT_EQ(l->naming_options(), "LAYOUT=fs:UTF-8");
  // "::" is a literal ':'.
  auto colon = parse_mail_location("maildir:~/Maildir:INDEX=/var/in::dex/%u");
  ASSERT_TRUE(colon.ok()) << colon.error().message();
  EXPECT_EQ(*colon->option("INDEX"), "/var/in:dex/%u");
  EXPECT_TRUE(parse_mail_location("maildir:~/Maildir:INDEX=MEMORY").ok());
}

// mbox, with its INBOX a file in the mail path: the home is the one tree.
TEST(MailLocation, MboxWithItsInboxInTheMailPath) {
  auto l = parse_mail_location("mbox:~/mail:INBOX=~/mail/inbox");
  ASSERT_TRUE(l.ok()) << l.error().message();
  EXPECT_EQ(l->format, MailFormat::kMbox);
  EXPECT_EQ(l->maildir, "mail");
  EXPECT_EQ(*l->option("INBOX"), "~/mail/inbox");
  EXPECT_EQ(mail_format_name(l->format), "Dovecot mbox");
  EXPECT_TRUE(moved_through_doveadm(l->format));
  EXPECT_FALSE(moved_through_doveadm(MailFormat::kDovecot));
  auto trees = location_trees(*l, {"alice@example.org", "/srv/mail/alice"});
  ASSERT_TRUE(trees.ok()) << trees.error().message();
  ASSERT_EQ(trees->size(), 1u) << "the INBOX is in the home: no tree of its own";
  EXPECT_EQ(trees->front().kind, TreeKind::kHome);
  EXPECT_TRUE(parse_mail_location("mbox:~/mail").ok());
}

// mbox with its INBOX in the system spool: the spool file is a tree of its
// own, of one file; its directory (every user's spools) is not.
TEST(MailLocation, AnMboxSpoolInboxIsATreeOfOneFile) {
  auto l = parse_mail_location("mbox:~/mail:INBOX=/var/mail/%u");
  ASSERT_TRUE(l.ok()) << l.error().message();
  EXPECT_EQ(l->naming_options(), "") << "where the spool is is a tree, not a name inside one";
  EXPECT_EQ(parse_mail_location("mbox:~/mail:INBOX=~/mail/inbox")->naming_options(), "INBOX=~/mail/inbox");
  auto trees = location_trees(*l, {"alice@example.org", "example.org/alice"});
  ASSERT_TRUE(trees.ok()) << trees.error().message();
  ASSERT_EQ(trees->size(), 2u);
  const MailTree& t = (*trees)[1];
  EXPECT_EQ(t.kind, TreeKind::kInbox);
  EXPECT_EQ(t.name, "inbox");
  EXPECT_EQ(t.path, "/var/mail/alice@example.org");
  EXPECT_EQ(t.base, "/var/mail") << "the spool directory must be there on the destination";
  EXPECT_TRUE(t.file);
  EXPECT_FALSE(trees->front().file);
  // A spool inside the home is a file of the home.
  auto home_spool = parse_mail_location("mbox:~/mail:INBOX=/home/%n/inbox");
  ASSERT_TRUE(home_spool.ok()) << home_spool.error().message();
  EXPECT_EQ(location_trees(*home_spool, {"alice@example.org", "/home/alice"})->size(), 1u);
  // Never merged with a directory tree, even at the same path.
  auto same = parse_mail_location("mbox:~/mail:INDEX=/var/mail/%u:INBOX=/var/mail/%u");
  ASSERT_TRUE(same.ok());
  auto clash = location_trees(*same, {"alice@example.org", "/home/alice"});
  ASSERT_FALSE(clash.ok());
  EXPECT_THAT(clash.error().message(), HasSubstr("overlap"));
}

TEST(MailLocation, WhatIsNotSupportedIsRefusedNotIgnored) {
  EXPECT_EQ(parse_mail_location("mbox:~/mail:INBOX=~/inbox").error().message(),
            "'mbox:~/mail:INBOX=~/inbox': INBOX: an INBOX in the home must be in the mail path (write "
            "INBOX=~/mail/inbox) or a spool file outside the home (INBOX=/var/mail/%u)");
  EXPECT_THAT(parse_mail_location("mbox:~/mail:INBOX=~/mail/").error().message(),
              HasSubstr("INBOX: an INBOX in the home must be in the mail path"));
  EXPECT_THAT(parse_mail_location("mbox:~/mail:INBOX=~/mail/../inbox").error().message(),
              HasSubstr("INBOX: must be a plain path inside the mail path"));
  EXPECT_THAT(parse_mail_location("mbox:~:INBOX=~/inbox").error().message(),
              HasSubstr("INBOX: an INBOX in the home must be in the mail path"));
  EXPECT_EQ(parse_mail_location("mbox:~/mail:INBOX=/var/mail/spool").error().message(),
            "'mbox:~/mail:INBOX=/var/mail/spool': INBOX: a spool file outside the home must name the user's own "
            "file (e.g. /var/mail/%u)");
  EXPECT_THAT(parse_mail_location("mbox:~/mail:INBOX=/var/mail/%u/").error().message(),
              HasSubstr("must name the user's own file"));
  EXPECT_THAT(parse_mail_location("mbox:~/mail:INBOX=/var/mail/%z").error().message(),
              HasSubstr("INBOX: unknown variable %z"));
  EXPECT_THAT(parse_mail_location("mbox:~/mail:INBOX=%h/inbox").error().message(),
              HasSubstr("INBOX: an INBOX in the home must be in the mail path"));
  EXPECT_EQ(parse_mail_location("dbox:~/dbox").error().message(),
            "'dbox:~/dbox': the format dbox is not supported (maildir, courier, sdbox, mdbox and mbox are)");
  EXPECT_THAT(parse_mail_location("maildir:/var/mail/%u").error().message(), HasSubstr("inside the home"));
  EXPECT_THAT(parse_mail_location("maildir:~/../x").error().message(), HasSubstr("plain path"));
  EXPECT_THAT(parse_mail_location("maildir:~/%n").error().message(), HasSubstr("variables"));
  EXPECT_THAT(parse_mail_location("imap:~/x").error().message(), HasSubstr("unknown format 'imap'"));
  EXPECT_THAT(parse_mail_location("Maildir").error().message(), HasSubstr("FORMAT:~/PATH"));
  EXPECT_EQ(parse_mail_location("maildir:~/Maildir:INDEX=/var/index/%z").error().message(),
            "'maildir:~/Maildir:INDEX=/var/index/%z': INDEX: unknown variable %z");
  EXPECT_EQ(parse_mail_location("maildir:~/Maildir:CONTROL=/var/c/%{uid}").error().message(),
            "'maildir:~/Maildir:CONTROL=/var/c/%{uid}': CONTROL: unknown variable %{uid}");
  EXPECT_THAT(parse_mail_location("maildir:~/Maildir:FOO=1").error().message(),
              HasSubstr("'maildir:~/Maildir:FOO=1': unknown option FOO (known: INDEX, CONTROL"));
  EXPECT_EQ(parse_mail_location("maildir:~/Maildir:ALT=/srv/sata/%u").error().message(),
            "'maildir:~/Maildir:ALT=/srv/sata/%u': ALT: ALT= is for sdbox and mdbox only");
  EXPECT_EQ(parse_mail_location("courier:~/Maildir:ALT=/srv/sata/%u").error().message(),
            "'courier:~/Maildir:ALT=/srv/sata/%u': Courier-IMAP takes no options after the path (ALT=/srv/sata/%u)");
  EXPECT_THAT(parse_mail_location("maildir:~/Maildir:INBOX=/var/mail/%u").error().message(),
              HasSubstr("INBOX: INBOX= is for mbox only"));
  EXPECT_THAT(parse_mail_location("maildir:~/Maildir:INDEXPVT=~/pvt").error().message(), HasSubstr("shared"));
  EXPECT_THAT(parse_mail_location("maildir:~/Maildir:INDEX=/var/index").error().message(),
              HasSubstr("INDEX: names no user"));
  EXPECT_THAT(parse_mail_location("maildir:~/Maildir:INDEX=/var/index/%d").error().message(),
              HasSubstr("INDEX: names no user"));
  EXPECT_THAT(parse_mail_location("maildir:~/Maildir:INDEX=").error().message(), HasSubstr("needs a value"));
  EXPECT_THAT(parse_mail_location("maildir:~/Maildir:UTF-8=yes").error().message(), HasSubstr("takes no value"));
  EXPECT_THAT(parse_mail_location("maildir:~/Maildir:INDEX=/a/%u:INDEX=/b/%u").error().message(),
              HasSubstr("given twice"));
  EXPECT_THAT(parse_mail_location("maildir:~/Maildir:LISTINDEX=/var/list/%u").error().message(),
              HasSubstr("must be a name"));
  EXPECT_THAT(parse_mail_location("maildir:~/Maildir:INDEX=/var/%").error().message(), HasSubstr("at the end"));
  EXPECT_THAT(parse_mail_location("courier:~/Maildir:INDEX=/var/index/%u").error().message(),
              HasSubstr("Courier-IMAP takes no options"));
}

TEST(MailLocation, VariablesExpandForAUser) {
  EXPECT_EQ(expand("~/Maildir"), "example.org/alice/Maildir");
  EXPECT_EQ(expand("~"), "example.org/alice");
  EXPECT_EQ(expand("/var/index/%d/%n"), "/var/index/example.org/alice");
  EXPECT_EQ(expand("/var/index/%{domain}/%{username}/"), "/var/index/example.org/alice");
  EXPECT_EQ(expand("/var/mail/%u"), "/var/mail/alice@example.org");
  EXPECT_EQ(expand("/var/mail/%{user}"), "/var/mail/alice@example.org");
  EXPECT_EQ(expand("%h/idx"), "example.org/alice/idx");
  EXPECT_EQ(expand("%{home}//idx"), "example.org/alice/idx");
  EXPECT_EQ(expand("/v/100%%/%n"), "/v/100%/alice");
  EXPECT_EQ(expand("/v/%Ld/%Ln", {"Alice@Example.ORG", "/home/Alice"}), "/v/example.org/alice");
  EXPECT_EQ(expand("/v/%d/%n", {"bob", "/home/bob"}), "/v/bob");  // no domain: %d is empty
  EXPECT_EQ(expand("/home/%u/~x", {"bob", "/home/bob"}), "/home/bob/~x");  // ~ only at the start
  EXPECT_EQ(expand("/var/%z"), "error: unknown variable %z");
  EXPECT_EQ(expand("/var/%{nope}/x"), "error: unknown variable %{nope}");
  EXPECT_EQ(expand("/var/%{user"), "error: unclosed variable %{user");
  EXPECT_EQ(expand("/var/%n", {"../../etc@x", "h"}), "error: the user name '../../etc' has a '/'");
  EXPECT_EQ(expand("/var/%n", {"..@x", "h"}), "error: '/var/..' has a '..' in it");
  EXPECT_EQ(expand("~/x", {"bob", ""}), "error: '~' but the user has no home");
}

TEST(MailLocation, TreesOfAUser) {
  auto l = parse_mail_location("maildir:~/Maildir:INDEX=/srv/mail/index/%d/%n:CONTROL=/srv/mail/control/%d/%n");
  ASSERT_TRUE(l.ok()) << l.error().message();
  auto trees = location_trees(*l, kAlice);
  ASSERT_TRUE(trees.ok()) << trees.error().message();
  ASSERT_EQ(trees->size(), 3u);
  EXPECT_EQ((*trees)[0].name, "home");
  EXPECT_EQ((*trees)[0].path, "example.org/alice");
  EXPECT_EQ((*trees)[1].kind, TreeKind::kIndex);
  EXPECT_EQ((*trees)[1].path, "/srv/mail/index/example.org/alice");
  EXPECT_EQ((*trees)[2].name, "control");
  EXPECT_EQ((*trees)[2].path, "/srv/mail/control/example.org/alice");

  // Inside the home: copied with it. INDEX=MEMORY: nothing on disk.
  auto inside = location_trees(*parse_mail_location("maildir:~/Maildir:INDEX=~/index:CONTROL=%h/Maildir"), kAlice);
  ASSERT_TRUE(inside.ok()) << inside.error().message();
  EXPECT_EQ(inside->size(), 1u);
  EXPECT_EQ(location_trees(*parse_mail_location("maildir:~/Maildir:INDEX=MEMORY"), kAlice)->size(), 1u);

  // One directory for both: one tree.
  auto same = location_trees(*parse_mail_location("maildir:~/Maildir:INDEX=/x/%u:CONTROL=/x/%u"), kAlice);
  ASSERT_TRUE(same.ok());
  ASSERT_EQ(same->size(), 2u);
  EXPECT_EQ((*same)[1].name, "index+control");

  // A tree holding the home, or one inside another: refused.
  EXPECT_THAT(location_trees(*parse_mail_location("maildir:~/Maildir:INDEX=/x/%u:CONTROL=/x/%u/c"), kAlice)
                  .error()
                  .message(),
              HasSubstr("user alice@example.org: CONTROL: '/x/alice@example.org/c' and the index tree"));
  auto holds = location_trees(*parse_mail_location("maildir:~/Maildir:INDEX=/srv/%n"),
                              {"alice@example.org", "/srv/alice/home"});
  EXPECT_EQ(holds.error().message(),
            "user alice@example.org: INDEX: '/srv/alice' and the home tree '/srv/alice/home' overlap");
  EXPECT_THAT(parse_mail_location("maildir:~/Maildir:INDEX=%h/..").error().message(), HasSubstr("'..'"));
}

TEST(MailLocation, TreesStayInTheirRoot) {
  EXPECT_EQ(*tree_in_root("/srv/mail/index/a", "/srv/mail"), "index/a");
  EXPECT_EQ(*tree_in_root("/srv/mail/index/a", "/srv/mail/"), "index/a");
  EXPECT_EQ(*tree_in_root("example.org/alice", "/srv/mail"), "example.org/alice");
  EXPECT_EQ(tree_in_root("/var/index/a", "/srv/mail").error().message(),
            "'/var/index/a' is not inside the mail root '/srv/mail'");
  EXPECT_FALSE(tree_in_root("/srv/mail", "/srv/mail").ok());
  EXPECT_FALSE(tree_in_root("/srv/mailx/a", "/srv/mail").ok());
}

}  // namespace
}  // namespace mailshard

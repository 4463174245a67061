// Never a silent format change: mail_location parsing, what a home's files
// say, and which moves are refused.
#include "movers/mail_format.h"

#include <filesystem>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "transport/transport_factory.h"

namespace mailshard {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// Parsing and expansion: tests/unit/core/mail_location_test.cc.

ServerConfig server(const std::string& name, const std::string& location, const std::string& doveadm = "") {
  ServerConfig s;
  s.name = name;
  s.mail_location = location;
  s.doveadm_url = doveadm;
  return s;
}

class DetectTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) / ("mail_format_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_ / "home" / "Maildir" / "cur");
    auto t = make_local_transport(root_.string(), 1);
    ASSERT_TRUE(t.ok()) << t.error().message();
    t_ = std::move(*t);
  }
  void TearDown() override { fs::remove_all(root_); }
  void touch(const std::string& rel) { std::ofstream(root_ / "home" / rel) << "x\n"; }
  MailFormat detect(const MailLocation& loc = {}) {
    auto f = detect_home_format(*t_, "home", loc);
    EXPECT_TRUE(f.ok()) << f.error().message();
    return f.ok() ? *f : MailFormat::kUnknown;
  }
  fs::path root_;
  std::unique_ptr<Transport> t_;
};

TEST_F(DetectTest, TheMetadataFilesSayWhoseMaildirItIs) {
  EXPECT_EQ(detect(), MailFormat::kUnknown) << "a new mailbox says nothing";
  touch("Maildir/courierimapuiddb");
  EXPECT_EQ(detect(), MailFormat::kCourier);
  touch("Maildir/dovecot-uidlist");
  EXPECT_EQ(detect(), MailFormat::kUnknown) << "both: nothing to conclude";
  fs::remove(root_ / "home" / "Maildir" / "courierimapuiddb");
  EXPECT_EQ(detect(), MailFormat::kDovecot);
  // The UID list outranks the other files: Courier's UIDs with Dovecot's subscriptions file is Courier.
  fs::remove(root_ / "home" / "Maildir" / "dovecot-uidlist");
  touch("Maildir/subscriptions");
  EXPECT_EQ(detect(), MailFormat::kDovecot) << "no UID list: the subscriptions file says Dovecot";
  touch("Maildir/courierimapuiddb");
  EXPECT_EQ(detect(), MailFormat::kCourier);
}

TEST_F(DetectTest, DboxDirectoriesSayWhichDbox) {
  MailLocation dbox = *parse_mail_location("mdbox:~/mdbox");
  EXPECT_EQ(detect(dbox), MailFormat::kUnknown) << "nothing there yet";
  fs::create_directories(root_ / "home" / "mdbox" / "mailboxes" / "INBOX" / "dbox-Mails");
  EXPECT_EQ(detect(dbox), MailFormat::kSdbox) << "mailboxes/ without storage/";
  fs::create_directories(root_ / "home" / "mdbox" / "storage");
  EXPECT_EQ(detect(dbox), MailFormat::kMdbox);
  // An sdbox server's declaration does not hide mdbox files: the refusal sees them.
  auto sdbox_server = server("s", "sdbox:~/mdbox");
  EXPECT_EQ(detect(*parse_mail_location("sdbox:~/mdbox")), MailFormat::kMdbox);
  EXPECT_TRUE(format_change_refusal("u", MailFormat::kMdbox, sdbox_server, server("s2", "sdbox:~/mdbox")));
}

TEST_F(DetectTest, AHomeThatIsItselfTheMaildirAndAConfiguredPath) {
  touch("courierimapuiddb");
  EXPECT_EQ(detect(), MailFormat::kCourier);
  MailLocation mail;
  mail.maildir = "mail";
  fs::create_directories(root_ / "home" / "mail");
  touch("mail/dovecot-uidlist");
  EXPECT_EQ(detect(mail), MailFormat::kDovecot);
}


TEST(FormatChange, CourierToDovecotConvertsDovecotToCourierIsRefused) {
  auto courier = server("old1", "courier:~/Maildir");
  auto dovecot = server("new1", "", "http://new1:8080/doveadm/v1");
  // Courier -> Dovecot converts on the way: no refusal.
  EXPECT_FALSE(format_change_refusal("alice", MailFormat::kCourier, courier, dovecot));
  EXPECT_TRUE(converts_courier_to_dovecot(MailFormat::kCourier, courier, dovecot));
  // The files win over what the source server declares.
  EXPECT_TRUE(converts_courier_to_dovecot(MailFormat::kCourier, server("old2", ""), dovecot));
  EXPECT_FALSE(converts_courier_to_dovecot(MailFormat::kDovecot, courier, dovecot));
  // Nothing in the files: the declaration decides.
  EXPECT_TRUE(converts_courier_to_dovecot(MailFormat::kUnknown, courier, dovecot));
  // A destination that says nothing about its format: no conversion.
  EXPECT_FALSE(converts_courier_to_dovecot(MailFormat::kCourier, courier, server("c", "")));
  // The other way round is refused, in one line.
  auto why = format_change_refusal("bob", MailFormat::kDovecot, dovecot, courier);
  ASSERT_TRUE(why);
  EXPECT_EQ(*why, "user bob: its mail on new1 is Dovecot Maildir (its files) but old1 reads Courier-IMAP Maildir++: "
                  "moved unconverted, Courier would give its folders new UIDVALIDITYs and lose Dovecot's keywords, and "
                  "every client would download everything again; mailshard converts only Courier to Dovecot (set the "
                  "servers' mail_location if this is wrong)");
  EXPECT_FALSE(converts_courier_to_dovecot(MailFormat::kDovecot, dovecot, courier));
}

TEST(FormatChange, SameFormatOrUnknownIsNoRefusal) {
  auto a = server("a", "maildir:~/Maildir"), b = server("b", "", "http://b/doveadm/v1"), c = server("c", "");
  EXPECT_FALSE(format_change_refusal("u", MailFormat::kDovecot, a, b));
  EXPECT_FALSE(format_change_refusal("u", MailFormat::kCourier, a, c)) << "c says nothing about its format";
  EXPECT_FALSE(format_change_refusal("u", MailFormat::kUnknown, c, b));
  EXPECT_FALSE(format_change_refusal("u", MailFormat::kCourier, server("x", "courier:~/Maildir"), server("y", "courier:~")));
}

TEST_F(DetectTest, DovecotsMboxIndexDirectorySaysMbox) {
  MailLocation mbox = *parse_mail_location("mbox:~/mail:INBOX=~/mail/inbox");
  EXPECT_EQ(detect(mbox), MailFormat::kUnknown) << "nothing there yet";
  fs::create_directories(root_ / "home" / "mail");
  touch("mail/inbox");
  EXPECT_EQ(detect(mbox), MailFormat::kUnknown) << "a file called inbox alone says nothing";
  fs::create_directories(root_ / "home" / "mail" / ".imap" / "INBOX");
  EXPECT_EQ(detect(mbox), MailFormat::kMbox);
}

TEST(FormatChange, MboxNeverTurnsIntoAnotherFormat) {
  auto mbox = server("b", "mbox:~/mail:INBOX=~/mail/inbox"), mbox2 = server("b2", "mbox:~/mail:INBOX=~/mail/inbox");
  auto maildir = server("d", "maildir:~/Maildir"), mdbox = server("m", "mdbox:~/mdbox");
  EXPECT_FALSE(format_change_refusal("u", MailFormat::kMbox, mbox, mbox2));
  auto why = format_change_refusal("carol", MailFormat::kMbox, mbox, maildir);
  ASSERT_TRUE(why);
  EXPECT_EQ(*why, "user carol: its mail on b is Dovecot mbox (its files) but d reads Dovecot Maildir: mailshard "
                  "copies files and never converts between Maildir, sdbox, mdbox and mbox (give both servers' "
                  "mail_location the same format, or move the user with dsync)");
  EXPECT_TRUE(format_change_refusal("u", MailFormat::kUnknown, maildir, mbox));
  EXPECT_TRUE(format_change_refusal("u", MailFormat::kUnknown, mbox, mdbox));
  EXPECT_TRUE(format_change_refusal("u", MailFormat::kCourier, server("c", "courier:~/Maildir"), mbox));
  // The INBOX file's name must agree: the copy's mail/inbox would be another folder under mail/INBOX.
  EXPECT_FALSE(location_options_refusal("u", false, mbox, mbox2));
  auto named = location_options_refusal("u", false, mbox, server("b3", "mbox:~/mail:INBOX=~/mail/INBOX"));
  ASSERT_TRUE(named);
  EXPECT_THAT(*named, HasSubstr("'INBOX=~/mail/inbox' but b3's with 'INBOX=~/mail/INBOX'"));
}

TEST(FormatChange, MaildirSdboxAndMdboxNeverTurnIntoEachOther) {
  auto mdbox = server("m", "mdbox:~/mdbox:ALT=/srv/m/alt/%u"), mdbox2 = server("m2", "mdbox:~/mdbox");
  auto sdbox = server("s", "sdbox:~/sdbox"), maildir = server("d", "maildir:~/Maildir");
  auto doveadm_only = server("x", "", "http://x/doveadm/v1");  // counts as Maildir
  EXPECT_FALSE(format_change_refusal("u", MailFormat::kUnknown, mdbox, mdbox2)) << "mdbox to mdbox";
  EXPECT_FALSE(format_change_refusal("u", MailFormat::kUnknown, sdbox, server("s2", "sdbox:~/sdbox")));
  auto why = format_change_refusal("alice@example.org", MailFormat::kUnknown, mdbox, sdbox);
  ASSERT_TRUE(why);
  EXPECT_EQ(*why, "user alice@example.org: its mail on m is Dovecot mdbox (mail_location) but s reads Dovecot sdbox: "
                  "mailshard copies files and never converts between Maildir, sdbox, mdbox and mbox (give both servers' "
                  "mail_location the same format, or move the user with dsync)");
  EXPECT_TRUE(format_change_refusal("u", MailFormat::kUnknown, sdbox, mdbox));
  EXPECT_TRUE(format_change_refusal("u", MailFormat::kUnknown, mdbox, maildir));
  EXPECT_TRUE(format_change_refusal("u", MailFormat::kUnknown, mdbox, doveadm_only));
  // A Maildir (by its files, or by the source's declaration) into a dbox server.
  why = format_change_refusal("bob", MailFormat::kDovecot, maildir, mdbox);
  ASSERT_TRUE(why);
  EXPECT_EQ(*why, "user bob: its mail on d is Dovecot Maildir (its files) but m reads Dovecot mdbox: mailshard copies "
                  "files and never converts between Maildir, sdbox, mdbox and mbox (give both servers' mail_location the "
                  "same format, or move the user with dsync)");
  EXPECT_TRUE(format_change_refusal("u", MailFormat::kUnknown, doveadm_only, sdbox));
  EXPECT_TRUE(format_change_refusal("u", MailFormat::kCourier, server("c", "courier:~/Maildir"), mdbox))
      << "no Courier -> dbox conversion";
  EXPECT_FALSE(converts_courier_to_dovecot(MailFormat::kCourier, server("c", "courier:~/Maildir"), mdbox));
}

TEST(FormatChange, NamingOptionsMustAgree) {
  auto plain = server("a", "maildir:~/Maildir"), fs = server("b", "maildir:~/Maildir:LAYOUT=fs:UTF-8");
  EXPECT_FALSE(location_options_refusal("u", false, plain, server("c", "maildir:~/Maildir:VOLATILEDIR=/tmp/%u")));
  EXPECT_FALSE(location_options_refusal("u", false, fs, server("d", "maildir:~/Maildir:UTF-8:LAYOUT=fs")));
  auto why = location_options_refusal("u", false, plain, fs);
  ASSERT_TRUE(why);
  EXPECT_EQ(*why, "user u: a's mail_location names folders with '' but b's with 'LAYOUT=fs:UTF-8': the copy would "
                  "read as other folders there (make the options equal)");
  // A conversion writes the destination's own names: LAYOUT=Maildir++ or fs,
  // UTF-8; nothing else.
  const auto courier = server("e", "courier:~/Maildir");
  EXPECT_FALSE(location_options_refusal("u", true, courier, fs));
  EXPECT_FALSE(location_options_refusal("u", true, courier, server("f", "maildir:~/Maildir:LAYOUT=Maildir++")));
  EXPECT_FALSE(location_options_refusal("u", true, courier, server("g", "maildir:~/Maildir:INDEX=/i/%u")))
      << "INDEX= is a tree, not a name";
  why = location_options_refusal("u", true, courier, server("h", "maildir:~/Maildir:LAYOUT=fs:DIRNAME=mbox"));
  ASSERT_TRUE(why);
  EXPECT_EQ(*why, "user u: h's mail_location has DIRNAME=mbox:LAYOUT=fs: the conversion names folders by "
                  "LAYOUT=Maildir++ or LAYOUT=fs and UTF-8 only, not by DIRNAME=mbox");
}

TEST(FormatChange, ConversionLayoutReadsLayoutAndUtf8) {
  auto layout = [](const std::string& loc) { return conversion_layout(*parse_mail_location(loc)); };
  EXPECT_EQ(*layout("maildir:~/Maildir"), (DovecotLayout{false, false}));
  EXPECT_EQ(*layout("maildir:~/Maildir:LAYOUT=maildir++"), (DovecotLayout{false, false}));
  EXPECT_EQ(*layout("maildir:~/Maildir:LAYOUT=FS"), (DovecotLayout{true, false}));
  EXPECT_EQ(*layout("maildir:~/Maildir:UTF-8:LAYOUT=fs"), (DovecotLayout{true, true}));
  EXPECT_EQ(*layout("maildir:~/Maildir:UTF-8"), (DovecotLayout{false, true}));
  auto index = layout("maildir:~/Maildir:LAYOUT=index");
  ASSERT_FALSE(index.ok());
  EXPECT_EQ(index.error().code(), ErrorCode::kUnsupported);
  EXPECT_FALSE(layout("maildir:~/Maildir:BROKENCHAR=_").ok());
}

}  // namespace
}  // namespace mailshard

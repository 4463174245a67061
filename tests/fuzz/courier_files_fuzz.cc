// libFuzzer target for the Courier-IMAP -> Dovecot conversion
// (movers/courier_to_dovecot.h): courierimapuiddb, courierimapkeywords/
// (:list and update files), courierpop3dsizelist, courierimapsubscribed and
// the message names of two folders, all from the input. Nothing may crash or
// invoke undefined behaviour; a bad file must come back as an error. And the
// property the move's verification relies on: what the conversion writes,
// read back the way Dovecot's files are read, shows exactly what Courier's
// files showed (else abort, so the fuzzer reports it).
//
// Input: sections separated by lines "--": the INBOX's uiddb, its :list, one
// keyword update file (first line: its name), the sizelist, the INBOX's cur/
// names (one per line; "new/" prefix: new/), the subscriptions, then the
// same uiddb/:list/names for a folder ".Sub" (or "." + the tenth section,
// its folder name). A missing section is absent.
//
// Under each destination layout (Maildir++ or LAYOUT=fs, mUTF-7 or UTF-8):
// what converts under LAYOUT=fs converts under Maildir++ to the same files,
// its folder directories differ only in '/' for '.', and the subscriptions
// file reads back as Courier's names.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "movers/courier_to_dovecot.h"

using namespace mailshard;

namespace {

std::vector<std::string> lines_of(std::string_view s) {
  std::vector<std::string> out;
  for (size_t pos = 0; pos < s.size();) {
    size_t end = s.find('\n', pos);
    if (end == std::string_view::npos) end = s.size();
    if (end > pos) out.emplace_back(s.substr(pos, end - pos));
    pos = end + 1;
  }
  return out;
}

void names_into(std::string_view section, CourierFolder& f) {
  for (auto& n : lines_of(section)) {
    if (n.rfind("new/", 0) == 0)
      f.new_.push_back(n.substr(4));
    else
      f.cur.push_back(n);
  }
}

// The folder's cur/ and new/ after the conversion's renames.
void after_renames(const CourierFolder& f, const DovecotFolder& d, std::vector<std::string>& cur,
                   std::vector<std::string>& new_) {
  auto apply = [&](const std::string& sub, const std::vector<std::string>& names) {
    for (const auto& n : names) {
      std::string path = sub + "/" + n;
      for (const auto& [from, to] : d.renames)
        if (from == path) path = to;
      (path.rfind("new/", 0) == 0 ? new_ : cur).push_back(path.substr(4));
    }
  };
  apply("cur", f.cur);
  apply("new", f.new_);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::vector<std::optional<std::string>> sec;
  for (size_t pos = 0; pos <= text.size() && sec.size() < 10;) {
    size_t end = text.find("\n--\n", pos);
    if (end == std::string_view::npos) end = text.size();
    sec.emplace_back(std::string(text.substr(pos, end - pos)) + (end < text.size() ? "\n" : ""));
    pos = end + 4;
  }
  sec.resize(10);

  CourierMailbox m;
  m.maildir = "Maildir";
  CourierFolder inbox;
  inbox.uiddb = sec[0];
  if (sec[1]) inbox.keyword_files[":list"] = *sec[1];
  if (sec[2]) {
    auto nl = sec[2]->find('\n');
    if (nl != std::string::npos && nl > 0) inbox.keyword_files[sec[2]->substr(0, nl)] = sec[2]->substr(nl + 1);
  }
  m.pop3_sizelist = sec[3];
  if (sec[4]) names_into(*sec[4], inbox);
  m.subscribed = sec[5];
  m.folders.push_back(inbox);
  if (sec[6] || sec[7] || sec[8]) {
    CourierFolder sub;
    sub.dir = ".Sub";
    if (sec[9] && !sec[9]->empty() && sec[9]->find('/') == std::string::npos) sub.dir = "." + *sec[9];
    sub.uiddb = sec[6];
    if (sec[7]) sub.keyword_files[":list"] = *sec[7];
    if (sec[8]) names_into(*sec[8], sub);
    m.folders.push_back(sub);
  }

  auto conv = convert_courier_to_dovecot("fuzz", m);
  for (const DovecotLayout layout : {DovecotLayout{true, false}, DovecotLayout{false, true}, DovecotLayout{true, true}}) {
    auto other = convert_courier_to_dovecot("fuzz", m, layout);
    if (!other.ok()) continue;
    if (!conv.ok() && !layout.utf8) {
      fprintf(stderr, "converts under LAYOUT=fs only: %s\n", conv.error().message().c_str());
      abort();
    }
    if (!conv.ok()) continue;
    for (size_t i = 0; i < other->folders.size(); ++i) {
      const DovecotFolder &a = conv->folders[i], &b = other->folders[i];
      if (a.uidlist != b.uidlist || a.keywords != b.keywords || a.renames != b.renames || a.view != b.view) abort();
      if (layout.fs && !layout.utf8) {
        std::string flat = b.dst_dir.empty() ? "" : "." + b.dst_dir;
        for (char& ch : flat)
          if (ch == '/') ch = '.';
        if (flat != a.dst_dir) {
          fprintf(stderr, "LAYOUT=fs names %s, Maildir++ %s\n", b.dst_dir.c_str(), a.dst_dir.c_str());
          abort();
        }
      }
    }
    if (other->subscriptions) {
      auto names = dovecot_subscription_names(*other->subscriptions, layout);
      if (!names.ok() || *names != courier_subscription_names(*m.subscribed)) {
        fprintf(stderr, "subscriptions read back differently under fs=%d utf8=%d\n", layout.fs, layout.utf8);
        abort();
      }
    }
  }
  if (!conv.ok()) return 0;
  for (size_t i = 0; i < conv->folders.size(); ++i) {
    const DovecotFolder& d = conv->folders[i];
    const CourierFolder* f = nullptr;
    for (const auto& c : m.folders)
      if (c.dir == d.src_dir) f = &c;
    if (f == nullptr) abort();
    std::vector<std::string> cur, new_;
    after_renames(*f, d, cur, new_);
    auto seen = dovecot_folder_view("fuzz", d.dst_dir, d.uidlist, d.keywords, cur, new_);
    if (!seen.ok()) {  // the conversion wrote what its own reader refuses
      fprintf(stderr, "read back: %s\n", seen.error().message().c_str());
      abort();
    }
    if (auto diff = compare_folder_views(d.view, *seen); !diff.empty()) {
      fprintf(stderr, "read back differs: %s\n", diff.front().c_str());
      abort();
    }
  }
  return 0;
}

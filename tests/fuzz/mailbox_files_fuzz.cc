// libFuzzer target for what mailshard reads out of mail storage files and
// names: the Maildir++ "maildirsize" quota file (inventory's sizer), the
// ",S=<size>" of a Maildir message name, and the name rules of the sync
// engine (message base names, which files are uidlists, dovecot-keywords,
// courierimapuiddb, indexes, ...). Nothing may crash or invoke undefined
// behaviour; a bad file must come back as an error.
//
// The uidlist header reader (uidlist_key in movers/verifier.cc) is private to
// the verifier and not reached here.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "inventory/mailbox_sizers.h"
#include "inventory/maildir_scanner.h"
#include "movers/maildir_rules.h"

using namespace mailshard;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)parse_maildirsize(text);

  // Every line as a file name, in a Maildir cur/ and in a plain directory.
  DirInfo cur = classify_dir("cur", true);
  DirInfo plain = classify_dir("Maildir", false);
  for (size_t pos = 0; pos <= text.size();) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view name = text.substr(pos, end - pos);
    pos = end + 1;
    (void)maildir_name_size(name);
    (void)message_base(name);
    (void)is_uid_list(name);
    (void)is_skipped_name(name);
    (void)classify_file(cur, name);
    (void)classify_file(plain, name);
    (void)classify_dir(name, true);
  }
  // The size-driven rules, with sizes taken from the input: never negative, as
  // stat and the codec (core/codec.cc refuses a negative size) give them.
  if (size >= 8) {
    uint64_t u = 0;
    for (int i = 0; i < 8; ++i) u = u << 8 | data[i];
    int64_t n = static_cast<int64_t>(u & INT64_MAX);
    (void)signature_block_len(text.substr(8), n);
    (void)diff_block_size(n);
  }
  return 0;
}

// A small deterministic Maildir++ home generator and "day of activity"
// mutator for tests (no dependency on /work/shared), and a strict tree
// comparison: names, types, sizes, content, mode, owner, mtime (ns),
// hard-link structure and symlink targets.
//
// The generated home has what the sync engine must get right: folders with
// cur/new/tmp, a v3 dovecot-uidlist, dovecot-keywords, dovecot.index (rewritten
// by rename), dovecot.index.log (appended), dovecot.index.cache (appended and
// its header rewritten in place, > 64 KiB), maildirsize, subscriptions,
// dovecot-uidvalidity files, a sieve script with the .dovecot.sieve symlink,
// Courier keyword files, and Dovecot-COPY hard links between folders.
//
// Errors throw std::runtime_error (tests only).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mailshard::testing {

struct GenOptions {
  int messages = 300;
  uint64_t seed = 1;
  // Owner of every entry (chown'ed when running as root; -1 = leave as created).
  int64_t uid = -1;
  int64_t gid = -1;
  int hard_links = 12;          // messages also hard-linked into .Archive (Dovecot COPY)
  int cache_record_bytes = 600;  // average dovecot.index.cache record
};

struct MutateOptions {
  int day = 1;
  int deliveries = 10;
  int flag_changes = 10;
  int expunges = 10;
  int copies = 2;             // COPY INBOX -> .Archive as hard links
  int moves = 2;              // MOVE INBOX -> .Sent: link + unlink
  bool add_folder = false;    // create .Projects with mail
  bool remove_folder = false; // delete .Lists.dev entirely
};

void generate_home(const std::string& home, const GenOptions& options);
void mutate_home(const std::string& home, const MutateOptions& options, const GenOptions& gen);

struct CompareOptions {
  bool dir_mtimes = true;
  bool skip_tmp_contents = true;  // Maildir tmp/ contents are never copied
};
// Differences between trees a and b ("" entries = identical), at most 20.
std::vector<std::string> compare_trees(const std::string& a, const std::string& b, const CompareOptions& options = {});

// Small helpers for tests.
void write_file(const std::string& path, const std::string& data, int64_t mtime_ns = -1, int mode = 0600);
std::string read_whole(const std::string& path);
void run_shell(const std::string& command);  // throws if it fails

}  // namespace mailshard::testing

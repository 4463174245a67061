#include "journal/open_journal.h"

#include "journal/pg_journal.h"
#include "journal/sqlite_journal.h"

namespace mailshard {

Result<std::unique_ptr<Journal>> open_journal(const JournalConfig& config, Clock& clock, FileAccess access) {
  if (!config.url.empty()) {
    PgJournalOptions o;
    o.url = config.url;
    o.password = config.password.reveal();
    o.max_clock_skew_ms = config.max_clock_skew_ms;
    auto j = PgJournal::open(o, clock);
    if (!j.ok()) return std::move(j).error();
    return std::unique_ptr<Journal>(std::move(*j));
  }
  auto j = SqliteJournal::open(config.path, clock, access);
  if (!j.ok()) return std::move(j).error();
  return std::unique_ptr<Journal>(std::move(*j));
}

}  // namespace mailshard

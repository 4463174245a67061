// open_journal: the one place a Journal is made from [journal]: SQLite for
// `path`, PostgreSQL for `url` (the config loader lets exactly one be set).
#pragma once

#include <memory>

#include "core/clock.h"
#include "core/config.h"
#include "core/journal.h"
#include "util/fs.h"

namespace mailshard {

// Errors: those of SqliteJournal::open or PgJournal::open. `access` applies to
// the SQLite file only (a database server keeps its own files).
Result<std::unique_ptr<Journal>> open_journal(const JournalConfig& config, Clock& clock, FileAccess access = {});

}  // namespace mailshard

// MoveRunner, the convert step: Courier-IMAP Maildir++ on the source, Dovecot
// Maildir on the destination (movers/courier_conversion.h). Preflight plans
// it (and refuses bad Courier files before anything is copied); the convert
// step, after the frozen pass, checks the mirror and converts the staging
// copy; verify compares what clients will see on both sides.
#include <chrono>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "movers/mail_format.h"
#include "movers/move_runner.h"
#include "movers/move_runner_internal.h"
#include "util/strings.h"

namespace mailshard {

namespace {

// Seconds since `t0`, for the step's debug log (the convert step runs under
// the freeze: where its time goes is the first question about a long lockout).
double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

// Reads the source's Courier files (frozen, or in preflight as they are now)
// and converts them in memory.
Result<DovecotConversion> MoveRunner::convert_source(Ctx& c, std::optional<TreeListing> home_now) {
  const std::string maildir = c.progress.convert_maildir.value_or("");
  std::optional<TreeListing> listing;
  if (home_now) listing = sub_listing(std::move(*home_now), maildir);
  auto mailbox = read_courier_mailbox(*c.src, join_path(c.progress.src_home, maildir), maildir.empty() ? "~" : maildir,
                                      std::move(listing));
  if (!mailbox.ok()) return std::move(mailbox).error().context(c.from->name);
  auto layout = conversion_layout(c.to_location());
  if (!layout.ok()) return std::move(layout).error().context(fmt::format("user {} on {}", printable(c.rec.user), c.to->name));
  auto conv = convert_courier_to_dovecot(c.rec.user, *mailbox, *layout);
  if (!conv.ok()) return std::move(conv).error().context(c.from->name);
  return conv;
}

Status MoveRunner::plan_conversion(Ctx& c) {
  std::string maildir = c.from_location().maildir;
  if (maildir.empty() && MS_TRY_CTX(exists(*c.src, c.progress.src_home + "/Maildir"), c.from->name)) maildir = "Maildir";
  const std::string dst_maildir = c.to_location().maildir;
  if (!dst_maildir.empty() && dst_maildir != maildir)
    return Error::invalid(fmt::format("user {}: its Courier Maildir is ~/{} on {} but {} reads ~/{}; the copy keeps "
                                      "the home's layout",
                                      printable(c.rec.user), maildir, c.from->name, c.to->name, dst_maildir));
  c.progress.convert = std::string(kCourierToDovecot);
  c.progress.convert_maildir = maildir;
  // Bad Courier files stop the move here, before anything is copied; the
  // convert step reads them again under the freeze.
  auto conv = convert_source(c);
  if (!conv.ok()) return std::move(conv).error();
  // Said before anything is copied (a dry run says it too): the shares go.
  if (!conv->acls_left_out.empty())
    spdlog::warn("move {}: Courier ACLs are not converted to Dovecot's; these shares end with the move: {}",
                 printable(c.rec.user), printable(join(conv->acls_left_out, "; "), 4000));
  return {};
}

Status MoveRunner::convert(Ctx& c) {
  if (!c.progress.convert || c.progress.empty_source) return {};
  if (*c.progress.convert != kCourierToDovecot)
    return Error::unsupported(fmt::format("unknown conversion '{}'", printable(*c.progress.convert)));
  // 1. The mirror first: the frozen pass's copy must match the source name
  //    for name before the conversion renames anything.
  const auto t0 = std::chrono::steady_clock::now();
  MS_CHECK(load_state(c));
  SyncEngine engine(*c.src, c.progress.src_home, *c.dst, c.dst_staging, c.sync, d_.clock);
  std::optional<TreeListing> home_now;  // the source as the check found it: read below, not listed again
  auto report = engine.verify_frozen_copy(c.state, &home_now);
  if (!report.ok()) return std::move(report).error();
  c.progress.verify = *report;
  const double mirror_s = since(t0);
  // 2. Courier's files as the freeze holds them, converted and applied.
  auto conv = MS_TRY(convert_source(c, std::move(home_now)));
  const double read_s = since(t0);
  for (const auto& name : conv.left_out)
    spdlog::warn("move {}: subscription '{}' is outside INBOX (a shared folder?); Dovecot has no such folder: left out",
                 printable(c.rec.user), printable(name));
  const std::string maildir = join_path(c.dst_staging, c.progress.convert_maildir.value_or(""));
  auto stats = apply_conversion(*c.dst, maildir, conv);
  if (!stats.ok()) return std::move(stats).error().context(c.to->name);
  c.conversion = std::move(conv);
  spdlog::debug("move {}: convert: mirror checked at {:.3f}s, Courier files read and converted at {:.3f}s, applied at "
                "{:.3f}s",
                printable(c.rec.user), mirror_s, read_s, since(t0));
  d_.env.progress(c.rec.user, fmt::format("converted Courier -> Dovecot: {} folders ({} renamed), {} messages "
                                          "renamed for keywords, {} files written",
                                          stats->folders, stats->folders_renamed, stats->messages_renamed,
                                          stats->files_written));
  return {};
}

Status MoveRunner::verify_converted(Ctx& c) {
  if (!c.conversion) c.conversion = MS_TRY(convert_source(c));
  const std::string maildir = join_path(c.dst_staging, c.progress.convert_maildir.value_or(""));
  auto n = verify_conversion(c.rec.user, *c.dst, maildir, *c.conversion);
  if (!n.ok()) return std::move(n).error().context(c.to->name);
  c.progress.converted_folders = *n;
  return {};
}

}  // namespace mailshard

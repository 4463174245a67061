// DirectorMove: a move inside one storage group behind a Dovecot director ([router] method =
// "director", docs/operations.md "Dovecot director"). The backends share one mail root, so no
// byte is copied and nothing is frozen: the director itself ends the user's sessions on the
// old backend and holds new logins until the old backend is done, then routes them to the new
// one. Steps, each journaled before and after (move_steps) like a copy move's:
//
//   preflight      the user exists and is on a server of the destination's storage group; the
//                  director knows both backends (director_host) -- nothing is changed otherwise
//   director_move  doveadm director move USER HOST (skipped when the director maps the user
//                  there already), then read back that it does
//   flip           mailHost -> the destination in one guarded LDAP modify (bookkeeping: the
//                  director routes by its own hash and memory, inventory and planner by mailHost)
//   done
//
// Every step is idempotent, so resume() always rolls a director move forward (re-running a
// step costs a request to the director or to LDAP). abort() before the flip moves the user
// back in the director. Journal records carry detail "kind": "director" (is_director_move).
//
// Thread-safety: one instance per thread; a move is owned by the process holding its lease.
#pragma once

#include <string>

#include "core/clock.h"
#include "core/config.h"
#include "core/directory.h"
#include "core/director_router.h"
#include "core/journal.h"
#include "movers/move_runner.h"

namespace mailshard {

// The steps of a director move, in order, as journaled and as MAILSHARD_TEST_AT names them.
inline constexpr std::string_view kDirectorMoveSteps[] = {"preflight", "director_move", "flip", "done"};

// Whether a journaled move is a director move (its detail says "kind": "director").
bool is_director_move(const MoveRecord& m);

struct DirectorMoveDeps {
  const Config& config;
  Directory& directory;
  DirectorRouter& director;
  Journal& journal;
  Clock& clock;
  MoveEnvironment& env;  // progress lines and the step-boundary test hook; no transport is opened
};

class DirectorMove {
 public:
  explicit DirectorMove(DirectorMoveDeps deps) : d_(deps) {}

  // Moves `user` to server `to` of the same storage group. Honours dry_run, plan_id,
  // bytes_planned (recorded, never copied), expected_from and refuse_frozen of MoveOptions.
  // Returns the final record: done, rolled_back (the error says why; nothing is left
  // changed), dry_run, or flipped/planned with an error when LDAP or the director became
  // unreachable half-way ('mailshard resume' finishes it).
  // An Error means the move never started: kInvalidInput (unknown user or server, same server,
  // a destination outside the user's storage group, a backend the director does not know),
  // kConflict (already moving, moved since the plan, frozen), or the director's or directory's
  // own error (kUnavailable: the director cannot be reached).
  Result<MoveRecord> move(const std::string& user, const std::string& to, const MoveOptions& options);

  // Finishes an interrupted director move (director_move, flip, done; each skipped when
  // already true). kConflict if another process holds it. A terminal move is returned as is.
  Result<MoveRecord> resume(int64_t move_id);

  // Before the flip: maps the user back to the source in the director; state rolled_back.
  // kConflict once the move has flipped (it only rolls forward) or another process holds it.
  Result<MoveRecord> abort(int64_t move_id);

 private:
  struct Ctx;
  template <typename F>
  Status step(Ctx& c, const std::string& name, F&& fn);
  Status save(Ctx& c);
  Status director_move(Ctx& c);
  Status flip(Ctx& c);
  Result<MoveRecord> run_from(Ctx& c);
  Result<MoveRecord> finish_failed(Ctx& c, const Error& why, bool roll_back);

  DirectorMoveDeps d_;
};

}  // namespace mailshard

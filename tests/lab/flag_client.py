#!/usr/bin/python3
"""Keep changing the flags of a user's INBOX messages through nginx, as a busy IMAP client would,
until STOP_FILE exists (or --max seconds pass); READY_FILE is created once the first change went
through.

Every change is an absolute `UID STORE <uid> FLAGS.SILENT (...)`, cycling through system flags
and a keyword. When a session ends under it (a kick, a refused login while the user is frozen,
a move to another store) the client logs in again (retrying [UNAVAILABLE]) and first sends the
change whose reply it never saw once more, so the flags of every UID are exactly the last ones
it set. Prints JSON: {"stores": N, "logins": M, "ended": sessions the server ended,
"final": {"<uid>": [flags...]}}.

Exit status: 0 ok, 1 no store succeeded at all, 2 usage."""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import labcommon  # noqa: E402
from mlab_imap import Imap, ImapError, ImapNo  # noqa: E402

FLAG_SETS = [["\\Seen"], ["\\Flagged", "\\Seen"], [], ["$Label1"], ["\\Answered", "\\Seen"], ["$Label1", "\\Flagged"]]
PAUSE_S = 0.02          # between two changes
RETRY_S = 0.2           # after a lost session or a refused login


def store(imap, uid, flags):
    """Sets the flags of UID to exactly FLAGS (absolute, so sending it twice is harmless)."""
    imap.command("UID", "STORE", str(uid), "FLAGS.SILENT", "(" + " ".join(flags) + ")")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lab", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--stop-file", required=True)
    ap.add_argument("--ready-file", default=None, help="created after the first change succeeded")
    ap.add_argument("--max", type=float, default=300.0)
    ap.add_argument("--password", default=None)
    a = ap.parse_args()
    env = labcommon.load_env(a.lab)
    port = int(env["NGINX_IMAP_PORT"])
    password = a.password or env.get("USER_PASSWORD", "secret")
    deadline = time.monotonic() + a.max
    final, pending = {}, None
    stores = logins = ended = i = 0
    while not os.path.exists(a.stop_file) and time.monotonic() < deadline:
        imap, in_session = None, False
        try:
            imap = Imap("127.0.0.1", port, timeout=10)
            imap.login(a.user, password)
            logins += 1
            in_session = True
            imap.examine("INBOX", readonly=False)
            uids = [int(m["UID"]) for m in imap.fetch("1:*", "(UID)")]
            if not uids:
                raise ImapError("INBOX is empty")
            if pending:
                store(imap, *pending)
                final[str(pending[0])], pending = sorted(pending[1]), None
            while not os.path.exists(a.stop_file) and time.monotonic() < deadline:
                uid, flags = uids[i % len(uids)], FLAG_SETS[i % len(FLAG_SETS)]
                i += 1
                pending = (uid, flags)
                store(imap, uid, flags)
                final[str(uid)], pending = sorted(flags), None
                stores += 1
                if stores == 1 and a.ready_file:
                    open(a.ready_file, "w").close()
                time.sleep(PAUSE_S)
        except (ImapError, ImapNo, OSError):
            ended += in_session  # the server ended a session we had (a kick)
            time.sleep(RETRY_S)
        finally:
            if imap:
                imap.close()
    # A change whose outcome is unknown at the end is settled now.
    while pending and time.monotonic() < deadline + 60:
        try:
            imap = Imap("127.0.0.1", port, timeout=10)
            imap.login(a.user, password)
            logins += 1
            imap.examine("INBOX", readonly=False)
            store(imap, *pending)
            final[str(pending[0])], pending = sorted(pending[1]), None
            imap.logout()
        except (ImapError, ImapNo, OSError):
            time.sleep(RETRY_S)
    print(json.dumps({"stores": stores, "logins": logins, "ended": ended, "final": final}))
    return 0 if stores else 1


if __name__ == "__main__":
    sys.exit(main())

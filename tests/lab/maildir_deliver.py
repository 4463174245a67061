#!/usr/bin/python3
"""Deliver test messages into a user's Maildir as an MDA does, routed by LDAP: for Courier stores,
which the lab runs without an LMTP daemon (Courier delivers with maildrop or deliverquota).

For each message it reads the user's mailHost and mailAccountStatus; while the user is frozen it
defers (polls again after --defer-poll seconds, as an MTA keeps a message queued), otherwise it
writes the message into HOME/Maildir/tmp of the store mailHost names and renames it into new/
(the Maildir delivery protocol), owned by the mail user. Each message has Message-ID
<mlab.TAG.SEQ.RAND@example.org>. Prints JSON: {"delivered": N, "message_ids": [...],
"stores": {store: count}, "deferred_polls": K}.

Exit status: 0 all delivered, 1 error (unknown user, a Maildir missing, a freeze that outlasted
--max-defer), 2 usage."""

import argparse
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import labcommon  # noqa: E402

PROG = "maildir_deliver.py"


def deliver_one(env, login, tag, seq, size, defer_poll, max_defer):
    """-> (message-id, store, polls spent deferring)"""
    polls, waited_since = 0, time.monotonic()
    while True:
        entry = labcommon.find_user(env, login)
        if entry is None:
            raise labcommon.LabError(f"unknown user '{login}'")
        if labcommon.effective_status(labcommon.first(entry, "mailAccountStatus")) != "frozen":
            break
        if time.monotonic() - waited_since > max_defer:
            raise labcommon.LabError(f"{login} stayed frozen for more than {max_defer}s")
        polls += 1
        time.sleep(defer_poll)
    store = labcommon.first(entry, "mailHost")
    maildir = os.path.join(labcommon.user_home(env, store, entry), "Maildir")
    if not os.path.isdir(os.path.join(maildir, "new")):
        raise labcommon.LabError(f"{login}: no Maildir on {store} ({maildir})")
    rcpt = labcommon.first(entry, "mail")
    msgid, data = labcommon.build_message("Lab MDA <mda@example.org>", rcpt, tag, seq, size,
                                          f"maildir delivery {seq}", f"seq {seq}\r\n")
    name = f"{time.time():.6f}.M{seq}P{os.getpid()}.{socket.gethostname()}"
    tmp = os.path.join(maildir, "tmp", name)
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chown(tmp, int(env["MAIL_UID"]), int(env["MAIL_GID"]))
    os.rename(tmp, os.path.join(maildir, "new", f"{name},S={len(data)}"))
    return msgid, store, polls


def main():
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lab", required=True, help="lab directory")
    ap.add_argument("--user", required=True, help="login (mail or uid)")
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--tag", default="mda")
    ap.add_argument("--interval", type=float, default=0.0, help="seconds between messages")
    ap.add_argument("--size", type=int, default=2000)
    ap.add_argument("--defer-poll", type=float, default=0.2)
    ap.add_argument("--max-defer", type=float, default=120.0)
    a = ap.parse_args()
    if a.count < 0:
        ap.error("--count must be >= 0")
    out = {"user": a.user, "delivered": 0, "message_ids": [], "stores": {}, "deferred_polls": 0}
    try:
        env = labcommon.load_env(a.lab)
        for seq in range(1, a.count + 1):
            msgid, store, polls = deliver_one(env, a.user, a.tag, seq, a.size, a.defer_poll, a.max_defer)
            out["delivered"] += 1
            out["message_ids"].append(msgid)
            out["stores"][store] = out["stores"].get(store, 0) + 1
            out["deferred_polls"] += polls
            if a.interval > 0 and seq < a.count:
                time.sleep(a.interval)
    except (labcommon.LabError, OSError) as e:
        labcommon.die(PROG, f"{a.user}: {e} (after {out['delivered']} delivered)")
    labcommon.print_json(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

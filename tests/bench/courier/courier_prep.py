#!/usr/bin/python3
"""Courier-IMAP side of the Courier benchmark (tests/bench/courier/run.sh).

  courier_prep.py courierize --lab DIR --user LOGIN [--store courier1]
      turns the Dovecot-shaped Maildir that ../shared/bench/gen_maildir.py wrote into LOGIN's home
      on STORE into a mailbox as Courier-IMAP keeps it: Dovecot's files go (uidlist, keywords,
      indexes, subscriptions, sieve), keyword letters (a-z) leave the file names, the tree is owned
      by the mail user; then Courier's own imapd (on a pipe, labcommon.courier_session) opens every
      folder, which writes courierimapuiddb, sets keywords on a share of the messages
      (courierimapkeywords/) and subscribes the folders (courierimapsubscribed); then opens
      every folder once more, as the user's next login would (Courier settles its keyword
      update files on that open).
  courier_prep.py flags --lab DIR --user LOGIN [--store courier1] --first N --count K
      through Courier's imapd: STORE N:N+K-1 +FLAGS.SILENT (\\Flagged $Bench) in INBOX (a rename
      for every message not yet flagged, and a keyword update), as a user's client would.

Prints JSON. Exit status: 0 ok, 1 error, 2 usage."""

import argparse
import json
import os
import re
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../lab"))
import labcommon  # noqa: E402
from mlab_imap import ImapError, quote  # noqa: E402

# (keyword, every Nth message of a folder) set through Courier: about 16 % of messages get one.
KEYWORDS = [("$Label1", 10), ("Project", 25), ("Later", 40)]
UNSUBSCRIBED = {"INBOX.Trash", "INBOX.Junk"}
DOVECOT_FOLDER_FILES = re.compile(r"^(dovecot-uidlist|dovecot-keywords|dovecot\.index.*)$")
DOVECOT_ROOT_FILES = re.compile(r"^(subscriptions|dovecot-uidvalidity.*|dovecot\.list\.index.*)$")


def home_of(env, login, store):
    entry = labcommon.find_user(env, login)
    if entry is None:
        raise labcommon.LabError(f"unknown user '{login}'")
    return labcommon.user_home(env, store, entry), labcommon.first(entry, "mail")


def strip_dovecot(maildir):
    removed = renamed = 0
    folders = [maildir] + [os.path.join(maildir, n) for n in os.listdir(maildir)
                           if n.startswith(".") and os.path.isdir(os.path.join(maildir, n))]
    for n in os.listdir(maildir):
        if DOVECOT_ROOT_FILES.match(n):
            os.unlink(os.path.join(maildir, n))
            removed += 1
    for f in folders:
        for n in os.listdir(f):
            if DOVECOT_FOLDER_FILES.match(n):
                os.unlink(os.path.join(f, n))
                removed += 1
        cur = os.path.join(f, "cur")
        for n in os.listdir(cur):
            base, sep, flags = n.partition(":2,")
            kept = "".join(c for c in flags if not c.islower())
            if sep and kept != flags:
                os.rename(os.path.join(cur, n), os.path.join(cur, base + sep + kept))
                renamed += 1
    return removed, renamed


def chown_tree(path, uid, gid):
    for root, dirs, files in os.walk(path):
        os.lchown(root, uid, gid)
        for n in dirs + files:
            os.lchown(os.path.join(root, n), uid, gid)


def courierize(env, a):
    home, login = home_of(env, a.user, a.store)
    maildir = os.path.join(home, "Maildir")
    removed, renamed = strip_dovecot(maildir)
    for n in ("sieve", ".dovecot.sieve"):
        p = os.path.join(home, n)
        if os.path.islink(p) or os.path.isfile(p):
            os.unlink(p)
        elif os.path.isdir(p):
            shutil.rmtree(p)
    chown_tree(home, int(env["MAIL_UID"]), int(env["MAIL_GID"]))
    imap = labcommon.courier_session(env, a.store, login, timeout=600)
    folders = {}
    try:
        for _, raw, flags, _ in imap.list():
            if any(f.lower() == "\\noselect" for f in flags):
                continue
            info = imap.examine(raw, readonly=False)  # Courier writes courierimapuiddb here
            n = info["exists"]
            tagged = 0
            for kw, every in KEYWORDS:
                seqs = list(range(every, n + 1, every))
                for i in range(0, len(seqs), 500):  # keep command lines short
                    imap.command("STORE", ",".join(map(str, seqs[i:i + 500])), "+FLAGS.SILENT", f"({kw})")
                tagged += len(seqs)
            if raw not in UNSUBSCRIBED:
                imap.command("SUBSCRIBE", quote(raw))
            folders[raw] = {"messages": n, "uidvalidity": info["uidvalidity"], "keywords_set": tagged}
    finally:
        imap.logout()
    # Courier's first open of a folder after keyword changes renames every update file in
    # courierimapkeywords/ ("<name>" -> ".<n>.<name>") and writes :list; later opens leave them.
    # A user's next login does that; do it here, or the benchmark's first client session (the
    # flag changes before the freeze) would rename ~1000 files that a lived-in mailbox has
    # settled long ago.
    # --unsettled leaves them, so that the benchmark's flag-change session (between the last warm
    # pass and the freeze) renames them: the user who set many keywords and logs in again then.
    if not a.unsettled:
        imap = labcommon.courier_session(env, a.store, login, timeout=600)
        try:
            for raw in folders:
                imap.examine(raw, readonly=False)
        finally:
            imap.logout()
    missing = [f for f in ["courierimapuiddb", "courierimapsubscribed", "courierimapkeywords"]
               if not os.path.exists(os.path.join(maildir, f))]
    if missing:
        raise labcommon.LabError(f"Courier did not write {', '.join(missing)} in {maildir}")
    return {"home": home, "dovecot_files_removed": removed, "keyword_letters_stripped": renamed, "folders": folders}


def flags(env, a):
    _, login = home_of(env, a.user, a.store)
    imap = labcommon.courier_session(env, a.store, login)
    try:
        info = imap.examine("INBOX", readonly=False)
        last = min(a.first + a.count - 1, info["exists"])
        imap.command("STORE", f"{a.first}:{last}", "+FLAGS.SILENT", "(\\Flagged $Bench)")
    finally:
        imap.logout()
    return {"changed": last - a.first + 1, "first": a.first}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("courierize", "flags"):
        p = sub.add_parser(name)
        p.add_argument("--lab", required=True)
        p.add_argument("--user", required=True)
        p.add_argument("--store", default="courier1")
        if name == "courierize":
            p.add_argument("--unsettled", action="store_true",
                           help="skip the second open of every folder (Courier then renames its keyword files "
                                "on the next one)")
        if name == "flags":
            p.add_argument("--first", type=int, required=True)
            p.add_argument("--count", type=int, default=50)
    a = ap.parse_args()
    try:
        env = labcommon.load_env(a.lab)
        out = courierize(env, a) if a.cmd == "courierize" else flags(env, a)
    except (labcommon.LabError, ImapError, OSError) as e:
        print(f"courier_prep.py {a.cmd}: {e}", file=sys.stderr)
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

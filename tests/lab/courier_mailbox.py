#!/usr/bin/python3
"""A Courier-IMAP Maildir++ for tests, and what Courier's files say a client sees of it.

  courier_mailbox.py generate --maildir DIR --messages N [--seed S] [--owner USER]
      writes a Courier 5 Maildir++ at DIR (which must not exist): INBOX, Sent, a UTF-8 folder
      (Entwürfe), a hierarchy (Lists.dev), courierimapuiddb per folder with UID gaps (earlier
      expunges), flags in the file names, keywords in courierimapkeywords/ (:list and
      .N.<name> updates), courierimapsubscribed. Owned by USER (default dovecot).
  courier_mailbox.py expect --maildir DIR
      prints JSON {"folders": {IMAP name ("/" separated, UTF-8): {"uidvalidity", "uidnext",
      "messages": {uid: {"flags": sorted flags incl. keywords, "message_id"}}}},
      "subscriptions": sorted IMAP names} as read from Courier's files alone (an independent
      reading: it shares no code with mailshard's conversion).

Exit status: 0 ok, 1 error, 2 usage."""

import argparse
import json
import os
import pwd
import random
import sys

FLAG_NAMES = {"D": "\\Draft", "F": "\\Flagged", "R": "\\Answered", "S": "\\Seen", "T": "\\Deleted"}
FOLDERS = ["", ".Sent", ".Entwürfe", ".Lists", ".Lists.dev"]
KEYWORDS = ["$Label1", "$Label2", "Project", "Later", "$Junk"]


def chown_tree(path, uid, gid):
    for root, dirs, files in os.walk(path):
        os.chown(root, uid, gid)
        for n in dirs + files:
            os.lchown(os.path.join(root, n), uid, gid)


def generate(a):
    rnd = random.Random(a.seed)
    pw = pwd.getpwnam(a.owner)
    if os.path.exists(a.maildir):
        raise SystemExit(f"courier_mailbox.py: {a.maildir} exists")
    t0 = 1_700_000_000
    n = 0
    subscribed = ["INBOX"]
    for fi, folder in enumerate(FOLDERS):
        fdir = os.path.join(a.maildir, folder) if folder else a.maildir
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(fdir, sub))
        if folder:
            open(os.path.join(fdir, "maildirfolder"), "w").close()
            if rnd.random() < 0.8:
                subscribed.append("INBOX" + folder)
        count = a.messages // 2 if not folder else a.messages // (2 * (len(FOLDERS) - 1))
        uid = rnd.randint(1, 5)
        lines = []
        kw_of = {}
        for _ in range(count):
            n += 1
            uid += rnd.choice([1, 1, 1, 2, 5])  # gaps: expunged earlier
            flags = "".join(sorted(f for f in "DFRST" if rnd.random() < (0.5 if f == "S" else 0.1)))
            body = (f"From: sender{n}@example.net\r\nTo: user@example.org\r\nSubject: courier {n}\r\n"
                    f"Message-ID: <courier-{a.seed}-{n}@example.net>\r\n\r\n" + "x" * (rnd.randint(10, 400)) + "\r\n")
            data = body.encode()
            base = f"{t0 + n}.M{n}P{fi}.courierhost,S={len(data)}"  # S= must be the file's size
            path = os.path.join(fdir, "cur", f"{base}:2,{flags}")
            with open(path, "wb") as f:
                f.write(data)
            os.utime(path, (t0 + n, t0 + n))
            lines.append(f"{uid} {base}")
            if rnd.random() < 0.3:
                kw_of[base] = sorted(rnd.sample(KEYWORDS, rnd.randint(1, 3)))
        uidvalidity = t0 + 1000 * fi + 7
        with open(os.path.join(fdir, "courierimapuiddb"), "w") as f:
            f.write(f"1 {uidvalidity} {uid + rnd.randint(1, 4)}\n" + "".join(l + "\n" for l in lines))
        if kw_of:
            kd = os.path.join(fdir, "courierimapkeywords")
            os.makedirs(kd)
            bases = sorted(kw_of)
            in_list = bases[: len(bases) // 2 + 1]
            with open(os.path.join(kd, ":list"), "w") as f:
                f.write("".join(k + "\n" for k in KEYWORDS) + "\n")
                for b in in_list:
                    f.write(b + ":" + " ".join(str(KEYWORDS.index(k)) for k in kw_of[b]) + "\n")
            # The rest as updates; one message in :list also gets a newer update.
            for i, b in enumerate(bases[len(in_list):]):
                with open(os.path.join(kd, f".{i + 1}.{b}"), "w") as f:
                    f.write("".join(k + "\n" for k in kw_of[b]))
            b = in_list[0]
            kw_of[b] = ["Later"]
            with open(os.path.join(kd, f".99.{b}"), "w") as f:
                f.write("Later\n")
    with open(os.path.join(a.maildir, "courierimapsubscribed"), "w") as f:
        f.write("".join(s + "\n" for s in subscribed))
    chown_tree(a.maildir, pw.pw_uid, pw.pw_gid)


def read_keywords(fdir, bases):
    kd = os.path.join(fdir, "courierimapkeywords")
    out = {}
    if not os.path.isdir(kd):
        return out
    names = []
    lp = os.path.join(kd, ":list")
    if os.path.exists(lp):
        with open(lp, encoding="utf-8") as f:
            lines = f.read().split("\n")
        i = 0
        while lines[i]:
            names.append(lines[i])
            i += 1
        for line in lines[i + 1:]:
            if line:
                b, idx = line.rsplit(":", 1)
                out[b] = {names[int(x)] for x in idx.split()}
    best = {}
    for fn in os.listdir(kd):
        if fn == ":list":
            continue
        rank, b = (float("inf"), fn)
        if fn.startswith(".") and fn[1:].split(".", 1)[0].isdigit():
            num, b = fn[1:].split(".", 1)
            rank = int(num)
        if b not in best or rank > best[b][0]:
            best[b] = (rank, fn)
    for b, (_, fn) in best.items():
        with open(os.path.join(kd, fn), encoding="utf-8") as f:
            out[b] = {k for k in f.read().split("\n") if k}
    return {b: k for b, k in out.items() if b in bases and k}


def expect(a):
    folders = {}
    for entry in [""] + sorted(os.listdir(a.maildir)):
        fdir = os.path.join(a.maildir, entry) if entry else a.maildir
        if entry and not (entry.startswith(".") and os.path.isdir(os.path.join(fdir, "cur"))):
            continue
        name = "INBOX" if not entry else entry[1:].replace(".", "/")
        names = {fn.split(":", 1)[0]: fn for fn in os.listdir(os.path.join(fdir, "cur"))}
        with open(os.path.join(fdir, "courierimapuiddb"), encoding="utf-8") as f:
            head, *lines = f.read().split("\n")
        _, uidv, nextuid = head.split()
        kws = read_keywords(fdir, set(names))
        msgs = {}
        for line in lines:
            if not line:
                continue
            uid, base = line.split(" ", 1)
            if base not in names:
                continue
            fn = names[base]
            letters = fn.split(":2,", 1)[1] if ":2," in fn else ""
            flags = sorted({FLAG_NAMES[c] for c in letters if c in FLAG_NAMES} | kws.get(base, set()))
            with open(os.path.join(fdir, "cur", fn), encoding="utf-8") as f:
                mid = next(l.split(":", 1)[1].strip() for l in f.read().splitlines() if l.lower().startswith("message-id:"))
            msgs[uid] = {"flags": flags, "message_id": mid}
        folders[name] = {"uidvalidity": int(uidv), "uidnext": int(nextuid), "messages": msgs}
    subs = []
    with open(os.path.join(a.maildir, "courierimapsubscribed"), encoding="utf-8") as f:
        for s in f.read().split("\n"):
            if s == "INBOX":
                subs.append("INBOX")
            elif s.startswith("INBOX."):
                subs.append(s[6:].replace(".", "/"))
    print(json.dumps({"folders": folders, "subscriptions": sorted(subs)}, ensure_ascii=False, sort_keys=True))


def main():
    ap = argparse.ArgumentParser(prog="courier_mailbox.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sp = ap.add_subparsers(dest="cmd", required=True)
    g = sp.add_parser("generate")
    g.add_argument("--maildir", required=True)
    g.add_argument("--messages", type=int, default=300)
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--owner", default="dovecot")
    e = sp.add_parser("expect")
    e.add_argument("--maildir", required=True)
    a = ap.parse_args()
    generate(a) if a.cmd == "generate" else expect(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())

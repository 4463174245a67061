#!/usr/bin/python3
"""Make a realistic mailbox for a lab user, through IMAP on a store (never by writing files); on a
Courier store through Courier-IMAP's own imapd on a pipe, so the metadata files are Courier's.

Same --seed, same mailbox content. It:
  * creates folders (Archive, Archive/2024, Archive/2025, Lists, Lists/dovecot, "Old Stuff",
    "Q&A", a non-ASCII one) and subscribes most of them;
  * APPENDs N messages (LITERAL+ MULTIAPPEND, so 2000 take a few seconds) spread over the
    folders, with INTERNALDATEs over 2023-2025 (Dovecot stores them as file mtimes), sizes from
    1 KB to a few hundred KB (multipart with base64 attachments);
  * sets flags (\\Seen \\Flagged \\Answered \\Draft) and keywords ($Label1, $Forwarded, Junk,
    $MDNSent, project-x) on a deterministic subset, some at APPEND time and some with STORE;
  * where the server has ACLs (Courier-IMAP), grants rights on four folders (SETACL, ACLS below);
  * expunges about 5% per folder (UID gaps) and COPYs some INBOX/Lists messages to other folders
    (Dovecot hard-links copies);
  * writes a sieve script as files: HOME/sieve/main.sieve and HOME/.dovecot.sieve -> sieve/main.sieve,
    owned by dovecot.
Prints a JSON summary."""

import argparse
import base64
import os
import random
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import labcommon  # noqa: E402
from mlab_imap import Imap, ImapError, ImapNo, Literal, mutf7_encode, quote  # noqa: E402

PROG = "fill_mailbox.py"
BATCH_MESSAGES = 100            # messages per MULTIAPPEND command ...
BATCH_BYTES = 4 << 20           # ... or fewer, to keep one command under ~4 MB
EPOCH_2023 = 1672531200         # INTERNALDATEs spread over 2023-01-01 .. 2025-12-31
SPAN_S = 3 * 365 * 86400
EXPUNGE_EVERY = 20              # ~5% of each folder is expunged

# (path parts, weight of messages, subscribed)
FOLDERS = [
    (("INBOX",), 40, True),
    (("Sent",), 10, True),
    (("Drafts",), 2, True),
    (("Trash",), 1, True),
    (("Archive",), 8, True),
    (("Archive", "2024"), 15, True),
    (("Archive", "2025"), 7, False),
    (("Lists",), 5, True),
    (("Lists", "dovecot"), 6, True),
    (("Old Stuff",), 3, False),
    (("Q&A",), 2, True),
    (("Entwürfe",), 1, True),
]
# Grants set with SETACL where the server has ACLs (Courier-IMAP; the lab's Dovecot has no acl
# plugin): (folder, identifier, rights).
ACLS = [(("INBOX",), "carol@example.org", "lrs"), (("Lists",), "bob@example.org", "lr"),
        (("Archive",), "anyone", "l"), (("Entwürfe",), "-bob@example.org", "w")]
SENDERS = ["Alice Example <alice@example.net>", "Bob <bob@example.com>", "Carol Ng <carol@lists.example.org>",
           "dovecot-list <dovecot@dovecot.org>", "Zoë Müller <zoe@example.de>", "noreply@shop.example"]
WORDS = ("mail server move quota index folder rebalance storage shard backup restore deliver "
         "client session proxy login cluster weekly report meeting budget draft review").split()
SIEVE = """require ["fileinto", "imap4flags"];
# installed by fill_mailbox.py (lab)
if header :contains "List-Id" "dovecot.dovecot.org" {
  fileinto "Lists/dovecot";
  stop;
}
if header :contains "Subject" "[SPAM]" {
  addflag "Junk";
  fileinto "Trash";
}
"""


def internaldate(ts):
    return time.strftime("%d-%b-%Y %H:%M:%S +0000", time.gmtime(ts))


def make_message(rng, seed, i, ts, rcpt, folder):
    """-> (bytes, message-id or '')"""
    sender = rng.choice(SENDERS)
    subject = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 7))).capitalize()
    if folder[0] == "Sent":
        sender, to = f"<{rcpt}>", rng.choice(SENDERS)
    else:
        to = f"<{rcpt}>"
    msgid = "" if i % 97 == 50 else f"<mlab.fill-{seed}.{i}.{rng.getrandbits(32):08x}@example.org>"
    head = [f"From: {sender}", f"To: {to}", f"Subject: {subject}",
            "Date: " + time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(ts))]
    if msgid:
        head.append(f"Message-ID: {msgid}")
    if i % 7 == 3:
        head.append(f"In-Reply-To: <mlab.fill-{seed}.{i - 1}.thread@example.org>")
    if folder[0] == "Lists":
        head.append("List-Id: Dovecot list <dovecot.dovecot.org>")
    head.append("MIME-Version: 1.0")
    text = "\r\n".join(" ".join(rng.choice(WORDS) for _ in range(12)) for _ in range(rng.randint(5, 60)))
    r = rng.random()
    if r < 0.85:
        head.append("Content-Type: text/plain; charset=utf-8")
        body = text + "\r\n"
    else:
        size = rng.randint(10_000, 60_000) if r < 0.97 else rng.randint(100_000, 300_000)
        attachment = base64.encodebytes(rng.randbytes(size * 3 // 4)).decode().replace("\n", "\r\n")
        boundary = f"=_mlab_{i}"
        head.append(f'Content-Type: multipart/mixed; boundary="{boundary}"')
        body = (f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n"
                f"--{boundary}\r\nContent-Type: application/octet-stream\r\n"
                f'Content-Disposition: attachment; filename="file{i}.bin"\r\n'
                f"Content-Transfer-Encoding: base64\r\n\r\n{attachment}--{boundary}--\r\n")
    return ("\r\n".join(head) + "\r\n\r\n" + body).encode(), msgid


def append_flags(i, folder):
    """Flags given at APPEND time (a deterministic subset)."""
    flags = []
    if folder[0] in ("Sent", "Archive") or i % 3 == 0:
        flags.append("\\Seen")
    if folder[0] == "Drafts":
        flags.append("\\Draft")
    if i % 13 == 0:
        flags.append("$Label1")
    if i % 23 == 0:
        flags.append("Junk")
    return flags


def store_flags(i):
    """Flags added later with UID STORE (another deterministic subset)."""
    flags = []
    if i % 17 == 0:
        flags.append("\\Flagged")
    if i % 11 == 0:
        flags.extend(["\\Answered", "\\Seen"])
    if i % 19 == 0:
        flags.append("$Forwarded")
    if i % 29 == 0:
        flags.append("$MDNSent")
    if i % 31 == 0:
        flags.append("project-x")
    return flags


def uid_list(uid_set):
    out = []
    for part in uid_set.split(","):
        lo, _, hi = part.partition(":")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def uid_set(uids):
    return ",".join(str(u) for u in sorted(uids))


def install_sieve(home, uid, gid):
    sdir = os.path.join(home, "sieve")
    os.makedirs(sdir, mode=0o700, exist_ok=True)
    path = os.path.join(sdir, "main.sieve")
    with open(path, "w", encoding="utf-8") as f:
        f.write(SIEVE)
    link = os.path.join(home, ".dovecot.sieve")
    if os.path.lexists(link):
        os.unlink(link)
    os.symlink("sieve/main.sieve", link)
    for p in (sdir, path):
        os.chown(p, uid, gid)
    os.chmod(path, 0o600)
    os.lchown(link, uid, gid)
    return path


def make_maildir(home, uid, gid):
    """HOME/Maildir/{cur,new,tmp} owned by the mail user (what Courier's maildirmake makes)."""
    for d in (home, os.path.join(home, "Maildir")) + tuple(os.path.join(home, "Maildir", s) for s in ("cur", "new", "tmp")):
        os.makedirs(d, mode=0o700, exist_ok=True)
        os.chown(d, uid, gid)


def server_capabilities(imap):
    caps = imap.command("CAPABILITY").each("CAPABILITY")
    return set(caps[0].decode().upper().split()) if caps else set()


def main():
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lab", required=True, help="lab directory")
    ap.add_argument("--user", required=True, help="login (mail or uid)")
    ap.add_argument("--messages", type=int, required=True, metavar="N")
    ap.add_argument("--seed", type=int, default=1, help="same seed, same mailbox (default 1)")
    ap.add_argument("--via", help="store to fill (default: the user's mailHost)")
    ap.add_argument("--leaf-folders", action="store_true",
                    help="no mail in folders that have subfolders (Archive, Lists): an mbox folder is a file "
                         "and cannot have any")
    ap.add_argument("--password", default="secret")
    a = ap.parse_args()
    folders = [f for f in FOLDERS
               if not (a.leaf_folders and any(len(o[0]) > len(f[0]) and o[0][:len(f[0])] == f[0] for o in FOLDERS))]
    if a.messages < 0:
        ap.error("--messages must be >= 0")

    t0 = time.monotonic()
    store = a.via or "its mailHost"
    try:
        env = labcommon.load_env(a.lab)
        entry = labcommon.find_user(env, a.user)
        if entry is None:
            raise labcommon.LabError(f"unknown user '{a.user}' (no mlabMailAccount with that mail or uid)")
        store = a.via or labcommon.first(entry, "mailHost")
        rcpt = labcommon.first(entry, "mail")
        home = labcommon.user_home(env, store, entry)
        courier = store in labcommon.courier_stores(env)
        if courier:
            # Courier-IMAP: its own imapd on a pipe; folders live under "INBOX.", one message
            # per APPEND (no MULTIAPPEND), and no sieve (Courier filters with maildrop).
            make_maildir(home, int(env["MAIL_UID"]), int(env["MAIL_GID"]))
            imap = labcommon.courier_session(env, store, rcpt)
        else:
            imap = Imap("127.0.0.1", labcommon.store_port(env, store, "IMAP_PORT"))
            imap.login(rcpt, a.password)
        batch_max = 1 if courier else BATCH_MESSAGES

        existing = {raw: delim for _, raw, _, delim in imap.list()}
        delim = next(iter(existing.values()), "/") or "/"
        names = {}  # parts -> raw IMAP name
        for parts, _, subscribed in folders:
            raw = "INBOX" if parts == ("INBOX",) else mutf7_encode(delim.join(parts))
            if courier and raw != "INBOX":
                raw = "INBOX" + delim + raw
            names[parts] = raw
            if raw not in existing:
                r = imap.command("CREATE", quote(raw), check=False)
                if r.status != "OK" and "ALREADYEXISTS" not in r.code.upper():
                    raise ImapNo("CREATE " + raw, r.status, r.code, r.text)
            if subscribed and raw != "INBOX":
                imap.command("SUBSCRIBE", quote(raw))
        if "ACL" in server_capabilities(imap):
            for parts, ident, rights in ACLS:
                if parts not in names:
                    continue
                imap.command("SETACL", quote(names[parts]), quote(ident), quote(rights))

        # Which message goes where, and when: folders by weight, dates ascending in each folder.
        rng = random.Random(a.seed)
        weights = [w for _, w, _ in folders]
        plan = {parts: [] for parts, _, _ in folders}
        for i in range(1, a.messages + 1):
            parts = rng.choices(folders, weights)[0][0]
            plan[parts].append((EPOCH_2023 + rng.randrange(SPAN_S), i))

        summary = {}
        for parts, _, _ in folders:
            raw, items = names[parts], sorted(plan[parts])
            appended = []  # (uid, i)
            batch, batch_bytes, batch_ids = [], 0, []

            def flush():
                nonlocal batch, batch_bytes, batch_ids
                if not batch:
                    return
                r = imap.command("APPEND", quote(raw), *batch)
                m = re.match(r"APPENDUID \d+ (\S+)", r.code)
                if not m:
                    raise ImapError(f"APPEND to {raw}: no APPENDUID in reply ({r.code})")
                appended.extend(zip(uid_list(m.group(1)), batch_ids))
                batch, batch_bytes, batch_ids = [], 0, []

            for ts, i in items:
                data, _ = make_message(rng, a.seed, i, ts, rcpt, parts)
                flags = append_flags(i, parts)
                batch += [f"({' '.join(flags)})", quote(internaldate(ts)), Literal(data)]
                batch_bytes += len(data)
                batch_ids.append(i)
                if len(batch_ids) >= batch_max or batch_bytes >= BATCH_BYTES:
                    flush()
            flush()

            expunged = 0
            if appended:
                imap.examine(raw, readonly=False)
                by_flags = {}
                for uid, i in appended:
                    fl = store_flags(i)
                    if fl:
                        by_flags.setdefault(" ".join(fl), []).append(uid)
                tags = [imap.send("UID", "STORE", uid_set(uids), f"+FLAGS.SILENT ({fl})")
                        for fl, uids in by_flags.items()]
                for t in tags:
                    imap.wait(t)
                doomed = [uid for k, (uid, _) in enumerate(appended) if k % EXPUNGE_EVERY == EXPUNGE_EVERY // 2]
                if doomed:
                    imap.command("UID", "STORE", uid_set(doomed), "+FLAGS.SILENT (\\Deleted)")
                    imap.command("EXPUNGE")
                    expunged = len(doomed)
            summary[delim.join(parts)] = {"appended": len(appended), "expunged": expunged, "copied_in": 0}

        # COPY (hard links in Dovecot's maildir): some INBOX mail to Archive, some Lists mail to Old Stuff.
        for src, dst in ((("INBOX",), ("Archive",)), (("Lists", "dovecot"), ("Old Stuff",))):
            if src not in names or dst not in names:
                continue
            imap.examine(names[src])
            uids = [int(m["UID"]) for m in imap.fetch("1:*", "(UID)")] if plan[src] else []
            pick = uids[1::max(1, len(uids) // 10)][:10]
            if pick:
                imap.command("UID", "COPY", uid_set(pick), quote(names[dst]))
                summary[delim.join(dst)]["copied_in"] += len(pick)
        imap.logout()

        sieve = None if courier else install_sieve(home, int(env["MAIL_UID"]), int(env["MAIL_GID"]))
    except labcommon.LabError as e:
        labcommon.die(PROG, str(e))
    except ImapNo as e:
        labcommon.die(PROG, f"{a.user} on {store}: {e}")
    except (ImapError, OSError) as e:
        labcommon.die(PROG, f"{a.user} on {store}: {e}")

    labcommon.print_json({
        "user": a.user, "store": store, "seed": a.seed, "home": home, "sieve": sieve,
        "appended": sum(f["appended"] for f in summary.values()),
        "expunged": sum(f["expunged"] for f in summary.values()),
        "copied": sum(f["copied_in"] for f in summary.values()),
        "folders": summary, "elapsed_s": round(time.monotonic() - t0, 3)})
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""Print a user's IMAP state as a client sees it, as JSON.

Logs in over IMAP (through nginx by default, perdition or the Dovecot proxy, or straight to a store;
a Courier store's Maildir is read by Courier-IMAP's own imapd on a pipe) and reports, for every
folder LIST shows: UIDVALIDITY, UIDNEXT, the message count and a sha256 over the sorted
(UID, flags incl. keywords, Message-ID) triples (\\Recent is left out: it belongs to a session).
Also "store": the store the session really landed on (Dovecot's IMAP ID x-mlab-store, or the
X-MLAB-STORE capability of a Courier store behind courier_imaplogin.py).
--detail adds every message (uid, flags, internaldate, message_id, size), the LSUB list and, where
the server has ACLs (Courier-IMAP), each folder's GETACL as {identifier: rights}.

Exit status: 0 ok, 1 error, 2 usage, 3 login refused with [UNAVAILABLE] (frozen / temporary),
4 login refused otherwise (bad password, [CONTACTADMIN] ...)."""

import argparse
import hashlib
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import labcommon  # noqa: E402
from mlab_imap import Imap, ImapError, ImapNo, parse, quote  # noqa: E402

PROG = "imap_state.py"
EXIT_UNAVAILABLE, EXIT_REFUSED = 3, 4
RETRY_PAUSE_S = 0.5  # plus nginx's own Auth-Wait (3 s) per refused attempt
MSGID_ITEM = "BODY[HEADER.FIELDS (MESSAGE-ID)]"


def message_id(header_block):
    if not isinstance(header_block, bytes):
        return ""
    text = re.sub(rb"\r?\n[ \t]+", b" ", header_block).decode("utf-8", "replace")
    m = re.search(r"(?im)^message-id:\s*(.*?)\s*$", text)
    return m.group(1) if m else ""


def folder_acl(imap, raw_name):
    """GETACL of a folder -> {identifier: rights}."""
    acl = {}
    for raw in imap.command("GETACL", quote(raw_name)).each("ACL"):
        toks = [t.decode("utf-8", "replace") if isinstance(t, bytes) else str(t) for t in parse(raw)]
        for i in range(1, len(toks) - 1, 2):
            acl[toks[i]] = "".join(sorted(toks[i + 1]))
    return acl


def folder_state(imap, raw_name, detail, acls=False):
    info = imap.examine(raw_name)
    triples, rows = [], []
    if info["exists"]:
        items = f"(UID FLAGS {'INTERNALDATE RFC822.SIZE ' if detail else ''}BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])"
        for m in imap.fetch("1:*", items):
            uid = int(m["UID"])
            flags = sorted(f for f in (m.get("FLAGS") or []) if f.lower() != "\\recent")
            # Dovecot echoes the item as sent; Courier quotes the field name ("MESSAGE-ID").
            mid = message_id(next((v for k, v in m.items() if k.startswith("BODY[HEADER.FIELDS")), None))
            triples.append([uid, flags, mid])
            if detail:
                rows.append({"uid": uid, "flags": flags, "internaldate": m.get("INTERNALDATE"),
                             "message_id": mid, "size": int(m.get("RFC822.SIZE", 0))})
    triples.sort(key=lambda t: t[0])
    digest = hashlib.sha256(json.dumps(triples, separators=(",", ":")).encode()).hexdigest()
    out = {"uidvalidity": info["uidvalidity"], "uidnext": info["uidnext"],
           "messages": info["exists"], "hash": digest}
    if detail:
        out["detail"] = sorted(rows, key=lambda r: r["uid"])
    if acls:
        out["acl"] = folder_acl(imap, raw_name)
    return out


def login(host, port, user, password, retry_s):
    deadline = time.monotonic() + (retry_s or 0)
    while True:
        imap = Imap(host, port)
        try:
            imap.login(user, password)
            return imap
        except ImapNo as e:
            imap.close()
            if e.code.upper() != "UNAVAILABLE" or time.monotonic() >= deadline:
                raise
        time.sleep(RETRY_PAUSE_S)


def main():
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lab", required=True, help="lab directory")
    ap.add_argument("--user", required=True, help="login (mail or uid)")
    ap.add_argument("--via", default="nginx",
                    help="a router: nginx (default), perdition, dproxy, director; or a store name: store1, shared1, ...; "
                         "a Courier store (courier1, ...) is read by Courier's own imapd on a pipe")
    ap.add_argument("--password", default="secret")
    ap.add_argument("--detail", action="store_true", help="list every message and the subscriptions")
    ap.add_argument("--retry-unavailable", type=float, default=0, metavar="SEC",
                    help="keep retrying a login refused with [UNAVAILABLE] for up to SEC seconds")
    a = ap.parse_args()
    try:
        env = labcommon.load_env(a.lab)
        if a.via in labcommon.courier_stores(env):
            port = 0  # no daemon: Courier's imapd on a pipe, pre-authenticated
            imap = labcommon.courier_session(env, a.via, a.user)
        else:
            port = labcommon.router_or_store_port(env, a.via)
            imap = login("127.0.0.1", port, a.user, a.password, a.retry_unavailable)
    except labcommon.LabError as e:
        labcommon.die(PROG, str(e))
    except ImapNo as e:
        code = EXIT_UNAVAILABLE if e.code.upper() == "UNAVAILABLE" else EXIT_REFUSED
        labcommon.die(PROG, f"login of {a.user} via {a.via} (port {port}) refused: {e.status} "
                            f"{'[' + e.code + '] ' if e.code else ''}{e.text}", code)
    except (ImapError, OSError) as e:
        labcommon.die(PROG, f"login of {a.user} via {a.via} (port {port}): {e}")

    try:
        store = a.via if port == 0 else imap.mlab_store()
        result = {"user": a.user, "via": a.via, "port": port, "store": store}
        folders = {}
        caps = imap.command("CAPABILITY").each("CAPABILITY")
        acls = a.detail and caps and "ACL" in caps[0].decode().upper().split()
        for name, raw, flags, delim in sorted(imap.list(), key=lambda f: f[0]):
            if any(f.lower() in ("\\noselect", "\\nonexistent") for f in flags):
                folders[name] = {"noselect": True}
                continue
            folders[name] = folder_state(imap, raw, a.detail, acls)
        result["folders"] = folders
        summary = [[n, f.get("uidvalidity"), f.get("uidnext"), f.get("messages"), f.get("hash")]
                   for n, f in sorted(folders.items())]
        result["hash"] = hashlib.sha256(json.dumps(summary, separators=(",", ":")).encode()).hexdigest()
        if a.detail:
            result["subscriptions"] = sorted(name for name, _, _, _ in imap.list("LSUB"))
        imap.logout()
    except (ImapError, OSError) as e:
        labcommon.die(PROG, f"{a.user} via {a.via}: {e}")
    labcommon.print_json(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())

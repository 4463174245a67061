#!/usr/bin/python3
"""Hold one IMAP session open (through nginx by default) until the server ends it.

Logs in (on a Courier store: Courier's imapd on a pipe, pre-authenticated), SELECTs INBOX, writes "ready store=<store the session landed on>" to stdout, then
sends NOOP every 0.2 s. When the server closes the session (e.g. a doveadm kick), it writes
"ended after <seconds>s" and exits 0; if the session is still open after --max seconds it
writes "still open" and exits 1. Used by the live-session move test.

Exit status: 0 the session was ended by the server, 1 still open at --max, 2 usage, 3 login failed."""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import labcommon  # noqa: E402
from mlab_imap import Imap, ImapError  # noqa: E402

NOOP_EVERY_S = 0.2


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lab", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--via", default="nginx")
    ap.add_argument("--password", default=None)
    ap.add_argument("--max", type=float, default=60.0)
    a = ap.parse_args()
    env = labcommon.load_env(a.lab)
    try:
        if a.via in labcommon.courier_stores(env):
            # Courier's imapd on a pipe, with AUTHENTICATED=USER as after Courier's login.
            imap = labcommon.courier_session(env, a.via, a.user, timeout=10)
            store = a.via
        else:
            port = int(env["NGINX_IMAP_PORT"]) if a.via == "nginx" else labcommon.store_port(env, a.via, "IMAP_PORT")
            imap = Imap("127.0.0.1", port, timeout=10)
            imap.login(a.user, a.password or env.get("USER_PASSWORD", "secret"))
            store = imap.mlab_store() or "?"
        imap.examine("INBOX", readonly=False)
    except (ImapError, labcommon.LabError) as e:
        print(f"login failed: {e}", flush=True)
        return 3
    print(f"ready store={store}", flush=True)
    start = time.monotonic()
    while time.monotonic() - start < a.max:
        try:
            imap.command("NOOP")
        except (ImapError, OSError):
            print(f"ended after {time.monotonic() - start:.1f}s", flush=True)
            return 0
        time.sleep(NOOP_EVERY_S)
    print("still open", flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""Log a user in through a router again and again, and report where each login landed.

Each attempt is a fresh IMAP connection to --via (nginx, perdition, dproxy, director or a store), a LOGIN
and, when it succeeds, the store the session really reached (Dovecot's IMAP ID x-mlab-store, or
a Courier store's X-MLAB-STORE capability).
Attempts go on until --count is reached, --stop-file exists or --max-seconds have passed.

Every attempt connects from its own random 127.x.y.z source address: Dovecot slows down logins
from an address that just failed (its auth penalty, up to 15 s), and in the lab every client is
127.0.0.1, so without this one refused login would delay the next ones and hide when the freeze
really ended. (perdition connects to the stores from its own address: there the penalty stays.)

Outcomes: ok (with store), unavailable (NO [UNAVAILABLE]: the temporary refusal of a freeze),
authfailed (NO [AUTHENTICATIONFAILED]), refused (any other NO/BAD), kicked (logged in, then the
server ended the session, e.g. a move's kick: "BYE Server shutting down"), error (connection or
protocol).
Prints JSON: {"attempts": [{"t", "secs", "outcome", "store"|"code"+"text"|"error"}], "counts"}."""

import argparse
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import labcommon  # noqa: E402
from mlab_imap import Imap, ImapError, ImapNo  # noqa: E402

PROG = "router_probe.py"


def attempt(port, user, password, timeout_s):
    source = f"127.{random.randint(2, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
    imap = None
    logged_in = False
    try:
        imap = Imap("127.0.0.1", port, timeout=timeout_s, source_ip=source)
        imap.login(user, password)
        logged_in = True
        store = imap.mlab_store()
        imap.logout()
        return {"outcome": "ok", "store": store}
    except ImapNo as e:
        code = e.code.upper()
        outcome = {"UNAVAILABLE": "unavailable", "AUTHENTICATIONFAILED": "authfailed"}.get(code, "refused")
        return {"outcome": outcome, "code": code, "text": e.text}
    except (ImapError, OSError) as e:
        return {"outcome": "kicked" if logged_in else "error", "error": str(e)}
    finally:
        if imap is not None:
            try:
                imap.close()
            except (ImapError, OSError):
                pass


def main():
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lab", required=True, help="lab directory")
    ap.add_argument("--user", required=True, help="login (mail or uid)")
    ap.add_argument("--via", default="nginx", help="nginx, perdition, dproxy, director or a store name")
    ap.add_argument("--password", default="secret")
    ap.add_argument("--count", type=int, default=0, help="stop after this many attempts (0: no limit)")
    ap.add_argument("--stop-file", help="stop once this file exists (checked after each attempt)")
    ap.add_argument("--max-seconds", type=float, default=300, help="stop after this long (default 300)")
    ap.add_argument("--interval", type=float, default=0.2, help="pause between attempts, seconds")
    ap.add_argument("--timeout", type=float, default=30, help="per-attempt socket timeout, seconds")
    a = ap.parse_args()
    try:
        env = labcommon.load_env(a.lab)
        port = labcommon.router_or_store_port(env, a.via)
    except (labcommon.LabError, KeyError) as e:
        labcommon.die(PROG, str(e))
    attempts, t0 = [], time.monotonic()
    while True:
        start = time.monotonic()
        r = attempt(port, a.user, a.password, a.timeout)
        r["t"] = round(start - t0, 3)
        r["secs"] = round(time.monotonic() - start, 3)
        attempts.append(r)
        if a.count and len(attempts) >= a.count:
            break
        if a.stop_file and os.path.exists(a.stop_file):
            break
        if time.monotonic() - t0 >= a.max_seconds:
            break
        time.sleep(a.interval)
    counts = {}
    for r in attempts:
        counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
    labcommon.print_json({"user": a.user, "via": a.via, "port": port, "attempts": attempts, "counts": counts})
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""Deliver test mail to a lab user over LMTP, the way an MTA with an LDAP routing map would.

Before EVERY message the user's current mailHost (and mailAccountStatus) is read from LDAP and
the message goes to that store's LMTP port, so a concurrent move sees mail arriving on the old
store until the flip. An LMTP session is kept open while consecutive messages go to the same
store. 4xx replies are retried (bounded). With --honor-freeze the script waits while the user
is frozen, like an MTA that queues. Each message carries
  Message-ID: <mlab.TAG.SEQ.RAND@example.org>, X-Mlab-Seq: SEQ, X-Mlab-Store: STORE
Prints a JSON summary on stdout: delivered count, per-store counts, and every message-id with
the store it went to."""

import argparse
import json
import os
import smtplib
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import labcommon  # noqa: E402

PROG = "deliver.py"
TEMP_RETRIES = 20        # 4xx retries per message ...
TEMP_PAUSE_S = 0.25      # ... this far apart: ~5 s of tempfail before giving up
FREEZE_POLL_S = 0.2


class Deliverer:
    def __init__(self, env):
        self.env = env
        self.conn = None
        self.conn_store = None

    def close(self):
        if self.conn is not None:
            try:
                self.conn.quit()
            except (smtplib.SMTPException, OSError):
                pass
        self.conn, self.conn_store = None, None

    def _connect(self, store):
        if self.conn_store != store:
            self.close()
            port = labcommon.store_port(self.env, store, "LMTP_PORT")
            try:
                conn = smtplib.LMTP("127.0.0.1", port, timeout=30)
                conn.ehlo("mlab-deliver")
            except (smtplib.SMTPException, OSError) as e:
                raise labcommon.LabError(f"cannot open LMTP to {store} (127.0.0.1:{port}): {e}")
            self.conn, self.conn_store = conn, store
        return self.conn

    def send(self, store, rcpt, message):
        """-> number of 4xx retries needed. Raises LabError on a 5xx or too many 4xx."""
        return labcommon.send_with_retries(lambda: self._connect(store), self.close, "mlab-deliver@example.org",
                                           rcpt, message, f"LMTP {store}", TEMP_RETRIES, TEMP_PAUSE_S)


def build_message(rcpt, tag, seq, store, size):
    return labcommon.build_message("mlab deliver <mlab-deliver@example.org>", rcpt, tag, seq, size,
                                   f"mlab {tag} message {seq}", f"Test message {seq} of run {tag}, delivered to {store}.\r\n",
                                   f"X-Mlab-Store: {store}\r\n")


def main():
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lab", required=True, help="lab directory")
    ap.add_argument("--user", required=True, help="recipient: mail or uid")
    ap.add_argument("--count", type=int, required=True, metavar="N")
    ap.add_argument("--tag", default="t", help="goes into Message-ID and headers (default t)")
    ap.add_argument("--honor-freeze", action="store_true", help="wait while mailAccountStatus is frozen")
    ap.add_argument("--freeze-timeout", type=float, default=600, metavar="SEC",
                    help="with --honor-freeze: give up after waiting this long for one message (default 600)")
    ap.add_argument("--size", type=int, default=0, metavar="BYTES", help="pad each message to about BYTES")
    ap.add_argument("--interval", type=float, default=0, metavar="SEC", help="pause between messages")
    a = ap.parse_args()
    if a.count < 0:
        ap.error("--count must be >= 0")
    if not all(c.isalnum() or c in "-_" for c in a.tag):
        ap.error("--tag may contain only letters, digits, - and _")

    t0 = time.monotonic()
    env, d = None, None
    messages, per_store, retries, freeze_waited = [], {}, 0, 0.0
    try:
        env = labcommon.load_env(a.lab)
        d = Deliverer(env)
        for seq in range(1, a.count + 1):
            if seq > 1 and a.interval > 0:
                time.sleep(a.interval)
            wait_start = time.monotonic()
            while True:
                entry = labcommon.find_user(env, a.user)
                if entry is None:
                    raise labcommon.LabError(f"unknown user '{a.user}' (no mlabMailAccount with that mail or uid)")
                status = labcommon.effective_status(labcommon.first(entry, "mailAccountStatus"))
                if not (a.honor_freeze and status == "frozen"):
                    break
                if time.monotonic() - wait_start > a.freeze_timeout:
                    raise labcommon.LabError(f"{a.user} still frozen after {a.freeze_timeout:g}s")
                time.sleep(FREEZE_POLL_S)
            freeze_waited += time.monotonic() - wait_start if a.honor_freeze else 0
            store = labcommon.first(entry, "mailHost")
            rcpt = labcommon.first(entry, "mail")
            if not store or not rcpt:
                raise labcommon.LabError(f"{entry['dn']} has no mailHost or no mail")
            msgid, data = build_message(rcpt, a.tag, seq, store, a.size)
            retries += d.send(store, rcpt, data)
            messages.append({"seq": seq, "message_id": msgid, "store": store})
            per_store[store] = per_store.get(store, 0) + 1
    except labcommon.LabError as e:
        print(f"{PROG}: {e} (after {len(messages)} of {a.count} delivered)", file=sys.stderr)
        if messages:
            print(json.dumps({"user": a.user, "delivered": len(messages), "messages": messages}))
        return 1
    finally:
        if d is not None:
            d.close()
    labcommon.print_json({"user": a.user, "tag": a.tag, "delivered": len(messages), "stores": per_store,
                          "tempfail_retries": retries, "freeze_wait_s": round(freeze_waited, 3),
                          "elapsed_s": round(time.monotonic() - t0, 3), "messages": messages})
    return 0


if __name__ == "__main__":
    sys.exit(main())
